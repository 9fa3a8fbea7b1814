// HTML pages of the local realm: login, logout (auto-submitting), signed out, errors.
// Every value placed in a page goes through escapeHtml. Pages carry no external resources.

export function escapeHtml(value) {
  return String(value ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const STYLE = `
  *{box-sizing:border-box}
  body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;
       font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f3f5f8;color:#1d2330}
  main{width:100%;max-width:360px;background:#fff;border-radius:10px;padding:32px 28px;
       box-shadow:0 1px 3px rgba(16,24,40,.1),0 8px 24px rgba(16,24,40,.06)}
  .brand{font-weight:700;font-size:1.35rem;letter-spacing:.02em;margin:0 0 4px}
  .brand span{color:#4f46e5}
  h1{font-size:1rem;font-weight:500;color:#5b6475;margin:0 0 24px}
  label{display:block;font-size:.85rem;font-weight:600;margin:16px 0 6px}
  input[type=text],input[type=password]{width:100%;padding:10px 12px;font-size:1rem;
       border:1px solid #c9cfd9;border-radius:6px}
  input:focus{outline:2px solid #4f46e5;outline-offset:1px;border-color:#4f46e5}
  button{margin-top:24px;width:100%;padding:11px;font-size:1rem;font-weight:600;color:#fff;
       background:#4f46e5;border:0;border-radius:6px;cursor:pointer}
  button:hover{background:#4338ca}
  .error{margin:0 0 8px;padding:10px 12px;border-radius:6px;background:#fdecec;color:#a61b1b;font-size:.9rem}
  p{line-height:1.45}
  .muted{color:#5b6475;font-size:.85rem}
`;

function layout(title, body, { script } = {}) {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<p class="brand">Astra<span>Go</span></p>
${body}
</main>
${script ? `<script>${script}</script>` : ''}
</body>
</html>`;
}

/**
 * The sign-in form. `action` is the interaction's own URL (its uid is the CSRF guard, with
 * the interaction cookie), `error` a fixed sentence or empty, `username` what was typed.
 */
export function loginPage({ action, realm, username = '', error = '' }) {
  const body = `<h1>Sign in to ${escapeHtml(realm)}</h1>
${error ? `<p class="error" role="alert" id="login-error">${escapeHtml(error)}</p>` : ''}
<form method="post" action="${escapeHtml(action)}" autocomplete="on" novalidate>
  <label for="username">Username</label>
  <input type="text" id="username" name="username" value="${escapeHtml(username)}"
         autocomplete="username" autocapitalize="none" spellcheck="false" required${username ? '' : ' autofocus'}>
  <label for="password">Password</label>
  <input type="password" id="password" name="password" autocomplete="current-password" required${username ? ' autofocus' : ''}>
  <button type="submit" id="kc-login">Sign in</button>
</form>`;
  return layout('AstraGo — sign in', body);
}

/**
 * RP-initiated logout: oidc-provider's confirmation form (with its xsrf field), submitted
 * automatically with logout=yes, so the user sees no extra question. Without JavaScript the
 * button does the same.
 */
export function logoutPage({ form }) {
  const body = `<h1>Signing you out…</h1>
${form}
<input type="hidden" name="logout" value="yes" form="op.logoutForm">
<noscript><button type="submit" form="op.logoutForm">Sign out</button></noscript>`;
  return layout('AstraGo — signing out', body, {
    script: "document.getElementById('op.logoutForm').submit();",
  });
}

export function signedOutPage() {
  const body = `<h1>You are signed out</h1>
<p>Your AstraGo sign-in session has ended. You can close this window.</p>`;
  return layout('AstraGo — signed out', body);
}

export function errorPage({ title = 'Something went wrong', message = '', details = {} }) {
  const rows = Object.entries(details)
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => `<p class="muted"><strong>${escapeHtml(k)}</strong>: ${escapeHtml(v)}</p>`)
    .join('\n');
  const body = `<h1>${escapeHtml(title)}</h1>
${message ? `<p>${escapeHtml(message)}</p>` : ''}
${rows}`;
  return layout(`AstraGo — ${title}`, body);
}
