"""Faults on a real embedded AstraGo: kill -9 of the service mid-upload, mid-submission (20 in
flight) and mid-job, a full disk during a PATCH, and a stop with servers running followed by a
start. After each: no allocation lost, leaked or doubled; uploads byte-identical or resumable;
no job run twice; the hub and the service answer the first request after the fault.
"""
from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from faultkit import (User, admin_api, assert_answers_now, assert_ledger_consistent, assert_no_job_ran_twice,
                      assert_tus, kill_service, start_platform, stop_platform, wait_answering)
from support.platform import start_server


def _recovered(p, token):
    wait_answering(p)
    assert_answers_now(p, token)


def test_kill_9_of_the_service_mid_upload_leaves_it_resumable(fp):
    u = User(fp, "upkill")
    data = os.urandom(3 << 20)
    url = u.new_upload(len(data), "killed.bin")
    assert u.patch(url, 0, data[: 1 << 20]).status_code == 204
    sent = threading.Thread(target=lambda: _quiet(lambda: u.patch(url, 1 << 20, data[1 << 20:])))
    sent.start()
    time.sleep(0.2)
    kill_service(fp)
    sent.join()
    _recovered(fp, u.token)
    u.resume(url, data)
    assert hashlib.sha256((u.home / "killed.bin").read_bytes()).digest() == hashlib.sha256(data).digest()


def _quiet(fn):
    try:
        return fn()
    except requests.RequestException:
        return None


def test_kill_9_mid_submissions_makes_each_job_at_most_once(fp):
    """20 submissions in flight when the service dies: every client's retry (same key) gets its job."""
    u = User(fp, "subkill")
    client = u.client()
    keys = [f"inflight-{i}" for i in range(20)]
    results: dict = {}

    def submit(key):
        try:
            results[key] = client.submit(kind="command", command="true", name=key, cpu=0.1, memory="64M",
                                         client_key=key, attempts=40)
        except Exception as exc:  # noqa: BLE001 -- recorded, asserted below
            results[key] = exc

    with ThreadPoolExecutor(max_workers=20) as pool:
        futures = [pool.submit(submit, k) for k in keys]
        time.sleep(0.3)
        kill_service(fp)
        for f in futures:
            f.result()
    _recovered(fp, u.token)
    jobs = u.api("GET", "jobs", params={"limit": 1000}).json()["jobs"]
    names = sorted(j["name"] for j in jobs)
    assert names == sorted(set(names)), "a submission made two jobs"
    for key in keys:
        assert isinstance(results[key], dict), f"{key}: {results[key]}"
        assert [j["id"] for j in jobs if j["name"] == key] == [results[key]["id"]]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(j["status"] == "COMPLETED" for j in u.api("GET", "jobs").json()["jobs"]):
            break
        time.sleep(0.5)
    assert_no_job_ran_twice(fp, [j["id"] for j in jobs])
    assert_ledger_consistent(fp)


def test_kill_9_mid_job_finds_it_again_and_runs_it_once(fp):
    u = User(fp, "jobkill")
    job = u.client().submit(kind="command", command="sleep 4; echo finished-once", name="survivor", cpu=0.1,
                            memory="64M")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen = u.api("GET", f"jobs/{job['id']}").json()
        if seen["status"] == "RUNNING":
            assert seen["process"].get("pid")
            break
        time.sleep(0.2)
    kill_service(fp)
    _recovered(fp, u.token)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen = u.api("GET", f"jobs/{job['id']}").json()
        if seen["status"] not in ("QUEUED", "RUNNING"):
            break
        time.sleep(0.3)
    assert seen["status"] == "COMPLETED", seen
    log = u.api("GET", f"jobs/{job['id']}/log").text
    assert log.count("finished-once") == 1
    assert_no_job_ran_twice(fp, [job["id"]])
    assert_ledger_consistent(fp)


def test_a_full_disk_during_patch_leaves_a_resumable_upload(fp):
    """A small tmpfs of the test's own over the upload store: the PATCH runs out of space."""
    store = fp.data_dir / "uploads"
    if os.system(f"mount -t tmpfs -o size=1m,mode=0700 astrago-faults-tmpfs {store}") != 0:
        pytest.fail("could not mount a tmpfs over the upload store (this test runs as root)")
    try:
        u = User(fp, "fulldisk")
        data = os.urandom(3 << 20)
        url = u.new_upload(len(data), "full.bin")
        r = u.patch(url, 0, data)
        assert_tus(r)
        assert r.status_code == 507 and r.json()["type"].endswith("/insufficient-storage")
        offset = int(u.head(url).headers["Upload-Offset"])
        assert offset < len(data)
        part = next(store.glob("*.part"))
        assert part.read_bytes() == data[:offset]
        assert os.system(f"mount -o remount,size=16m {store}") == 0  # space is freed
        u.resume(url, data)
        assert hashlib.sha256((u.home / "full.bin").read_bytes()).digest() == hashlib.sha256(data).digest()
        assert_answers_now(fp, u.token)
    finally:
        os.system(f"umount {store}")


def test_the_service_cookie_survives_a_service_restart(fp):
    """A browser's session with the service's pages outlives a restart (the secret is kept)."""
    u = User(fp, "cookie")
    r = u.session.get(fp.service_url + "me", timeout=30)  # through the hub's OAuth, as a browser
    assert r.status_code == 200 and u.name in r.text
    secret = fp.data_dir / "service_cookie_secret"
    assert secret.stat().st_mode & 0o777 == 0o600
    before = secret.read_text()
    kill_service(fp)
    _recovered(fp, u.token)
    r = u.session.get(fp.service_url + "me", timeout=30, allow_redirects=False)
    assert r.status_code == 200, (r.status_code, r.headers.get("Location"))  # no new login needed
    assert secret.read_text() == before


@pytest.fixture
def fresh_fp(artifacts):
    p = start_platform("astrago-stopstart-")
    yield p
    (artifacts / "faults-stopstart-platform.log").write_text(p.log())
    stop_platform(p)


def test_stopping_with_servers_running_leaks_nothing_at_the_next_start(fresh_fp):
    """The hub stops the service before users' servers, so their releases fail; the service's round
    at start, before its first admission, releases what they held."""
    p = fresh_fp
    u = User(p, "stopstart")
    start_server(p, u.token, u.name, slice_name="1g.10gb")
    held = admin_api(p, "GET", "allocations", params={"user": u.name}).json()["allocations"]
    assert [a["slice"] for a in held if a["status"] == "admitted"] == ["1g.10gb"]
    p.stop(sig=signal.SIGINT)  # Ctrl-C with the server running
    p.start()
    wait_answering(p)
    # the first look after the start: nothing is held for the server that is gone
    left = admin_api(p, "GET", "allocations", params={"user": u.name}).json()["allocations"]
    assert [a for a in left if a["status"] == "admitted"] == [], left
    from support.platform import api_token, login

    session, _ = login(p, "admin", p.admin_password)
    p.admin_token = api_token(p, session, "admin")
    u.session, _ = login(p, u.name, u.password)
    u.token = api_token(p, u.session, u.name)
    start_server(p, u.token, u.name, slice_name="1g.10gb")
    held = admin_api(p, "GET", "allocations", params={"user": u.name}).json()["allocations"]
    assert [a["slice"] for a in held if a["status"] == "admitted"] == ["1g.10gb"]  # one, not two
    quota = admin_api(p, "GET", f"users/{u.name}/quota").json()
    assert abs(quota["usage"]["gpu_units"] - 1 / 7) < 1e-9
    assert_ledger_consistent(p)
