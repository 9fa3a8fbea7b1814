"""Abuse, as a user or an attacker would try it, on a real embedded AstraGo: floods of jobs and
uploads, tokens without scopes, concurrent uploads against a quota, competing tus requests.

Real: hub, proxy, service, realm, job processes (as each user's account), tus over HTTP. GPUs
are a static inventory (a named stand-in for NVML).
"""
from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import pytest
import requests

from faultkit import OCTET, User, admin_api, assert_ledger_consistent, assert_tus
from support.platform import api_token


def _problem(r: requests.Response) -> dict:
    assert r.headers["Content-Type"].startswith("application/problem+json"), r.text[:300]
    return r.json()


# -- defect 3: pages honour token scopes ------------------------------------------------

def test_a_token_without_scopes_gets_no_page_and_no_data(fp):
    u = User(fp, "noscope")
    secret_job = u.client().submit(kind="command", command="true", name="visible-only-with-scopes", cpu=0.1,
                                   memory="64M")
    bare = api_token(fp, u.session, u.name, scopes=[])
    h = {"Authorization": f"token {bare}"}
    assert requests.get(fp.service_url + "api/jobs", headers=h, timeout=30).status_code == 403  # the API refuses
    for page in ("me", "jobs"):
        r = requests.get(fp.service_url + page, headers=h, timeout=30, allow_redirects=False)
        assert r.status_code == 403, (page, r.status_code)
        assert secret_job["id"] not in r.text and "visible-only-with-scopes" not in r.text
        assert "access:services" in r.text  # the page says which scope is missing
    full = {"Authorization": f"token {u.token}"}
    r = requests.get(fp.service_url + "jobs", headers=full, timeout=30, allow_redirects=False)
    assert r.status_code == 200 and secret_job["id"] in r.text  # the owner's own token still sees it


# -- defect 10: the OpenAPI document and TRACE -------------------------------------------

def test_operation_ids_are_unique_and_a_405_names_the_allowed_methods(fp):
    doc = requests.get(fp.service_url + "api/openapi.json", timeout=30).json()
    ids = [op["operationId"] for item in doc["paths"].values() for m, op in item.items() if isinstance(op, dict)
           and "operationId" in op]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for path in ("api/jobs", "api/uploads/"):
        r = requests.request("TRACE", fp.service_url + path, timeout=30)
        assert r.status_code == 405
        assert "GET" in r.headers["Allow"] and "POST" in r.headers["Allow"] and "TRACE" not in r.headers["Allow"]
        assert _problem(r)["type"].endswith("/method-not-allowed")
    u = User(fp, "tusver")
    r = requests.post(u.uploads, headers={**u.headers, "Upload-Length": "3"}, timeout=30)  # no Tus-Resumable
    assert r.status_code == 412 and r.headers["Tus-Version"] == "1.0.0"
    header = next(p for p in doc["paths"]["/api/uploads/"]["post"]["parameters"] if p["name"] == "Tus-Resumable")
    assert header["required"] is False and "412" in doc["paths"]["/api/uploads/"]["post"]["responses"]


def test_a_dataset_version_beyond_any_integer_is_not_found_not_a_500(fp):
    """Found by the schema fuzzing: a 20-digit version overflowed the database's integer."""
    u = User(fp, "bigver")
    for method in ("GET", "DELETE"):
        r = requests.request(method, fp.service_url + "api/datasets/imagenet/10000000000000000000",
                             headers=u.headers, timeout=30)
        assert r.status_code == 404, (method, r.status_code, r.text[:300])
        assert "There is no dataset imagenet:10000000000000000000" in _problem(r)["detail"]


# -- defect 2: no user floods the machine -------------------------------------------------

def test_a_flood_of_jobs_from_two_users_is_bounded_and_refusals_name_the_limit(fp):
    users = [User(fp, "flooda"), User(fp, "floodb")]
    results = {u.name: [] for u in users}

    def submit(u, i):
        r = u.api("POST", "jobs", json={"kind": "command", "command": "sleep 60", "name": f"flood-{i}",
                                        "cpu": 0.5, "memory": "64M", "client_key": f"flood-{u.name}-{i}"})
        results[u.name].append(r)

    with ThreadPoolExecutor(max_workers=12) as pool:
        for u in users:
            for i in range(28):
                pool.submit(submit, u, i)
    try:
        for u in users:
            accepted = [r for r in results[u.name] if r.status_code == 201]
            refused = [r for r in results[u.name] if r.status_code != 201]
            assert len(accepted) + len(refused) == 28
            assert 20 <= len(accepted) <= 28 - 1, len(accepted)  # waiting jobs are capped (running ones free room)
            for r in refused:
                assert r.status_code == 403, r.text
                body = _problem(r)
                assert body["type"].endswith("/quota-exceeded") and body["dimension"] == "queued_jobs"
                assert "the limit is 20" in body["detail"] and "astrago job cancel" in body["detail"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # let the scheduler start what it may
            jobs = admin_api(fp, "GET", "jobs", params={"status": "RUNNING"}).json()["jobs"]
            if jobs:
                break
            time.sleep(0.5)
        time.sleep(3)
        running = admin_api(fp, "GET", "jobs", params={"status": "RUNNING", "limit": 1000}).json()["jobs"]
        mine = [j for j in running if j["owner"] in results]
        assert mine, "nothing ran"
        cores = 2.0 * (os.cpu_count() or 1)
        assert sum(j["cpu"] for j in mine) <= cores  # the machine's capacity bounds what runs at once
        for u in users:
            assert len([j for j in mine if j["owner"] == u.name]) <= 8  # running_jobs default
        for j in mine:  # RUNNING only once the process runs
            pid = j["process"].get("pid")
            assert pid and os.path.exists(f"/proc/{pid}"), j
        waiting = admin_api(fp, "GET", "jobs", params={"status": "QUEUED", "limit": 1000}).json()["jobs"]
        assert all(not j["process"].get("pid") for j in waiting if j["owner"] in results)
        assert_ledger_consistent(fp)
    finally:
        for u in users:
            for j in u.api("GET", "jobs", params={"limit": 1000}).json()["jobs"]:
                if j["status"] in ("QUEUED", "RUNNING", "CREATED"):
                    u.api("POST", f"jobs/{j['id']}/cancel")


# -- defect 4: a retried submission never makes a second job -------------------------------

def test_a_submission_retried_with_its_key_returns_the_same_job(fp):
    u = User(fp, "idem")
    spec = {"kind": "command", "command": "true", "name": "once", "cpu": 0.1, "memory": "64M", "client_key": "k-1"}
    first = u.api("POST", "jobs", json=spec)
    assert first.status_code == 201, first.text
    again = u.api("POST", "jobs", json=spec)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    header = u.api("POST", "jobs", json={k: v for k, v in spec.items() if k != "client_key"},
                   headers={"Idempotency-Key": "k-1"})
    assert header.status_code == 200 and header.json()["id"] == first.json()["id"]
    assert [j["name"] for j in u.api("GET", "jobs").json()["jobs"]] == ["once"]


# -- defect 5: concurrent uploads cannot overrun the storage quota -----------------------------

def test_simultaneous_uploads_never_exceed_the_storage_quota(fp):
    u = User(fp, "quotarace")
    r = admin_api(fp, "PUT", f"quotas/user/{u.name}", json={"limits": {"storage_gib": 2 / 1024}})  # 2 MiB
    assert r.status_code == 200, r.text
    size = 600 * 1024
    data = [os.urandom(size) for _ in range(10)]
    barrier = threading.Barrier(10)

    def one(i):
        barrier.wait()
        r = u.create_upload(size, f"race-{i}.bin")
        if r.status_code != 201:
            return r.status_code, r
        url = requests.compat.urljoin(fp.url, r.headers["Location"])
        return u.patch(url, 0, data[i]).status_code, r

    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(one, range(10)))
    placed = sorted(u.home.glob("race-*.bin")) if u.home.exists() else []
    assert sum(p.stat().st_size for p in placed) <= 2 * 1024 * 1024
    assert len(placed) == 3 and [c for c, _ in outcomes].count(204) == 3
    for code, r in outcomes:
        if code not in (204,):
            assert code == 413 and _problem(r)["type"].endswith("/quota-exceeded")
    for p in placed:
        i = int(p.stem.split("-")[1])
        assert hashlib.sha256(p.read_bytes()).digest() == hashlib.sha256(data[i]).digest()


# -- defect 6: uploads do not interrupt each other -------------------------------------------

def _slow_patch(fp, u, url, data, pieces: int, pause: float) -> socket.socket:
    path = urlparse(url).path
    s = socket.create_connection(("127.0.0.1", fp.port))
    s.sendall((f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: token {u.token}\r\n"
               f"Tus-Resumable: 1.0.0\r\nContent-Type: {OCTET}\r\nUpload-Offset: 0\r\n"
               f"Content-Length: {len(data)}\r\n\r\n").encode())
    step = len(data) // pieces
    for i in range(pieces):
        s.sendall(data[i * step:(i + 1) * step if i < pieces - 1 else len(data)])
        time.sleep(pause)
    return s


def _wait_until_writing(u, url, timeout: float = 30) -> None:
    """Until the server says a request holds the upload (GET api/uploads/<id>: `writing`), which
    never interrupts it: a slow PATCH's headers were taken and its body is arriving."""
    deadline = time.monotonic() + timeout
    while True:
        r = requests.get(url, headers=u.headers, timeout=30)
        assert r.status_code == 200, r.text[:300]
        if r.json()["writing"]:
            return
        assert time.monotonic() < deadline, "the slow PATCH never started writing"
        time.sleep(0.02)


@pytest.mark.parametrize("size", [1 << 20, 8 << 20], ids=["1MiB", "8MiB-the-upload-pages-chunk"])
def test_head_never_interrupts_a_patch_and_a_competing_patch_gets_423(fp, size):
    """A refused PATCH's body is read before the 423, so configurable-http-proxy passes the tus
    answer on (an early close made it answer its own HTML 503)."""
    u = User(fp, "competing")
    data = os.urandom(size)
    url = u.new_upload(len(data), "competing.bin")
    answers = []
    done = threading.Event()
    slow: dict = {}

    def send_slowly():
        try:
            slow["socket"] = _slow_patch(fp, u, url, data, pieces=12, pause=0.25)  # alive: bytes every 0.25 s
        except BaseException as exc:  # noqa: BLE001 -- re-raised in the test's thread
            slow["error"] = exc

    def ask_while_writing():
        while not done.is_set():
            answers.append(u.head(url))
            answers.append(u.patch(url, 0, data))
            time.sleep(0.2)

    sender = threading.Thread(target=send_slowly)
    sender.start()
    asker = threading.Thread(target=ask_while_writing)
    try:
        # the competing requests start only once the slow PATCH holds the upload, so under any load
        # they compete with it instead of taking the upload before its headers arrive
        _wait_until_writing(u, url)
        asker.start()
        sender.join()
        if "error" in slow:
            raise slow["error"]
        s = slow["socket"]
        s.settimeout(60)
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = s.recv(65536)
            assert chunk, "the slow PATCH was cut off"
            reply += chunk
        s.close()
    finally:
        done.set()
        sender.join()
        if asker.ident is not None:  # started
            asker.join()
    assert reply.startswith(b"HTTP/1.1 204"), reply[:200]
    assert b"tus-resumable: 1.0.0" in reply.lower()
    assert answers
    for r in answers:
        assert_tus(r)
        assert r.status_code in (200, 204, 409, 423), (r.request.method, r.status_code, r.text[:200])
    assert any(r.request.method == "PATCH" and r.status_code == 423 for r in answers)
    assert hashlib.sha256((u.home / "competing.bin").read_bytes()).digest() == hashlib.sha256(data).digest()


def test_fifty_concurrent_patches_to_one_upload_all_get_tus_answers_and_it_finishes(fp):
    u = User(fp, "fifty")
    data = os.urandom(512 * 1024)
    url = u.new_upload(len(data), "fifty.bin")
    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(lambda _: u.patch(url, 0, data), range(50)))
    for r in answers:
        assert_tus(r)
        assert r.status_code in (204, 409, 423), (r.status_code, r.text[:200])
    u.resume(url, data)  # whatever happened, the upload completes from where it is
    assert hashlib.sha256((u.home / "fifty.bin").read_bytes()).digest() == hashlib.sha256(data).digest()


def test_a_request_cut_off_without_a_word_frees_the_upload_for_the_next_client(fp):
    """A page reload behind a proxy: the old PATCH sends nothing more; the next client takes over."""
    u = User(fp, "reload")
    data = os.urandom(1 << 20)
    url = u.new_upload(len(data), "reload.bin")
    path = urlparse(url).path
    stalled = socket.create_connection(("127.0.0.1", fp.port))
    stalled.sendall((f"PATCH {path} HTTP/1.1\r\nHost: x\r\nAuthorization: token {u.token}\r\n"
                     f"Tus-Resumable: 1.0.0\r\nContent-Type: {OCTET}\r\nUpload-Offset: 0\r\n"
                     f"Content-Length: {len(data)}\r\n\r\n").encode() + data[:200_000])
    try:
        u.resume(url, data, tries=30)  # 423 while it may be alive, then the stalled one is taken over
        assert hashlib.sha256((u.home / "reload.bin").read_bytes()).digest() == hashlib.sha256(data).digest()
    finally:
        stalled.close()


def test_a_refused_tus_request_with_a_body_keeps_its_connection_for_the_next_one(fp):
    """Found by the schema fuzzing: a DELETE with a small body refused (412) before its body was read
    made tornado close the connection, and the proxy, reusing it, answered the next request with
    its own HTML 503. Spoken to the service directly, on one connection."""
    u = User(fp, "keepconn")
    path = urlparse(u.uploads).path + "0" * 32
    conn = socket.create_connection(("127.0.0.1", fp.ports["service"]), timeout=30)
    try:
        for _ in range(2):
            conn.sendall((f"DELETE {path} HTTP/1.1\r\nHost: x\r\nAuthorization: token {u.token}\r\n"
                          f"Content-Length: 5\r\n\r\nhello").encode())
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = conn.recv(65536)
                assert chunk, "the service closed the connection after a refused request"
                answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 412"), head[:200]
            length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            while len(body) < length:
                body += conn.recv(65536)
            assert b"Connection: close" not in head
    finally:
        conn.close()
