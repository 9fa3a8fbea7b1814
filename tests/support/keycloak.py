"""Keycloak itself for the tests: one process per test session, a realm per test platform.

Keycloak takes ~20 s to start, a realm ~3 s to create, so the session starts it once (on first
use) and every platform made by `new_platform` gets its own realm in it, created by `astrago up`
through the admin API exactly as in embedded mode. Nothing here is a double.
"""
from __future__ import annotations

import atexit
import secrets
import shutil
import tempfile
import urllib.parse
from pathlib import Path

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from astrago.hub.realm import distribution
from astrago.hub.realm.admin import RealmAdmin
from astrago.hub.realm.server import KeycloakServer

from .platform import free_port, parse_form

_session: dict = {}


def keycloak_available() -> bool:
    return distribution.is_installed() and distribution.find_java_home() is not None


def session_keycloak() -> KeycloakServer:
    """The test session's Keycloak, started on first use and stopped when the session ends."""
    if "server" not in _session:
        state = Path(tempfile.mkdtemp(prefix="astrago-keycloak-"))
        server = KeycloakServer(state, port=free_port(), management_port=free_port())
        server.start()
        server.wait_ready(progress=None)

        def stop():
            server.stop()
            shutil.rmtree(state, ignore_errors=True)

        atexit.register(stop)
        _session["server"] = server
    return _session["server"]


def new_realm_name(base: str = "t") -> str:
    return f"{base}-{secrets.token_hex(3)}"


def realm_admin(realm: str) -> RealmAdmin:
    server = session_keycloak()
    return RealmAdmin.from_file(server.base_url, server.credentials_file, realm)


def new_signing_key():
    """An RSA key (private, PEM) to import as a realm's signing key: the
    tests then hold the private key Keycloak signs with, so they can forge tokens that
    only the claims give away."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption()).decode()
    return key, pem


def code_flow_tokens(browser: requests.Session, realm_url: str, client_id: str, client_secret: str,
                     redirect_uri: str, username: str, password: str, token_url: str | None = None) -> dict:
    """Log in at the realm's own login page with a client's code flow, as any application would,
    without following the last redirect; returns the token response."""
    params = {"client_id": client_id, "response_type": "code", "scope": "openid profile email",
              "redirect_uri": redirect_uri, "state": secrets.token_hex(8)}
    page = browser.get(f"{realm_url}/protocol/openid-connect/auth", params=params, timeout=30)
    if "code=" not in page.url:  # no session yet: the login form
        action, fields = parse_form(page.text, page.url)
        fields.update({"username": username, "password": password})
        page = browser.post(action, data=fields, allow_redirects=False, timeout=30)
        location = page.headers.get("Location", "")
    else:
        location = page.url
    query = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)
    assert "code" in query, f"no code in {location!r}: {page.text[:500]}"
    r = requests.post(token_url or f"{realm_url}/protocol/openid-connect/token", timeout=30, data={
        "grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": redirect_uri,
        "client_id": client_id, "client_secret": client_secret})
    assert r.status_code == 200, r.text
    return r.json()


class BareRealm:
    """A realm of the session's Keycloak with no hub in front: for tests of tokens and of the
    realm commands. Its hub client's redirect URI points nowhere; logins stop at that redirect.
    Its data_dir holds what `astrago up` records, so `astrago realm --data-dir` works on it."""

    HUB_URL = "http://127.0.0.1:9"  # the discard port: never followed

    def __init__(self, data_dir: Path, access_token_ttl: int = 300):
        from astrago.hub.realm.admin import RealmSpec

        server = session_keycloak()
        self.name = new_realm_name("r")
        self.admin = realm_admin(self.name)
        self.client_secret = secrets.token_urlsafe(24)
        self.issuer = f"{server.base_url}/realms/{self.name}"
        self.admin_password = self.admin.ensure(RealmSpec(
            name=self.name, frontend_url=server.base_url, hub_url=self.HUB_URL,
            backchannel_logout_url=f"{self.HUB_URL}/hub/backchannel-logout", client_secret=self.client_secret,
            access_token_ttl=access_token_ttl))
        key, pem = new_signing_key()
        self.signing_key = (self.admin.import_signing_key(pem), key)  # (kid, private key) Keycloak signs with
        self.data_dir = Path(data_dir)
        (self.data_dir / "keycloak").mkdir(parents=True, exist_ok=True)
        (self.data_dir / "keycloak" / "endpoint.json").write_text(__import__("json").dumps({
            "base_url": server.base_url, "realm": self.name, "credentials_file": str(server.credentials_file)}))

    def url(self, path: str) -> str:
        return self.issuer + path

    def add_user(self, base: str = "u", **kwargs) -> tuple[str, str]:
        name = f"{base}{secrets.token_hex(3)}"
        return name, self.admin.add_user(name, **kwargs)

    def login(self, browser: requests.Session, username: str, password: str) -> dict:
        return code_flow_tokens(browser, self.issuer, "astrago", self.client_secret,
                                f"{self.HUB_URL}/hub/oauth_callback", username, password)

    def remove(self) -> None:
        try:
            self.admin.api.delete_realm(self.name)
        except Exception:  # noqa: BLE001 - the session's Keycloak is thrown away at the end anyway
            pass
