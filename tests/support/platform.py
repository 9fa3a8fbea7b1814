"""Start and drive a real embedded AstraGo (`astrago up`) for end-to-end tests.

Nothing here is a test double: the hub, configurable-http-proxy, the AstraGo
service, Keycloak and users' JupyterLab servers all run for real.
"""
from __future__ import annotations

import html
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import requests

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique_name(base: str) -> str:
    return f"{base}{secrets.token_hex(2)}"


@dataclass
class RunningPlatform:
    data_dir: Path
    port: int
    ports: dict
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    admin_password: str = ""
    created_users: list = field(default_factory=list)
    extra_args: list = field(default_factory=list)
    extra_env: dict = field(default_factory=dict)  # ASTRAGO_* settings for `astrago up` (e.g. token lifetimes)
    realm: str = "astrago"  # the platform's realm in the session's Keycloak (support.keycloak)
    keycloak_url: str = ""  # that Keycloak's root; empty: `astrago up` runs its own
    keycloak_credentials: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def realm_url(self) -> str:
        """The realm as browsers reach it (the issuer of its tokens)."""
        return f"{self.url}/services/realm/realms/{self.realm}"

    @property
    def realm_admin(self):
        from astrago.hub.realm.admin import RealmAdmin

        base = self.keycloak_url or f"http://127.0.0.1:{self.ports['realm']}/services/realm"
        creds = self.keycloak_credentials or self.data_dir / "keycloak" / "admin-client.json"
        return RealmAdmin.from_file(base, creds, self.realm)

    @property
    def client_secret(self) -> str:
        return (self.data_dir / "oidc_client_secret").read_text().strip()

    @property
    def service_url(self) -> str:
        return f"{self.url}/services/astrago/"

    # -- process control ----------------------------------------------

    def command(self) -> list[str]:
        return [
            str(Path(sys.prefix) / "bin" / "astrago"), "up",
            "--data-dir", str(self.data_dir), "--port", str(self.port),
            "--hub-port", str(self.ports["hub"]), "--proxy-api-port", str(self.ports["proxy_api"]),
            "--service-port", str(self.ports["service"]), "--realm-port", str(self.ports["realm"]),
            "--realm-management-port", str(self.ports.get("realm_management") or free_port()),
            "--realm", self.realm,
            *(["--keycloak-url", self.keycloak_url, "--keycloak-credentials", str(self.keycloak_credentials)]
              if self.keycloak_url else []),
            *self.extra_args,
        ]

    def start(self, timeout: float = 240) -> str:
        """Start `astrago up`; returns everything it printed before the hub was healthy."""
        self.log_path = self.data_dir.parent / f"astrago-up-{int(time.time() * 1000)}.log"
        log = open(self.log_path, "w")
        env = dict(os.environ)
        env.setdefault("ASTRAGO_USER_ENV", os.environ.get("ASTRAGO_USER_ENV", sys.prefix))
        env.update(self.extra_env)
        if not hasattr(self, "_admin_account_existed"):  # the first start decides: only ours is removed
            self._admin_account_existed = subprocess.run(["id", "astrago-admin"], capture_output=True).returncode == 0
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"astrago up exited with {self.proc.returncode}:\n{self.log()}")
            try:
                ok_hub = requests.get(f"{self.url}/hub/health", timeout=2).status_code == 200
                ok_realm = requests.get(
                    f"{self.realm_url}/.well-known/openid-configuration", timeout=2
                ).status_code == 200
                ok_service = requests.get(f"{self.service_url}api/openapi.json", timeout=2).status_code == 200
                if ok_hub and ok_realm and ok_service:
                    out = self.log()
                    m = re.search(r"password:\s+(\S+)", out)
                    if m:
                        self.admin_password = m.group(1)
                    return out
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"astrago up did not become healthy in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""

    def hub_pid(self) -> int:
        return int((self.data_dir / "jupyterhub.pid").read_text().strip())

    def stop(self, sig=signal.SIGINT, timeout: float = 60) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def crash(self) -> None:
        """SIGKILL the hub (as a power cut of the hub process would) and wait for its helpers to go."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        ports = [self.ports["service"], self.ports["hub"]] + ([] if self.keycloak_url else [self.ports["realm"]])
        for port in ports:
            wait_port_closed(port)

    # -- realm users -----------------------------------------------------

    def add_user(self, base: str, *, groups=(), roles=(), password: str | None = None) -> tuple[str, str]:
        """A new user of the platform's realm in Keycloak (a unique name from `base`)."""
        admin = self.realm_admin
        name = unique_name(base)
        password = admin.add_user(name, password=password or secrets.token_urlsafe(12))
        for g in groups:
            admin.add_to_group(name, g)
        for r in roles:
            admin.add_role(name, r)
        self.created_users.append(name)
        return name, password

    def remove_system_accounts(self) -> None:
        for name in self.created_users + ([] if getattr(self, "_admin_account_existed", True) else ["admin"]):
            subprocess.run(["userdel", "-r", f"astrago-{name}"], capture_output=True)


def wait_port_closed(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"port {port} still open after {timeout}s")


# -- logging in over real HTTP, as a browser would ------------------------

_FORM = re.compile(r"<form[^>]*action=\"([^\"]+)\"[^>]*>(.*?)</form>", re.S | re.I)
_INPUT = re.compile(r"<input[^>]*>", re.I)
_ATTR = re.compile(r"(\w[\w-]*)=\"([^\"]*)\"")


def parse_form(page: str, base_url: str) -> tuple[str, dict]:
    m = _FORM.search(page)
    if not m:
        raise AssertionError(f"no form on page {base_url}:\n{page[:2000]}")
    action = urljoin(base_url, html.unescape(m.group(1)))
    fields = {}
    for tag in _INPUT.findall(m.group(2)):
        attrs = dict(_ATTR.findall(tag))
        if "name" in attrs:
            fields[attrs["name"]] = html.unescape(attrs.get("value", ""))
    return action, fields


_LOOPBACK = ("127.0.0.1", "localhost")


def _loopback_cookies_are_sent(jar) -> None:
    for cookie in jar:
        if cookie.domain in _LOOPBACK:
            cookie.secure = False


class BrowserSession(requests.Session):
    """requests as a browser behaves on http://127.0.0.1: loopback is a secure context, so the
    `Secure` cookies Keycloak sets (its login session) are sent back over plain http."""

    def prepare_request(self, request):
        _loopback_cookies_are_sent(self.cookies)
        return super().prepare_request(request)

    def rebuild_auth(self, prepared_request, response):
        super().rebuild_auth(prepared_request, response)
        jar = getattr(prepared_request, "_cookies", None)
        if jar is not None:  # a redirect: its cookies were merged without prepare_request
            _loopback_cookies_are_sent(jar)
            prepared_request.headers.pop("Cookie", None)
            prepared_request.prepare_cookies(jar)


def login(platform: RunningPlatform, username: str, password: str) -> tuple[requests.Session, requests.Response]:
    """Log in through hub -> Keycloak's login form -> hub callback. Returns the session and last response."""
    s = BrowserSession()
    r = s.get(f"{platform.url}/hub/login", timeout=30)
    assert "/services/realm/" in r.url, f"expected the realm's login page, got {r.url}"
    action, fields = parse_form(r.text, r.url)
    fields.update({"username": username, "password": password})
    r = s.post(action, data=fields, timeout=30)
    return s, r


def hub_xsrf(session: requests.Session, platform: RunningPlatform) -> str:
    session.get(f"{platform.url}/hub/token", timeout=30)
    return session.cookies.get("_xsrf", path="/hub/") or session.cookies.get("_xsrf")


def api_token(platform: RunningPlatform, session: requests.Session, username: str, scopes=None) -> str:
    """A JupyterHub API token, created the way the hub's token page does."""
    xsrf = hub_xsrf(session, platform)
    body = {"note": "astrago test", "expires_in": 3600}
    if scopes is not None:
        body["scopes"] = scopes
    r = session.post(f"{platform.url}/hub/api/users/{username}/tokens", json=body,
                     headers={"X-XSRFToken": xsrf}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["token"]


def start_server(platform: RunningPlatform, token: str, username: str, slice_name: str = "cpu",
                 timeout: float = 120) -> dict:
    h = {"Authorization": f"token {token}"}
    r = requests.post(f"{platform.url}/hub/api/users/{username}/server", json={"slice": slice_name},
                      headers=h, timeout=60)
    assert r.status_code in (201, 202), r.text
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = requests.get(f"{platform.url}/hub/api/users/{username}", headers=h, timeout=30).json()
        server = model.get("servers", {}).get("", {})
        if server.get("ready"):
            return model
        if not server.get("pending") and not server.get("ready") and time.monotonic() > deadline - timeout + 5:
            raise AssertionError(f"server of {username} did not start: {json.dumps(model)}\n{platform.log()[-4000:]}")
        time.sleep(0.5)
    raise AssertionError(f"server of {username} not ready in {timeout}s\n{platform.log()[-4000:]}")


def stop_server(platform: RunningPlatform, token: str, username: str, timeout: float = 60) -> None:
    h = {"Authorization": f"token {token}"}
    requests.delete(f"{platform.url}/hub/api/users/{username}/server", headers=h, timeout=60)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = requests.get(f"{platform.url}/hub/api/users/{username}", headers=h, timeout=30).json()
        if "" not in model.get("servers", {}):
            return
        time.sleep(0.5)
    raise AssertionError(f"server of {username} did not stop")
