"""Kill the AstraGo service mid-run (SIGKILL, as a crash would) and let JupyterHub start it again:
running jobs are found again by pid + start time and not run twice, a job that ended while
the service was down gets its real exit code, one whose process vanished is FAILED with the
reason. Everything here is real: hub, service, job processes."""
import os
import signal
import time
from pathlib import Path

import pytest
import requests

from jobs_support import JobUser, marker_pids, pid_alive, start_jobs_platform, stop_jobs_platform


@pytest.fixture
def restart_platform(artifacts):
    p = start_jobs_platform("astrago-jobs-restart-")
    yield p
    (artifacts / "jobs-restart-platform.log").write_text(p.log())
    stop_jobs_platform(p)


def service_pid(p) -> int:
    """The AstraGo service process of platform `p` (by its command line and data directory)."""
    wanted = f"ASTRAGO_DATA_DIR={p.data_dir}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            if b"astrago.hub.service" in cmdline and wanted in (entry / "environ").read_bytes().split(b"\0"):
                return int(entry.name)
        except OSError:
            continue
    raise AssertionError("the AstraGo service process was not found")


def test_killed_service_reconciles_running_jobs_and_runs_none_twice(restart_platform):
    p = restart_platform
    u = JobUser(p, "survivor")
    long_job = u.submit(kind="command", name="long", command="echo started >> ~/starts.txt; sleep 45; echo done")
    lost_job = u.submit(kind="command", name="lost", command="sleep 600")
    quick_job = u.submit(kind="command", name="quick", command="sleep 4; exit 3")
    for job in (long_job, lost_job, quick_job):
        u.wait_running_process(job["id"])
    long_pid = u.job(long_job["id"])["process"]["pid"]

    old = service_pid(p)
    os.kill(old, signal.SIGKILL)
    # while the service is down: one job ends by itself (exit 3), one job's processes vanish
    for pid in marker_pids(lost_job["id"]):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 90  # JupyterHub polls its managed services (every ~30 s) and restarts them
    new = None
    while time.monotonic() < deadline:
        try:
            new = service_pid(p)
            if new != old and requests.get(p.service_url + "api/openapi.json", timeout=2).status_code == 200:
                break
        except (AssertionError, requests.RequestException):
            pass
        time.sleep(0.5)
    assert new and new != old, "JupyterHub did not restart the AstraGo service"

    survived = u.wait(long_job["id"], "RUNNING", timeout=30)
    assert survived["attempt"] == 1 and survived["process"]["pid"] == long_pid and pid_alive(long_pid)
    lost = u.wait(lost_job["id"], {"FAILED", "COMPLETED", "CANCELLED"}, timeout=30)
    assert lost["status"] == "FAILED" and "while AstraGo was down" in lost["reason"], lost
    assert lost["attempt"] == 1  # no retry budget: never started again
    quick = u.wait(quick_job["id"], {"FAILED", "COMPLETED"}, timeout=30)
    assert quick["status"] == "FAILED" and quick["exit_code"] == 3, quick
    assert "while AstraGo was restarting" in quick["reason"]

    done = u.wait(long_job["id"], {"COMPLETED", "FAILED"}, timeout=90)
    assert done["status"] == "COMPLETED" and done["attempt"] == 1, done
    assert (u.home / "starts.txt").read_text() == "started\n"  # ran once, not twice
    log = u.api("GET", f"jobs/{long_job['id']}/log").text
    assert log.count("started") == 0 and "done" in log and log.count("attempt 1") == 1
    events = [e["status"] for e in u.job(long_job["id"])["events"]]
    assert events == ["CREATED", "QUEUED", "RUNNING", "COMPLETED"]
