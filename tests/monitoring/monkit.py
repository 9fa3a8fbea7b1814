"""Helpers of the monitoring tests (a module of its own: `conftest` names clash across folders)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import requests

from support.platform import api_token, login, start_server, stop_server

INVENTORY = {"nodes": [{"name": "demo", "gpus": [
    {"model": "H100-80GB", "mode": "mig", "geometry": {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}},
    {"model": "H100-80GB", "mode": "full"},
    {"model": "H100-80GB", "mode": "mig", "geometry": {"1g.10gb": 7}},
]}]}
DEFAULT_LOAD = {"default": {"utilization_percent": 40, "memory_used_mib": 4096}}


class MonitoredPlatform:
    """The running platform plus what the monitoring tests do to it."""

    def __init__(self, platform):
        self.p = platform
        session, _ = login(platform, "admin", platform.admin_password)
        self.admin_session = session
        self.admin_token = api_token(platform, session, "admin")
        self.load = json.loads(json.dumps(DEFAULT_LOAD))
        self.write_load()

    @property
    def url(self):
        return self.p.url

    @property
    def service_url(self):
        return self.p.service_url

    def admin(self, method, path, **kw):
        r = requests.request(method, self.service_url + path, headers={"Authorization": f"token {self.admin_token}"},
                             timeout=60, **kw)
        return r

    def write_load(self):
        path = Path(self.p.data_dir) / "simulated-gpu-load.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.load))
        tmp.replace(path)

    def set_utilisation(self, device_uuid: str, percent: float, memory_mib: float = 1024):
        self.load.setdefault("devices", {})[device_uuid] = {"utilization_percent": percent,
                                                            "memory_used_mib": memory_mib}
        self.write_load()

    def round(self) -> dict:
        r = self.admin("POST", "api/monitor/rounds")
        assert r.status_code == 200, r.text
        return r.json()

    def user_with_server(self, base: str, slice_name: str, groups=()) -> dict:
        name, pw = self.p.add_user(base, groups=groups)
        session, _ = login(self.p, name, pw)
        token = api_token(self.p, session, name)
        start_server(self.p, token, name, slice_name)
        allocs = self.admin("GET", f"api/allocations?user={name}").json()
        items = allocs if isinstance(allocs, list) else allocs.get("allocations", allocs.get("items", []))
        mine = [a for a in items if a["user"] == name and a["status"] == "admitted"]
        assert mine, allocs
        return {"name": name, "password": pw, "session": session, "token": token, "allocation": mine[0],
                "devices": mine[0]["placement"].get("visible_devices", [])}

    def stop(self, user: dict) -> None:
        """Stop a test's server (the platform is shared: free its slice for the next test)."""
        stop_server(self.p, user["token"], user["name"])


def wait_until(predicate, timeout=30.0, interval=0.3, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} not reached in {timeout}s (last: {last})")


def login_with_a_running_server(browser, platform, username, password):
    """A logged-in page for a user whose server runs (the hub then sends them to /user/<name>/lab,
    which support.fixtures.browser_login does not wait for)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(platform.url + "/hub/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/services/realm/" not in url and "/hub/login" not in url)
    return page
