// The local realm: embedded mode's Keycloak-compatible OpenID provider.
//
// JupyterHub runs this as the managed service `realm`; its proxy forwards /services/realm/...
// here with the full path kept, so everything is served under the issuer's path, e.g.
// http://<hub>/services/realm/realms/astrago. Built on panva's oidc-provider (v9).
// See README.md in this folder for the environment variables and what is Keycloak-compatible.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import * as querystring from 'node:querystring';
import { pathToFileURL } from 'node:url';

import { DUMMY_HASH, verifyPassword } from './password.mjs';
import {
  errorPage, loginPage, logoutPage, signedOutPage,
} from './views/pages.mjs';

// oidc-provider comes from the node_modules above this file (the repository's); ES modules
// ignore NODE_PATH, so when that lookup fails, resolve the package inside NODE_PATH's folders.
async function importOidcProvider() {
  try {
    return await import('oidc-provider');
  } catch (err) {
    if (err.code !== 'ERR_MODULE_NOT_FOUND' || !process.env.NODE_PATH) throw err;
    for (const dir of process.env.NODE_PATH.split(path.delimiter).filter(Boolean)) {
      try {
        const resolved = createRequire(path.join(path.resolve(dir), 'noop.js')).resolve('oidc-provider');
        return await import(pathToFileURL(resolved).href);
      } catch {
        // try the next folder
      }
    }
    throw err;
  }
}
const { default: Provider, errors, interactionPolicy } = await importOidcProvider();

// ------------------------------------------------------------------------------ configuration

function fail(message) {
  process.stderr.write(`astrago-realm: ${message}\n`);
  process.exit(2);
}

function positiveIntEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) fail(`${name} must be a positive whole number of seconds, got ${JSON.stringify(raw)}`);
  return value;
}

const REALM_FILE = process.env.ASTRAGO_REALM_FILE;
if (!REALM_FILE) fail('ASTRAGO_REALM_FILE is not set (the path of the realm JSON file)');
const KEYS_FILE = process.env.ASTRAGO_REALM_KEYS
  || path.join(path.dirname(path.resolve(REALM_FILE)), 'realm-keys.json');
const ISSUER_RAW = process.env.ASTRAGO_REALM_ISSUER;
if (!ISSUER_RAW) fail('ASTRAGO_REALM_ISSUER is not set (e.g. http://127.0.0.1:8000/services/realm/realms/astrago)');
let issuerUrl;
try {
  issuerUrl = new URL(ISSUER_RAW);
} catch {
  fail(`ASTRAGO_REALM_ISSUER is not a URL: ${ISSUER_RAW}`);
}
if (issuerUrl.search || issuerUrl.hash) fail('ASTRAGO_REALM_ISSUER must not have a query or fragment');
const ISSUER = issuerUrl.href.replace(/\/+$/, '');
// The mount prefix: the issuer's path, e.g. /services/realm/realms/astrago
const PREFIX = new URL(ISSUER).pathname.replace(/\/+$/, '');
// The service root JupyterHub knows (everything before /realms/<name>), for health checks.
const SERVICE_ROOT = PREFIX.replace(/\/realms\/[^/]+$/, '') || '/';

let HOST = process.env.ASTRAGO_REALM_HOST || '';
let PORT = process.env.ASTRAGO_REALM_PORT ? Number(process.env.ASTRAGO_REALM_PORT) : undefined;
if (PORT === undefined && process.env.JUPYTERHUB_SERVICE_URL) {
  const serviceUrl = new URL(process.env.JUPYTERHUB_SERVICE_URL);
  PORT = Number(serviceUrl.port || (serviceUrl.protocol === 'https:' ? 443 : 80));
  HOST = HOST || serviceUrl.hostname.replace(/^\[|\]$/g, '');
}
HOST = HOST || '127.0.0.1';
if (!Number.isInteger(PORT) || PORT < 0 || PORT > 65535) {
  fail('set ASTRAGO_REALM_PORT (or JUPYTERHUB_SERVICE_URL) to the port to listen on');
}

const ACCESS_TOKEN_TTL = positiveIntEnv('ASTRAGO_REALM_ACCESS_TOKEN_TTL', 300);
const SESSION_IDLE_TTL = positiveIntEnv('ASTRAGO_REALM_SESSION_TTL', 1800);
const SESSION_MAX_TTL = Math.max(positiveIntEnv('ASTRAGO_REALM_SESSION_MAX', 36000), SESSION_IDLE_TTL);
const LOGIN_TTL = 1800; // Keycloak's "login timeout"
const CLOCK_TOLERANCE = 15;

// The one resource server every access token is for: its tokens are RS256 JWTs whose
// audience is the client that asked for them (as with Keycloak's audience mapper).
const RESOURCE = `${ISSUER}/resources/default`;
const OIDC_SCOPES = ['openid', 'profile', 'email', 'groups', 'roles'];

const epoch = () => Math.floor(Date.now() / 1000);

function log(message) {
  process.stdout.write(`${new Date().toISOString()} astrago-realm ${message}\n`);
}

// Values from requests that end up in log lines: no control characters, bounded.
function logSafe(value) {
  return JSON.stringify(String(value ?? '').slice(0, 64).replace(/[\x00-\x1f\x7f]/g, '?'));
}

// ------------------------------------------------------------------------------ signing keys

function writePrivateFile(file, content) {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try {
    fs.writeSync(fd, content);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

function newSigningKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return {
    ...jwk, kid: crypto.randomBytes(12).toString('base64url'), alg: 'RS256', use: 'sig',
  };
}

// Keys file: {"jwks": {"keys": [<private RS256 JWK>, ...]}, "cookie_keys": ["...", ...]}.
// The first key of each list signs; the others still verify (rotation: put a new one first,
// e.g. with `astrago realm rotate-keys`; the running server picks the change up).
function readKeysFile() {
  const parsed = JSON.parse(fs.readFileSync(KEYS_FILE, 'utf8'));
  const keys = parsed?.jwks?.keys;
  const cookieKeys = parsed?.cookie_keys;
  if (!Array.isArray(keys) || !keys.length || !Array.isArray(cookieKeys) || !cookieKeys.length) {
    throw new Error('no "jwks.keys" or "cookie_keys" list');
  }
  for (const key of keys) crypto.createPrivateKey({ key, format: 'jwk' }); // throws on a bad key
  return { keys, cookieKeys };
}

function keysStamp() {
  const st = fs.statSync(KEYS_FILE, { bigint: true });
  return `${st.ino}:${st.size}:${st.mtimeNs}`;
}

function loadOrCreateKeys() {
  if (fs.existsSync(KEYS_FILE)) {
    let keys;
    let cookieKeys;
    try {
      ({ keys, cookieKeys } = readKeysFile());
    } catch (err) {
      fail(`cannot read the keys file ${KEYS_FILE}: ${err.message}`);
    }
    const mode = fs.statSync(KEYS_FILE).mode & 0o777;
    if (mode & 0o077) {
      fs.chmodSync(KEYS_FILE, 0o600);
      log(`tightened the mode of ${KEYS_FILE} to 0600 (was ${mode.toString(8)})`);
    }
    return { keys, cookieKeys };
  }
  const content = {
    jwks: { keys: [newSigningKey()] },
    cookie_keys: [crypto.randomBytes(32).toString('base64url')],
  };
  writePrivateFile(KEYS_FILE, `${JSON.stringify(content, null, 2)}\n`);
  log(`created signing and cookie keys in ${KEYS_FILE}`);
  return { keys: content.jwks.keys, cookieKeys: content.cookie_keys };
}

function publicKeysOf(keys) {
  return new Map(keys.filter((k) => k.kty === 'RSA').map((k) => [
    k.kid, crypto.createPublicKey({ key: k, format: 'jwk' }),
  ]));
}

let { keys: SIGNING_KEYS, cookieKeys: COOKIE_KEYS } = loadOrCreateKeys();
let PUBLIC_KEYS = publicKeysOf(SIGNING_KEYS);
let KEYS_STAMP = keysStamp();

// ------------------------------------------------------------------------------ the realm file

let realmCache; // { stamp, data, usersById }

function indexRealm(data) {
  if (!data || typeof data !== 'object' || typeof data.users !== 'object' || data.users === null) {
    throw new Error('not a realm (no "users" object)');
  }
  const usersById = new Map();
  for (const [username, user] of Object.entries(data.users)) {
    if (user && typeof user.id === 'string') usersById.set(user.id, { username, user });
  }
  return {
    data: {
      realm: data.realm || 'astrago',
      users: data.users,
      groups: data.groups || [],
      roles: data.roles || [],
      clients: data.clients || {},
    },
    usersById,
  };
}

// The realm file is re-read whenever its inode, size or mtime changes (the Python store
// replaces it atomically), so CLI edits apply without a restart.
function realm() {
  let st;
  try {
    st = fs.statSync(REALM_FILE, { bigint: true });
  } catch (err) {
    if (realmCache) {
      if (!realmCache.missingLogged) {
        log(`realm file ${REALM_FILE} unreadable (${err.code}); keeping the last good copy`);
        realmCache.missingLogged = true;
      }
      return realmCache;
    }
    throw err;
  }
  const stamp = `${st.ino}:${st.size}:${st.mtimeNs}`;
  if (realmCache?.stamp === stamp) return realmCache;
  try {
    const indexed = indexRealm(JSON.parse(fs.readFileSync(REALM_FILE, 'utf8')));
    if (realmCache) log(`realm file changed, reloaded (${Object.keys(indexed.data.users).length} users)`);
    realmCache = { stamp, ...indexed };
  } catch (err) {
    if (!realmCache) throw err;
    log(`realm file ${REALM_FILE} could not be parsed (${err.message}); keeping the last good copy`);
    realmCache.stamp = stamp;
  }
  return realmCache;
}

function lookupUserById(id) {
  return realm().usersById.get(id);
}

function clientMetadata(clientId) {
  const client = realm().data.clients[clientId];
  if (!client || typeof client.secret !== 'string') return undefined;
  const metadata = {
    client_id: clientId,
    client_secret: client.secret,
    client_name: client.name || clientId,
    redirect_uris: client.redirect_uris || [],
    post_logout_redirect_uris: client.post_logout_redirect_uris || [],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic', // client_secret_post is accepted too
    id_token_signed_response_alg: 'RS256',
    require_auth_time: true, // Keycloak puts auth_time in every id_token
  };
  if (client.backchannel_logout_uri) {
    metadata.backchannel_logout_uri = client.backchannel_logout_uri;
    metadata.backchannel_logout_session_required = true;
  }
  return metadata;
}

// Keycloak-shaped claims of a user. Empty values are left out, as Keycloak does; `groups`
// is absent for a user in no group.
function claimsFor(username, user) {
  const claims = {
    sub: user.id,
    preferred_username: username,
    email_verified: user.email_verified === true,
    realm_access: { roles: [...(user.realm_roles || [])] },
  };
  if (user.email) claims.email = user.email;
  if (user.first_name) claims.given_name = user.first_name;
  if (user.last_name) claims.family_name = user.last_name;
  const name = [user.first_name, user.last_name].filter(Boolean).join(' ');
  if (name) claims.name = name;
  if (Array.isArray(user.groups) && user.groups.length) claims.groups = [...user.groups];
  const resourceAccess = {};
  for (const [clientId, roles] of Object.entries(user.client_roles || {})) {
    if (Array.isArray(roles) && roles.length) resourceAccess[clientId] = { roles: [...roles] };
  }
  if (Object.keys(resourceAccess).length) claims.resource_access = resourceAccess;
  return claims;
}

// ------------------------------------------------------------------------------ storage adapter

// In-memory storage for sessions, grants, codes and tokens. A realm restart therefore ends
// every realm session (browsers sign in again at the realm); the hub's own cookies are not
// affected. Clients come from the realm file.
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);
const memory = new Map(); // `${model}:${id}` -> { payload, expiresAt }
const grantMembers = new Map(); // grantId -> Set of keys
const sessionUids = new Map(); // session uid -> session id

class MemoryAdapter {
  constructor(name) {
    this.name = name;
  }

  key(id) {
    return `${this.name}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const expiresAt = expiresIn ? Date.now() + (expiresIn + CLOCK_TOLERANCE) * 1000 : Infinity;
    if (this.name === 'Session' && payload.uid) sessionUids.set(payload.uid, id);
    if (GRANTABLE.has(this.name) && payload.grantId) {
      if (!grantMembers.has(payload.grantId)) grantMembers.set(payload.grantId, new Set());
      grantMembers.get(payload.grantId).add(key);
    }
    memory.set(key, { payload: structuredClone(payload), expiresAt });
  }

  async find(id) {
    const key = this.key(id);
    const entry = memory.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      memory.delete(key);
      return undefined;
    }
    return structuredClone(entry.payload);
  }

  async findByUid(uid) {
    const id = sessionUids.get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode() {
    return undefined;
  }

  async consume(id) {
    const entry = memory.get(this.key(id));
    if (entry) entry.payload.consumed = epoch();
  }

  async destroy(id) {
    memory.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of grantMembers.get(grantId) || []) memory.delete(key);
    grantMembers.delete(grantId);
  }
}

class RealmClientAdapter {
  async find(id) {
    return clientMetadata(id);
  }

  async upsert() {
    throw new Error('clients are managed in the realm file');
  }

  async destroy() {
    throw new Error('clients are managed in the realm file');
  }
}

const realmClients = new RealmClientAdapter();
function adapterFor(name) {
  return name === 'Client' ? realmClients : new MemoryAdapter(name);
}

// Revoked JWT access tokens (jti -> exp), until they expire anyway.
const revokedAccessTokens = new Map();

setInterval(() => {
  const now = Date.now();
  for (const [key, entry] of memory) if (entry.expiresAt <= now) memory.delete(key);
  for (const [uid, id] of sessionUids) if (!memory.has(`Session:${id}`)) sessionUids.delete(uid);
  for (const [grantId, keys] of grantMembers) {
    for (const key of keys) if (!memory.has(key)) keys.delete(key);
    if (!keys.size) grantMembers.delete(grantId);
  }
  const nowS = epoch();
  for (const [jti, exp] of revokedAccessTokens) if (exp + CLOCK_TOLERANCE < nowS) revokedAccessTokens.delete(jti);
}, 60_000).unref();

// ------------------------------------------------------------------------------ the provider

const { Check, base: basePolicy } = interactionPolicy;
const policy = basePolicy();
// A session whose user has since been disabled or deleted must sign in again.
policy.get('login').checks.add(new Check(
  'account_unavailable',
  'the signed-in account is no longer available',
  (ctx) => (ctx.oidc.session.accountId && !ctx.oidc.account
    ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT),
));

function sessionTtl(session) {
  const loginTs = session?.loginTs || epoch();
  const untilMax = loginTs + SESSION_MAX_TTL - epoch();
  return Math.max(1, Math.min(SESSION_IDLE_TTL, untilMax));
}

// First-party clients: consent is granted without asking, for what was requested.
async function grantRequested(ctx, grant) {
  const requested = [...(ctx.oidc.requestParamScopes || [])];
  const oidc = requested.filter((s) => OIDC_SCOPES.includes(s));
  if (oidc.length) grant.addOIDCScope(oidc.join(' '));
  for (const resource of Object.keys(ctx.oidc.resourceServers || {})) {
    const server = ctx.oidc.resourceServers[resource];
    const scopes = requested.filter((s) => server.scopes.has(s));
    if (scopes.length) grant.addResourceScope(resource, scopes.join(' '));
  }
  const claims = ctx.oidc.claims || {};
  for (const use of ['id_token', 'userinfo']) {
    if (claims[use]) grant.addOIDCClaims(Object.keys(claims[use]));
  }
}

async function loadExistingGrant(ctx) {
  const { provider, client, session } = ctx.oidc;
  const grantId = ctx.oidc.result?.consent?.grantId || session.grantIdFor(client.clientId);
  let grant = grantId ? await provider.Grant.find(grantId) : undefined;
  if (grant && (grant.accountId !== session.accountId || grant.clientId !== client.clientId)) grant = undefined;
  if (!grant) grant = new provider.Grant({ clientId: client.clientId, accountId: session.accountId });
  await grantRequested(ctx, grant);
  await grant.save();
  return grant;
}

// A fresh configuration object per provider (the keys may have been rotated since).
const makeConfiguration = () => ({
  adapter: adapterFor,
  clients: [],
  jwks: { keys: SIGNING_KEYS },
  cookies: {
    keys: COOKIE_KEYS,
    names: {
      session: 'astrago_realm_session',
      interaction: 'astrago_realm_interaction',
      resume: 'astrago_realm_resume',
    },
    long: { httpOnly: true, sameSite: 'lax', path: `${PREFIX}/` },
    short: { httpOnly: true, sameSite: 'lax', path: `${PREFIX}/` },
  },
  routes: {
    authorization: '/protocol/openid-connect/auth',
    token: '/protocol/openid-connect/token',
    userinfo: '/protocol/openid-connect/userinfo',
    end_session: '/protocol/openid-connect/logout',
    jwks: '/protocol/openid-connect/certs',
    introspection: '/protocol/openid-connect/token/introspect',
    revocation: '/protocol/openid-connect/revoke',
    pushed_authorization_request: '/protocol/openid-connect/ext/par/request',
  },
  clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
  scopes: OIDC_SCOPES,
  // Like Keycloak's default client scopes (basic, profile, email, roles, and a group mapper):
  // every openid request gets the whole set, in the id_token and from userinfo.
  claims: {
    openid: [
      'sub', 'preferred_username', 'email', 'email_verified', 'name', 'given_name', 'family_name',
      'groups', 'realm_access', 'resource_access',
    ],
    profile: ['name', 'given_name', 'family_name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
    roles: ['realm_access', 'resource_access'],
    sid: null,
    auth_time: null,
    acr: null,
  },
  conformIdTokenClaims: false,
  responseTypes: ['code'],
  pkce: { required: () => false },
  clientBasedCORS: () => false,
  allowOmittingSingleRegisteredRedirectUri: false,
  features: {
    devInteractions: { enabled: false },
    // Access tokens are plain bearer JWTs checked by this server's userinfo/introspection.
    dPoP: { enabled: false },
    introspection: { enabled: true, allowedPolicy: async (ctx, client, token) => token.clientId === client.clientId },
    // A client may revoke only its own tokens (an RFC 7009 no-op for another client's).
    revocation: { enabled: true, allowedPolicy: async (ctx, client, token) => token.clientId === client.clientId },
    userinfo: { enabled: true },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: async (ctx, form) => {
        ctx.type = 'html';
        ctx.body = logoutPage({ form });
      },
      postLogoutSuccessSource: async (ctx) => {
        ctx.type = 'html';
        ctx.body = signedOutPage();
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (ctx, client, oneOf) => oneOf || RESOURCE,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resourceIndicator, client) => {
        if (resourceIndicator !== RESOURCE) throw new errors.InvalidTarget();
        return {
          scope: OIDC_SCOPES.join(' '),
          audience: client.clientId,
          accessTokenTTL: ACCESS_TOKEN_TTL,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  // Keycloak-shaped access tokens: the same identity claims as the id_token, plus azp,
  // typ and the session (sid, session_state) they belong to.
  extraTokenClaims: async (ctx, token) => {
    if (token.kind !== 'AccessToken' || !token.accountId) return undefined;
    const found = lookupUserById(token.accountId);
    if (!found) return undefined;
    const { sub, ...claims } = claimsFor(found.username, found.user);
    return {
      ...claims,
      typ: 'Bearer',
      azp: token.clientId,
      sid: token.sid,
      session_state: token.sessionUid,
    };
  },
  // Outgoing requests (back-channel logout) keep oidc-provider's SSRF guard, except to the
  // back-channel URIs registered in the realm file: in embedded mode the hub is on 127.0.0.1.
  fetch: (url, options) => {
    const target = String(url);
    const registered = Object.values(realm().data.clients).some((c) => c.backchannel_logout_uri === target);
    if (registered) delete options.dispatcher;
    return globalThis.fetch(url, options);
  },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: false,
  expiresWithSession: async () => true,
  loadExistingGrant,
  findAccount: async (ctx, sub) => {
    const found = lookupUserById(sub);
    if (!found || found.user.enabled === false) return undefined;
    return {
      accountId: sub,
      claims: async () => {
        const current = lookupUserById(sub) || found;
        return claimsFor(current.username, current.user);
      },
    };
  },
  interactions: {
    policy,
    url: (ctx, interaction) => `${PREFIX}/login-actions/${interaction.uid}`,
  },
  ttl: {
    AccessToken: ACCESS_TOKEN_TTL,
    AuthorizationCode: 60,
    IdToken: ACCESS_TOKEN_TTL,
    RefreshToken: SESSION_MAX_TTL,
    Interaction: LOGIN_TTL,
    Session: (ctx, session) => sessionTtl(session),
    Grant: SESSION_MAX_TTL,
    ClientCredentials: ACCESS_TOKEN_TTL,
    DeviceCode: 600,
    BackchannelAuthenticationRequest: 600,
  },
  renderError: async (ctx, out, error) => {
    ctx.type = 'html';
    const title = error?.statusCode === 404 || ctx.status === 404 ? 'Not found' : 'Sign-in request refused';
    ctx.body = errorPage({
      title,
      message: 'The application sent a request this realm cannot accept. Go back to the application and try again.',
      details: { error: out.error, description: out.error_description },
    });
  },
});

// Sessions, grants and tokens live in the module-level memory adapter, so a provider built
// anew (after a key rotation) carries on with them.
function makeProvider() {
  const p = new Provider(ISSUER, makeConfiguration());
  p.proxy = true; // behind configurable-http-proxy (X-Forwarded-*)
  // Keycloak puts `sid` in every id_token; oidc-provider only does so for clients registered
  // for back-channel logout with sessions. Codes and id_tokens here always carry it.
  p.Client.prototype.includeSid = function includeSid() { return true; };

  // A token refresh keeps the realm session alive, as in Keycloak (up to the session maximum).
  p.on('grant.success', async (ctx) => {
    try {
      if (ctx.oidc.params?.grant_type !== 'refresh_token') return;
      const uid = ctx.oidc.entities.RefreshToken?.sessionUid;
      if (!uid) return;
      const session = await p.Session.findByUid(uid);
      if (session) await session.save(sessionTtl(session));
    } catch (err) {
      log(`could not extend a session after a refresh: ${err.message}`);
    }
  });
  p.on('server_error', (ctx, err) => log(`server error: ${err.stack || err}`));
  p.on('backchannel.error', (ctx, err, client) => log(`back-channel logout to client ${logSafe(client.clientId)} failed: ${err.message}${err.cause ? ` (${err.cause.message || err.cause})` : ""}`));
  p.on('backchannel.success', (ctx, client) => log(`back-channel logout sent to client ${logSafe(client.clientId)}`));
  p.on('end_session.success', (ctx) => log(`logout client=${logSafe(ctx.oidc.client?.clientId || '')}`));
  return p;
}

let provider = makeProvider();
let oidcCallback = provider.callback();

// The keys file changed (a rotation): use the new keys from the next request on. A file
// that cannot be read or holds a bad key is logged and the keys in use are kept.
function reloadKeysIfChanged() {
  let stamp;
  try {
    stamp = keysStamp();
  } catch (err) {
    return; // missing for a moment (being replaced): keep what we have
  }
  if (stamp === KEYS_STAMP) return;
  KEYS_STAMP = stamp;
  let loaded;
  try {
    loaded = readKeysFile();
  } catch (err) {
    log(`keys file ${KEYS_FILE} could not be used (${err.message}); keeping the keys in use`);
    return;
  }
  SIGNING_KEYS = loaded.keys;
  COOKIE_KEYS = loaded.cookieKeys;
  PUBLIC_KEYS = publicKeysOf(SIGNING_KEYS);
  provider = makeProvider();
  oidcCallback = provider.callback();
  log(`signing keys reloaded: ${SIGNING_KEYS.length} keys, signing with kid ${logSafe(SIGNING_KEYS[0].kid)}`);
}

// ------------------------------------------------------------------------------ HTTP plumbing

function send(res, status, body, headers = {}) {
  const buffer = Buffer.from(body);
  res.writeHead(status, {
    'Content-Length': buffer.length,
    'Cache-Control': 'no-store',
    Pragma: 'no-cache',
    ...headers,
  });
  res.end(buffer);
}

function sendHtml(res, status, html) {
  send(res, status, html, {
    'Content-Type': 'text/html; charset=utf-8',
    'X-Frame-Options': 'DENY',
    'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    'Referrer-Policy': 'no-referrer',
  });
}

function sendJson(res, status, value, headers = {}) {
  send(res, status, JSON.stringify(value), { 'Content-Type': 'application/json; charset=utf-8', ...headers });
}

const BODY_LIMIT = 56 * 1024;
async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > BODY_LIMIT) throw Object.assign(new Error('request body too large'), { status: 413 });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function formFields(req, body) {
  const type = String(req.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') return {};
  const fields = querystring.parse(body);
  const single = {};
  for (const [k, v] of Object.entries(fields)) single[k] = Array.isArray(v) ? v : String(v);
  return single;
}

function clientIp(req) {
  const forwarded = String(req.headers['x-forwarded-for'] || '').split(',')[0].trim();
  return forwarded || req.socket.remoteAddress || '';
}

// ------------------------------------------------------------------------------ login pages

const LOGIN_FAILED = 'Invalid username or password.';
const ACCOUNT_DISABLED = 'This account is disabled. Ask an administrator.';

function interactionAction(uid) {
  return `${PREFIX}/login-actions/${encodeURIComponent(uid)}`;
}

async function findInteraction(req, res, uid) {
  try {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) return undefined;
    return details;
  } catch (err) {
    if (err instanceof errors.SessionNotFound) return undefined;
    throw err;
  }
}

function loginExpired(res) {
  sendHtml(res, 400, errorPage({
    title: 'Sign-in expired',
    message: 'This sign-in page is no longer valid. Go back to the application and sign in again.',
  }));
}

// Consent is never asked: the configured clients are first-party.
async function finishConsent(req, res, details) {
  const { prompt: { details: missing }, params, session } = details;
  let grant;
  if (details.grantId) grant = await provider.Grant.find(details.grantId);
  if (!grant) grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

async function showLogin(req, res, uid) {
  const details = await findInteraction(req, res, uid);
  if (!details) return loginExpired(res);
  if (details.prompt.name === 'consent') return finishConsent(req, res, details);
  const hint = typeof details.params.login_hint === 'string' ? details.params.login_hint.slice(0, 64) : '';
  return sendHtml(res, 200, loginPage({ action: interactionAction(uid), realm: 'AstraGo', username: hint }));
}

async function submitLogin(req, res, uid) {
  const body = await readBody(req);
  const details = await findInteraction(req, res, uid);
  if (!details) return loginExpired(res);
  if (details.prompt.name !== 'login') return showLogin(req, res, uid);

  const fields = formFields(req, body);
  const username = typeof fields.username === 'string' ? fields.username.trim() : '';
  const password = typeof fields.password === 'string' ? fields.password : '';
  const clientId = details.params.client_id;
  const where = `client=${logSafe(clientId)} ip=${logSafe(clientIp(req))}`;

  const { data } = realm();
  const user = Object.hasOwn(data.users, username) ? data.users[username] : undefined;
  const ok = await verifyPassword(password, user?.password || DUMMY_HASH);
  if (!user || !ok) {
    log(`login failed user=${logSafe(username)} reason=${user ? 'bad-password' : 'unknown-user'} ${where}`);
    return sendHtml(res, 200, loginPage({
      action: interactionAction(uid), realm: 'AstraGo', username, error: LOGIN_FAILED,
    }));
  }
  if (user.enabled === false) {
    log(`login failed user=${logSafe(username)} reason=disabled ${where}`);
    return sendHtml(res, 200, loginPage({
      action: interactionAction(uid), realm: 'AstraGo', username, error: ACCOUNT_DISABLED,
    }));
  }
  log(`login ok user=${logSafe(username)} ${where}`);
  return provider.interactionFinished(req, res, {
    login: { accountId: user.id, amr: ['pwd'], remember: true },
  }, { mergeWithLastSubmission: false });
}

// ------------------------------------------------------------------------------ JWT access tokens
//
// oidc-provider's userinfo, introspection and revocation endpoints only know the tokens it
// stores; access tokens here are JWTs (as Keycloak's are), so those three endpoints answer
// for JWTs themselves and hand anything else (refresh tokens) to oidc-provider.

function looksLikeJwt(token) {
  return typeof token === 'string' && /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token);
}

function decodeSegment(segment) {
  return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
}

// Verify an access token; returns its payload or throws with a reason.
async function verifyAccessToken(token) {
  const [h, p, s] = token.split('.');
  let header;
  let payload;
  try {
    header = decodeSegment(h);
    payload = decodeSegment(p);
  } catch {
    throw new Error('malformed token');
  }
  if (header.alg !== 'RS256' || header.typ !== 'at+jwt') throw new Error('not an access token of this realm');
  const key = PUBLIC_KEYS.get(header.kid);
  if (!key) throw new Error('unknown signing key');
  const valid = crypto.verify('RSA-SHA256', Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url'));
  if (!valid) throw new Error('invalid signature');
  const now = epoch();
  if (payload.iss !== ISSUER) throw new Error('wrong issuer');
  if (typeof payload.exp !== 'number' || payload.exp + CLOCK_TOLERANCE < now) throw new Error('token expired');
  if (typeof payload.iat === 'number' && payload.iat - CLOCK_TOLERANCE > now) throw new Error('token issued in the future');
  if (revokedAccessTokens.has(payload.jti)) throw new Error('token revoked');
  // The realm session it belongs to must still be alive (logout ends it).
  const session = payload.session_state ? await provider.Session.findByUid(payload.session_state) : undefined;
  if (!session || session.accountId !== payload.sub) throw new Error('session ended');
  const found = lookupUserById(payload.sub);
  if (!found || found.user.enabled === false) throw new Error('account not available');
  return { payload, found };
}

function bearerError(res, status, error, description) {
  const header = `Bearer realm="${realm().data.realm}", error="${error}", error_description="${description.replace(/"/g, "'")}"`;
  sendJson(res, status, { error, error_description: description }, { 'WWW-Authenticate': header });
}

// Authenticate the calling client (HTTP Basic, or client_id + client_secret in the form).
function authenticateClient(req, fields) {
  const auth = String(req.headers.authorization || '');
  let clientId;
  let secret;
  let methods = 0;
  if (/^basic /i.test(auth)) {
    methods += 1;
    const decoded = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i < 0) return undefined;
    try {
      clientId = decodeURIComponent(decoded.slice(0, i).replace(/\+/g, ' '));
      secret = decodeURIComponent(decoded.slice(i + 1).replace(/\+/g, ' '));
    } catch {
      return undefined;
    }
  }
  if (typeof fields.client_secret === 'string') {
    methods += 1;
    clientId = fields.client_id;
    secret = fields.client_secret;
  }
  if (methods !== 1 || typeof clientId !== 'string' || typeof secret !== 'string') return undefined;
  const client = realm().data.clients[clientId];
  if (!client || typeof client.secret !== 'string') return undefined;
  const a = crypto.createHash('sha256').update(secret).digest();
  const b = crypto.createHash('sha256').update(client.secret).digest();
  return crypto.timingSafeEqual(a, b) ? clientId : undefined;
}

function invalidClient(res) {
  sendJson(res, 401, { error: 'invalid_client', error_description: 'client authentication failed' }, {
    'WWW-Authenticate': 'Basic realm="astrago-realm"',
  });
}

// Returns true when handled; otherwise the request goes on to oidc-provider.
async function handleUserinfo(req, res, state) {
  const auth = String(req.headers.authorization || '');
  let token;
  if (/^bearer /i.test(auth)) token = auth.slice(7).trim();
  if (req.method === 'POST') {
    state.body = await readBody(req);
    const fields = formFields(req, state.body);
    if (!token && typeof fields.access_token === 'string') token = fields.access_token;
  }
  if (!looksLikeJwt(token)) return false;
  try {
    const { payload, found } = await verifyAccessToken(token);
    const scopes = new Set(String(payload.scope || '').split(' '));
    if (!scopes.has('openid')) {
      bearerError(res, 403, 'insufficient_scope', 'access token missing openid scope');
      return true;
    }
    sendJson(res, 200, claimsFor(found.username, found.user));
  } catch (err) {
    bearerError(res, 401, 'invalid_token', err.message);
  }
  return true;
}

async function handleIntrospection(req, res, state) {
  if (req.method !== 'POST') return false;
  state.body = await readBody(req);
  const fields = formFields(req, state.body);
  if (!looksLikeJwt(fields.token)) return false;
  const clientId = authenticateClient(req, fields);
  if (!clientId) {
    invalidClient(res);
    return true;
  }
  try {
    const { payload, found } = await verifyAccessToken(fields.token);
    if (payload.client_id !== clientId && payload.azp !== clientId) throw new Error('another client\'s token');
    sendJson(res, 200, {
      ...payload,
      active: true,
      client_id: payload.client_id,
      username: found.username,
      token_type: 'Bearer',
    });
  } catch {
    sendJson(res, 200, { active: false });
  }
  return true;
}

async function handleRevocation(req, res, state) {
  if (req.method !== 'POST') return false;
  state.body = await readBody(req);
  const fields = formFields(req, state.body);
  if (!looksLikeJwt(fields.token)) return false;
  const clientId = authenticateClient(req, fields);
  if (!clientId) {
    invalidClient(res);
    return true;
  }
  try {
    const { payload } = await verifyAccessToken(fields.token);
    if (payload.client_id === clientId || payload.azp === clientId) {
      revokedAccessTokens.set(payload.jti, payload.exp);
    }
  } catch {
    // RFC 7009: an invalid token is not an error
  }
  send(res, 200, '');
  return true;
}

// ------------------------------------------------------------------------------ router

function realmInfo() {
  const [key] = SIGNING_KEYS;
  const publicDer = crypto.createPublicKey({ key, format: 'jwk' }).export({ type: 'spki', format: 'der' });
  return {
    realm: realm().data.realm,
    public_key: publicDer.toString('base64'),
    'token-service': `${ISSUER}/protocol/openid-connect`,
    'account-service': `${ISSUER}/account`,
    'tokens-not-before': 0,
  };
}

async function route(req, res) {
  reloadKeysIfChanged();
  const url = new URL(req.url, 'http://realm.invalid');
  const { pathname } = url;

  if (pathname === SERVICE_ROOT || pathname === `${SERVICE_ROOT.replace(/\/$/, '')}/` || pathname === `${SERVICE_ROOT.replace(/\/$/, '')}/health`) {
    return sendJson(res, 200, { service: 'astrago-realm', issuer: ISSUER, status: 'ok' });
  }
  if (pathname !== PREFIX && !pathname.startsWith(`${PREFIX}/`)) {
    return sendJson(res, 404, { error: 'not_found' });
  }
  const rest = pathname.slice(PREFIX.length) || '/';

  if (rest === '/' && req.method === 'GET') return sendJson(res, 200, realmInfo());

  const login = /^\/login-actions\/([A-Za-z0-9_-]{1,64})$/.exec(rest);
  if (login) {
    if (req.method === 'GET') return showLogin(req, res, login[1]);
    if (req.method === 'POST') return submitLogin(req, res, login[1]);
    return send(res, 405, '', { Allow: 'GET, POST' });
  }

  const state = {};
  let handled = false;
  if (rest === '/protocol/openid-connect/userinfo') handled = await handleUserinfo(req, res, state);
  else if (rest === '/protocol/openid-connect/token/introspect') handled = await handleIntrospection(req, res, state);
  else if (rest === '/protocol/openid-connect/revoke') handled = await handleRevocation(req, res, state);
  if (handled) return undefined;

  // Hand over to oidc-provider, mounted at PREFIX (it derives its URLs from originalUrl).
  if (state.body !== undefined) req.body = state.body; // already read: oidc-provider uses req.body
  req.originalUrl = req.url;
  req.url = req.url.slice(PREFIX.length) || '/';
  if (!req.url.startsWith('/')) req.url = `/${req.url}`;
  return oidcCallback(req, res);
}

const server = http.createServer((req, res) => {
  route(req, res).catch((err) => {
    log(`error on ${req.method} ${logSafe(req.url)}: ${err.stack || err}`);
    if (!res.headersSent) {
      sendHtml(res, err.status || 500, errorPage({ title: 'Something went wrong', message: 'The sign-in service hit an error. Try again.' }));
    } else {
      res.destroy();
    }
  });
});

// Fail fast on an unreadable realm file.
try {
  realm();
} catch (err) {
  fail(`cannot read the realm file ${REALM_FILE}: ${err.message}`);
}

server.listen(PORT, HOST, () => {
  const { port } = server.address();
  log(`realm ${logSafe(realm().data.realm)} listening on http://${HOST}:${port}${PREFIX}/ issuer ${ISSUER}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}
