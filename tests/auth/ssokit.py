"""Helpers for the single sign-on tests: forging tokens with PyJWT, driving the realm of a
running platform directly (as another application or Keycloak's own pages would), and
reading what the hub made of a user. Nothing here intercepts HTTP: every call is real."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
import time
import urllib.parse
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

# the realm tests' helpers (a real realm server, its login pages and client side)
sys.path.append(str(Path(__file__).resolve().parents[1] / "realm"))  # last: never shadows
from realmkit import CLIENT_ID, Realm, parse_html  # noqa: E402

REALM_PATH = "/services/realm/realms/astrago"
#: the single sign-on platform's settings (test_sso_platform.py's `sso_platform`)
REFRESH_AGE = 5  # seconds: users' tokens are refreshed once this much time has passed
ACCESS_TOKEN_TTL = 30  # seconds

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

def realm_signing_key(keys_file: Path, index: int = 0) -> tuple[str, object]:
    """(kid, private key) of the realm's signing key number `index` in its keys file."""
    jwk = json.loads(Path(keys_file).read_text())["jwks"]["keys"][index]
    return jwk["kid"], jwt.PyJWK(jwk).key


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

def platform_realm(platform) -> Realm:
    """realmkit's client of the platform's realm: the browser side through the hub's proxy,
    the client side with the hub's own client (its secret, its redirect URI)."""
    return Realm(
        port=platform.ports["realm"], realm_file=platform.realm_file,
        keys_file=platform.data_dir / "realm-keys.json", process=None, log_file=platform.log_path,
        issuer=f"{platform.url}{REALM_PATH}", redirect_uri=f"{platform.url}/hub/oauth_callback",
        post_logout_uri=f"{platform.url}/hub/logged-out",
    )


def confirm_realm_logout(browser: requests.Session, page: requests.Response) -> requests.Response:
    """Submit the realm's auto-submitting logout form as a browser would, then follow."""
    parsed = parse_html(page.text)
    (form,) = parsed.forms
    assert form["id"] == "op.logoutForm", page.text[:500]
    return browser.post(urllib.parse.urljoin(page.url, form["action"]), data=form["inputs"], timeout=30)


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
