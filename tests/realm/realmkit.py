"""Helpers for the realm tests: start the real Node server, drive a browser and a client."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.parse
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import jwt
import requests

from astrago.hub.realm import store

REPO = Path(__file__).resolve().parents[2]

SERVER = REPO / "hub" / "realm" / "server.mjs"
NODE = shutil.which("node")
PROXY = REPO / "node_modules" / ".bin" / "configurable-http-proxy"
CLIENT_ID = "astrago"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FormParser(HTMLParser):
    """Collects forms (action, method, inputs) and the page's text."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self.inputs_by_form_id: dict[str, dict[str, str]] = {}
        self.title = ""
        self._in_title = False
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append(
                {"action": a.get("action", ""), "method": a.get("method", "get"), "id": a.get("id"), "inputs": {}}
            )
        elif tag == "input" and a.get("name"):
            target = None
            if a.get("form"):
                target = next((f for f in self.forms if f["id"] == a["form"]), None)
            elif self.forms:
                target = self.forms[-1]
            if target is not None:
                target["inputs"][a["name"]] = a.get("value", "")
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        self.text.append(data)


def parse_html(html: str) -> FormParser:
    p = FormParser()
    p.feed(html)
    return p


@dataclass
class Realm:
    """A running realm server and the files behind it."""

    port: int
    realm_file: Path
    keys_file: Path
    process: subprocess.Popen
    log_file: Path
    issuer: str = ""
    redirect_uri: str = ""
    post_logout_uri: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def secret(self) -> str:
        return store.client_secret(self.realm_file, CLIENT_ID)

    def url(self, path: str) -> str:
        return self.issuer + path

    @property
    def endpoints(self) -> dict:
        return requests.get(self.url("/.well-known/openid-configuration"), timeout=10).json()

    def log(self) -> str:
        return self.log_file.read_text()

    def add_user(self, username=None, password=None, **kw) -> tuple[str, str]:
        username = username or "u" + secrets.token_hex(4)
        password = store.add_user(self.realm_file, username, password=password, **kw)
        return username, password

    # ----------------------------------------------------------------- the browser side

    def authorize(self, browser: requests.Session, scope="openid profile email", **params):
        """GET the auth endpoint; returns (response, state, nonce). Redirects are followed
        until a page is shown or the client's redirect_uri is reached (not fetched)."""
        state = secrets.token_urlsafe(8)
        nonce = secrets.token_urlsafe(8)
        query = {
            "client_id": CLIENT_ID,
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "scope": scope,
            "state": state,
            "nonce": nonce,
            **params,
        }
        r = self.follow(browser, browser.get(self.url("/protocol/openid-connect/auth"), params=query, allow_redirects=False))
        return r, state, nonce

    def follow(self, browser: requests.Session, r: requests.Response) -> requests.Response:
        """Follow redirects inside the realm; stop at the client (its redirect_uri is not served)."""
        for _ in range(10):
            if r.status_code not in (301, 302, 303, 307, 308):
                return r
            location = urllib.parse.urljoin(r.url, r.headers["Location"])
            if not location.startswith(self.issuer):
                return r
            r = browser.get(location, allow_redirects=False)
        raise AssertionError("too many redirects")

    def submit_login(self, browser: requests.Session, page: requests.Response, username: str, password: str):
        parsed = parse_html(page.text)
        assert parsed.title == "AstraGo — sign in", page.text
        (form,) = parsed.forms
        action = urllib.parse.urljoin(page.url, form["action"])
        r = browser.post(action, data={"username": username, "password": password}, allow_redirects=False)
        return self.follow(browser, r)

    def code_from(self, r: requests.Response, state: str) -> str:
        assert r.status_code in (302, 303), (r.status_code, r.text[:500])
        location = r.headers["Location"]
        assert location.startswith(self.redirect_uri + "?"), location
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
        assert query["state"] == [state]
        assert query["iss"] == [self.issuer]
        return query["code"][0]

    def login(self, browser: requests.Session, username: str, password: str, scope="openid profile email", **params):
        """The whole code flow up to the token response; returns (tokens, nonce)."""
        page, state, nonce = self.authorize(browser, scope=scope, **params)
        assert page.status_code == 200, page.text[:500]
        r = self.submit_login(browser, page, username, password)
        code = self.code_from(r, state)
        tokens = self.token({"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri})
        assert tokens.status_code == 200, tokens.text
        return tokens.json(), nonce

    # ----------------------------------------------------------------- the client side

    def token(self, data: dict) -> requests.Response:
        return requests.post(
            self.url("/protocol/openid-connect/token"), data=data, auth=(CLIENT_ID, self.secret), timeout=10
        )

    def jwks(self) -> jwt.PyJWKSet:
        r = requests.get(self.url("/protocol/openid-connect/certs"), timeout=10)
        assert r.status_code == 200
        return jwt.PyJWKSet.from_dict(r.json())

    def verify(self, token: str, audience=CLIENT_ID, **options) -> dict:
        header = jwt.get_unverified_header(token)
        key = next(k for k in self.jwks().keys if k.key_id == header["kid"])
        return jwt.decode(token, key=key, algorithms=["RS256"], audience=audience, issuer=self.issuer, **options)


def start_realm(tmp: Path, port: int | None = None, env_extra: dict | None = None, public_port: int | None = None) -> Realm:
    """Start server.mjs on `port`; the issuer is on `public_port` (a proxy) when given."""
    port = port or free_port()
    public = public_port or port
    realm_file = tmp / "realm.json"
    keys_file = tmp / "realm-keys.json"
    issuer = f"http://127.0.0.1:{public}/services/realm/realms/astrago"
    redirect_uri = f"http://127.0.0.1:{public}/hub/oauth_callback"
    post_logout_uri = f"http://127.0.0.1:{public}/hub/login"
    if not realm_file.exists():
        admin_password = store.ensure_realm(
            realm_file, redirect_uris=[redirect_uri], post_logout_redirect_uris=[post_logout_uri]
        )
    else:
        admin_password = None
    env = {
        "PATH": os.environ.get("PATH", ""),
        "ASTRAGO_REALM_FILE": str(realm_file),
        "ASTRAGO_REALM_KEYS": str(keys_file),
        "ASTRAGO_REALM_ISSUER": issuer,
        "ASTRAGO_REALM_PORT": str(port),
        **(env_extra or {}),
    }
    log_file = tmp / f"realm-{port}.log"
    log = open(log_file, "w")
    process = subprocess.Popen([NODE, str(SERVER)], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            raise AssertionError(f"realm server exited: {log_file.read_text()}")
        try:
            direct = f"http://127.0.0.1:{port}/services/realm/realms/astrago/.well-known/openid-configuration"
            if requests.get(direct, timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"realm server did not start: {log_file.read_text()}")
        time.sleep(0.1)
    realm = Realm(port, realm_file, keys_file, process, log_file, issuer, redirect_uri, post_logout_uri)
    realm.extra["admin_password"] = admin_password
    return realm


def stop_realm(realm: Realm) -> None:
    realm.process.terminate()
    try:
        realm.process.wait(10)
    except subprocess.TimeoutExpired:
        realm.process.kill()
        realm.process.wait()


