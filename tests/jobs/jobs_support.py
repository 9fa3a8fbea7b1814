"""Fixtures and helpers of the jobs tests: a real embedded AstraGo on simulated GPUs, users with tokens.

(No conftest.py here: tests/conftest.py is imported as `conftest` by the suite.)
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import requests

from support.fixtures import new_platform, require
from support.accounts import kill_account_processes
from support.platform import api_token, login


#: a static inventory: no real GPU here (a named stand-in for NVML); hub, service, spawner,
#: servers and job processes are real
INVENTORY = {"nodes": [{"name": "jobbox", "gpus": [
    {"model": "H100-80GB", "mode": "mig", "geometry": {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}},
    {"model": "H100-80GB", "mode": "full"},
]}]}


def start_jobs_platform(prefix: str):
    require(os.geteuid() == 0, "root (jobs run as each user's own system account)")
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    p = new_platform(tmp, INVENTORY)
    p.start()
    p.tmp = tmp
    session, _ = login(p, "admin", p.admin_password)
    p.admin_token = api_token(p, session, "admin")
    return p


def stop_jobs_platform(p):
    p.stop()
    for name in p.created_users:
        kill_account_processes(f"astrago-{name}")
    p.remove_system_accounts()
    shutil.rmtree(p.tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def jobs_platform():
    p = start_jobs_platform("astrago-jobs-")
    yield p
    stop_jobs_platform(p)


@pytest.fixture(autouse=True)
def keep_platform_log(request, artifacts):
    yield
    for name in ("jobs_platform",):
        if name in request.fixturenames:
            p = request.getfixturevalue(name)
            (artifacts / f"{name}.log").write_text(p.log())


class JobUser:
    """A realm user with a JupyterHub API token, talking to the service's jobs API."""

    def __init__(self, platform, base: str):
        self.p = platform
        self.name, self.password = platform.add_user(base)
        self.session, _ = login(platform, self.name, self.password)
        self.token = api_token(platform, self.session, self.name)
        self.account = f"astrago-{self.name}"
        self.home = Path(f"/home/{self.account}")

    @property
    def headers(self):
        return {"Authorization": f"token {self.token}"}

    def api(self, method: str, path: str, **kw) -> requests.Response:
        return requests.request(method, self.p.service_url + "api/" + path, headers=self.headers, timeout=60, **kw)

    def submit(self, **spec) -> dict:
        r = self.api("POST", "jobs", json=spec)
        assert r.status_code == 201, r.text
        return r.json()

    def job(self, job_id: str) -> dict:
        r = self.api("GET", f"jobs/{job_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait(self, job_id: str, statuses, timeout: float = 90) -> dict:
        statuses = {statuses} if isinstance(statuses, str) else set(statuses)
        deadline = time.monotonic() + timeout
        job = None
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["status"] in statuses:
                return job
            time.sleep(0.3)
        raise AssertionError(f"job {job_id} not {statuses} after {timeout}s: {job}\n{self.p.log()[-3000:]}")

    def wait_running_process(self, job_id: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.wait(job_id, "RUNNING", timeout)
            if job["process"].get("pid"):
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} has no process after {timeout}s")


def admin_api(p, method: str, path: str, **kw) -> requests.Response:
    return requests.request(method, p.service_url + "api/" + path,
                            headers={"Authorization": f"token {p.admin_token}"}, timeout=60, **kw)


def marker_pids(job_id: str, attempt: int = 1) -> list[int]:
    from astrago.hub.jobs.executors.procs import with_marker

    return with_marker(f"{job_id}.{attempt}")


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")



def make_notebook(path: str, default_lr: float = 0.01) -> str:
    """Code that writes a parameterised notebook at `path` (run it in the user's kernel)."""
    return f'''
import nbformat
nb = nbformat.v4.new_notebook()
params = nbformat.v4.new_code_cell("lr = {default_lr}")
params.metadata["tags"] = ["parameters"]
nb.cells = [params, nbformat.v4.new_code_cell("print(f'lr={{lr}}')")]
nb.metadata["kernelspec"] = {{"name": "python3", "display_name": "Python 3", "language": "python"}}
nbformat.write(nb, {path!r})
print("written")
'''
