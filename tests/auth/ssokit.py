"""Helpers for the single sign-on tests: forging tokens with PyJWT, driving a platform's realm in
Keycloak directly (as another application would), and reading what the hub made of a user.
Nothing here intercepts HTTP: every call is real."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from support.keycloak import code_flow_tokens, new_signing_key
from support.platform import parse_form

CLIENT_ID = "astrago"
#: the single sign-on platform's settings (test_sso_platform.py's `sso_platform`)
REFRESH_AGE = 5  # seconds: users' tokens are refreshed once this much time has passed
ACCESS_TOKEN_TTL = 10  # seconds: the test realm's access-token lifespan

# This folder has no conftest.py on purpose: pytest imports every conftest.py as the module
# `conftest`, and suite modules collected after this folder `from support.fixtures import ...` the
# suite's own (tests/conftest.py). The fixtures live in the test modules that use them.


def require(condition: bool, what: str):
    """As tests/conftest.py's: skip for a missing component locally, fail under CI=true."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing: `make test` should have installed it")
    pytest.skip(f"{what} is missing")
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


# -- keys and forged tokens ------------------------------------------------------------------

def other_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def sign(claims: dict, key, kid: str | None, alg: str = "RS256", typ: str | None = None) -> str:
    headers = {}
    if kid is not None:
        headers["kid"] = kid
    if typ is not None:
        headers["typ"] = typ
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(claims: dict, kid: str | None = None) -> str:
    """`alg: none`: no signature at all."""
    header = {"alg": "none", "typ": "JWT", **({"kid": kid} if kid else {})}
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."


def hs256_with_public_key(claims: dict, public_key, kid: str) -> str:
    """The classic confusion attack: HMAC-SHA256 keyed with the realm's public key (PEM)."""
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = _b64(json.dumps(claims).encode())
    signature = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def access_claims(issuer: str, username: str, sub: str | None = None, **overrides) -> dict:
    now = int(time.time())
    claims = {"iss": issuer, "sub": sub or secrets.token_hex(8), "aud": CLIENT_ID, "azp": CLIENT_ID,
              "typ": "Bearer", "iat": now, "exp": now + 120, "jti": secrets.token_hex(8),
              "preferred_username": username, "scope": "openid profile email"}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def logout_claims(issuer: str, sub: str | None = None, sid: str | None = None, **overrides) -> dict:
    claims = {"iss": issuer, "aud": CLIENT_ID, "iat": int(time.time()), "jti": secrets.token_hex(8),
              "events": {BACKCHANNEL_EVENT: {}}, "sub": sub, "sid": sid}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


# -- the realm of a running platform -----------------------------------------------------------

def import_signing_key(platform) -> tuple[str, object]:
    """Make Keycloak sign the platform realm's tokens with a key the test holds; (kid, key).
    Done before the hub's first login, so the hub's first key fetch already lists it."""
    key, pem = new_signing_key()
    return platform.realm_admin.import_signing_key(pem), key


def realm_tokens(platform, browser: requests.Session, username: str, password: str) -> dict:
    """Tokens of the hub's client for a user, from Keycloak's code flow (as a tool would get them)."""
    return code_flow_tokens(browser, platform.realm_url, CLIENT_ID, platform.client_secret,
                            f"{platform.url}/hub/oauth_callback", username, password)


def is_login_page(page: requests.Response) -> bool:
    """Keycloak's own sign-in form (asks who it is again)."""
    return "/services/realm/" in page.url and 'id="kc-form-login"' in page.text


def confirm_realm_logout(browser: requests.Session, page: requests.Response) -> requests.Response:
    """Keycloak asks to confirm a logout that carries no id_token_hint: confirm as a browser would."""
    if 'id="kc-logout-confirm"' not in page.text and "logout-confirm" not in page.text:
        return page
    action, fields = parse_form(page.text, page.url)
    fields.setdefault("confirmLogout", "Logout")
    return browser.post(action, data=fields, timeout=30)


def hub_user(platform, admin_token: str, name: str) -> dict | None:
    r = requests.get(f"{platform.url}/hub/api/users/{name}", headers={"Authorization": f"token {admin_token}"},
                     timeout=30)
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    return r.json()


def own_scopes(platform, token: str) -> set[str]:
    """The scopes the hub reports for a user's own token (GET /hub/api/user: refreshes them)."""
    r = requests.get(f"{platform.url}/hub/api/user", headers={"Authorization": f"token {token}"}, timeout=30)
    assert r.status_code == 200, r.text
    return set(r.json()["scopes"])


def hub_page_status(session: requests.Session, platform, path: str = "/hub/home") -> tuple[int, str]:
    """Status and redirect target of a hub page for a browser session (redirects not followed)."""
    r = session.get(f"{platform.url}{path}", allow_redirects=False, timeout=30)
    return r.status_code, r.headers.get("Location", "")
