"""Helpers of the fault and abuse suite: a real platform of the suite's own, its users, and the
faults themselves (kill -9 of the service, a full disk), plus the invariants checked after each.

(No conftest.py here: tests/conftest.py is imported as `conftest` by the suite.)
"""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import requests

from support.fixtures import new_platform, require
from support.accounts import kill_account_processes
from support.platform import api_token, login

#: a static inventory (a named stand-in for NVML: no GPU here); everything else is real
INVENTORY = {"nodes": [{"name": "faultbox", "gpus": [
    {"model": "H100-80GB", "mode": "mig", "geometry": {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}},
]}]}

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = "application/offset+octet-stream"


def start_platform(prefix: str):
    require(os.geteuid() == 0, "root (the local spawner and jobs use a system account per user)")
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    p = new_platform(tmp, INVENTORY)
    p.tmp = tmp
    p.start()
    session, _ = login(p, "admin", p.admin_password)
    p.admin_token = api_token(p, session, "admin")
    return p


def stop_platform(p) -> None:
    p.stop()
    for name in p.created_users:
        kill_account_processes(f"astrago-{name}")
    p.remove_system_accounts()
    shutil.rmtree(p.tmp, ignore_errors=True)


class User:
    """A realm user logged in for real, with a JupyterHub API token (all scopes of the user)."""

    def __init__(self, platform, base: str):
        self.p = platform
        self.name, self.password = platform.add_user(base)
        self.session, _ = login(platform, self.name, self.password)
        self.token = api_token(platform, self.session, self.name)
        self.home = Path(f"/home/astrago-{self.name}")

    @property
    def headers(self) -> dict:
        return {"Authorization": f"token {self.token}"}

    def api(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 60)
        return requests.request(method, self.p.service_url + "api/" + path, headers={**self.headers,
                                **kw.pop("headers", {})}, **kw)

    def client(self):
        from astrago.hub.client.jobs import JobsClient
        from astrago.hub.client import ServiceClient

        return JobsClient(ServiceClient(self.p.service_url, self.token))

    # -- tus -----------------------------------------------------------------

    @property
    def uploads(self) -> str:
        return self.p.service_url + "api/uploads/"

    def create_upload(self, length: int, filename: str) -> requests.Response:
        import base64

        meta = "filename " + base64.b64encode(filename.encode()).decode()
        return requests.post(self.uploads, headers={**self.headers, **TUS, "Upload-Length": str(length),
                                                    "Upload-Metadata": meta}, timeout=60)

    def new_upload(self, length: int, filename: str) -> str:
        r = self.create_upload(length, filename)
        assert r.status_code == 201, r.text
        return requests.compat.urljoin(self.p.url, r.headers["Location"])

    def head(self, url: str) -> requests.Response:
        return requests.head(url, headers={**self.headers, **TUS}, timeout=60)

    def patch(self, url: str, offset: int, data: bytes) -> requests.Response:
        return requests.patch(url, data=data, timeout=120, headers={
            **self.headers, **TUS, "Upload-Offset": str(offset), "Content-Type": OCTET})

    def resume(self, url: str, data: bytes, tries: int = 20) -> None:
        """Finish an upload the way tus clients do: HEAD, PATCH the rest; 409/423 mean ask again."""
        for _ in range(tries):
            r = self.head(url)
            assert_tus(r)
            offset = int(r.headers["Upload-Offset"])
            assert data[:offset] == data[:offset]
            r = self.patch(url, offset, data[offset:])
            assert_tus(r)
            if r.status_code == 204:
                return
            assert r.status_code in (409, 423), r.text
            time.sleep(1)
        raise AssertionError(f"upload {url} did not finish after {tries} tries")


def admin_api(p, method: str, path: str, **kw) -> requests.Response:
    kw.setdefault("timeout", 60)
    return requests.request(method, p.service_url + "api/" + path,
                            headers={"Authorization": f"token {p.admin_token}"}, **kw)


def assert_tus(r: requests.Response) -> None:
    """A tus answer: it carries Tus-Resumable, and an error is problem+json (never a proxy's HTML)."""
    assert r.headers.get("Tus-Resumable") == "1.0.0", (r.status_code, r.headers, r.text[:300])
    if r.status_code >= 400 and r.request.method != "HEAD":
        assert r.headers.get("Content-Type", "").startswith("application/problem+json"), (r.status_code, r.text[:300])


# -- faults ---------------------------------------------------------------------

def service_pid(p) -> int | None:
    """The AstraGo service process of platform `p` (found by its command and data directory)."""
    needle = f"ASTRAGO_DATA_DIR={p.data_dir}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            if b"astrago.hub.service" not in cmd:
                continue
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                return int(entry.name)
        except (OSError, ProcessLookupError):
            continue
    return None


def kill_service(p) -> int:
    """kill -9 the service (JupyterHub starts it again, as it does any managed service that exits)."""
    pid = service_pid(p)
    assert pid, "the AstraGo service process was not found"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                break
        except OSError:
            break
        time.sleep(0.05)
    return pid


def wait_answering(p, timeout: float = 90) -> None:
    """Until the hub and the service answer again (a generous retry: this is no speed test)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            hub = requests.get(f"{p.url}/hub/health", timeout=2).status_code
            svc = requests.get(f"{p.service_url}api/openapi.json", timeout=2).status_code
            if hub == 200 and svc == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise AssertionError(f"the platform did not answer within {timeout}s after the fault:\n{p.log()[-4000:]}")


def assert_answers_now(p, token: str) -> None:
    """The hub and the service answer the first request after the fault (each within a second)."""
    h = {"Authorization": f"token {token}"}
    assert requests.get(f"{p.url}/hub/api/", headers=h, timeout=1).status_code == 200
    assert requests.get(f"{p.service_url}api/whoami", headers=h, timeout=1).status_code == 200


# -- invariants -------------------------------------------------------------------

def assert_ledger_consistent(p) -> None:
    """No allocation lost, leaked or doubled: every admitted allocation has a live owner (a job
    QUEUED/RUNNING or a server the hub lists), no owner holds two, and no device is held twice."""
    allocs = admin_api(p, "GET", "allocations", params={"status": "admitted"}).json()["allocations"]
    owners = [(a["owner"]["kind"], a["owner"]["id"]) for a in allocs]
    assert len(owners) == len(set(owners)), f"an owner holds two allocations: {owners}"
    devices = [d for a in allocs for d in a["placement"].get("visible_devices", [])]
    assert len(devices) == len(set(devices)), f"a device is held twice: {devices}"
    for a in allocs:
        if a["owner"]["kind"] == "job":
            job = admin_api(p, "GET", f"jobs/{a['owner']['id']}").json()
            assert job["status"] in ("QUEUED", "RUNNING"), f"allocation {a['id']} leaked by {job['status']} job"


def assert_no_job_ran_twice(p, job_ids) -> None:
    for job_id in job_ids:
        job = admin_api(p, "GET", f"jobs/{job_id}").json()
        runs = [e for e in job["events"] if e["status"] == "RUNNING"]
        assert job["attempt"] <= 1 and len(runs) <= 1, f"job {job_id} ran twice: {job['events']}"
