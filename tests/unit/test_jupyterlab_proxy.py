"""The JupyterLab extension's server part: `/astrago/api/...` on a single-user server -> the service.

A real `jupyter server` (this environment's) loads `astrago_jupyterlab` from the source tree; the
service it forwards to is a small recording HTTP server here (a stand-in for the AstraGo service:
what matters is what reaches it). Checked: the server's token is added and the browser's cookies
and Authorization stay behind; paths stay under the service's api/ (no `..`, no encoded slashes,
no other host); only signed-in callers pass; answers stream through unbuffered (SSE).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from support.platform import REPO, free_port

LABEXT = REPO / "extensions" / "labextension"
SERVER_TOKEN = "server-token-of-the-hub"
LAB_TOKEN = "lab-login-token"


class Upstream(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _UpstreamHandler)
        self.seen: list[dict] = []
        self.event_sent: dict[int, float] = {}
        self.dropped = False


class _UpstreamHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _record(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                 "body": body})

    def do_GET(self):
        self._record()
        if self.path.startswith("/services/astrago/api/jobs/j1/events"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            count = 40 if "long" in self.path else 2
            try:
                for i in range(count):
                    chunk = f"id: 1:{i}\nevent: log\ndata: {json.dumps({'text': f'line {i}'})}\n\n".encode()
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    self.wfile.flush()
                    self.server.event_sent[i] = time.monotonic()
                    time.sleep(1.5 if count == 2 else 0.25)
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                self.server.dropped = True  # the proxy closed its request: nobody is listening any more
            return
        self._answer(200, {"name": "pia", "path": self.path})

    def do_POST(self):
        self._record()
        self._answer(201, {"id": "j1", "status": "QUEUED"})

    def _answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", "service-session=secret; Path=/")
        self.send_header("X-Log-Next-Offset", "42")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def upstream():
    server = Upstream()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def lab(upstream, tmp_path_factory):
    """A real jupyter server with the extension, told the service is `upstream`."""
    port = free_port()
    root = tmp_path_factory.mktemp("lab-root")
    # the shipped switch (what pip installs into etc/jupyter/jupyter_server_config.d) turns it on
    switch = LABEXT / "jupyter-config" / "jupyter_server_config.d" / "astrago_jupyterlab.json"
    (root / "config" / "jupyter_server_config.d").mkdir(parents=True)
    (root / "config" / "jupyter_server_config.d" / switch.name).write_text(switch.read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "ASTRAGO_"))}
    env.update(PYTHONPATH=str(LABEXT), JUPYTERHUB_API_TOKEN=SERVER_TOKEN, JUPYTER_CONFIG_DIR=str(root / "config"),
               JUPYTER_RUNTIME_DIR=str(root / "runtime"), JUPYTER_DATA_DIR=str(root / "data"),
               ASTRAGO_SERVICE_URL=f"http://127.0.0.1:{upstream.server_address[1]}/services/astrago/",
               ASTRAGO_SLICE="1g.10gb", CUDA_VISIBLE_DEVICES="MIG-sim-0-1-1g.10gb", JUPYTERHUB_USER="pia")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={LAB_TOKEN}", "--ServerApp.base_url=/user/pia/",
         "--allow-root"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}/user/pia/"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"jupyter server exited: {proc.stdout.read()}")
        try:
            if requests.get(base + "api/status", headers=_lab(), timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            time.sleep(0.2)
    else:
        raise AssertionError("jupyter server did not start")
    yield {"base": base, "root": root}
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _lab() -> dict:
    return {"Authorization": f"token {LAB_TOKEN}"}


def test_upstream_urls_stay_under_the_services_api():
    sys.path.insert(0, str(LABEXT))
    try:
        from astrago_jupyterlab.proxy import PathRefused, upstream_url
    finally:
        sys.path.remove(str(LABEXT))
    base = "http://hub.example:8000/services/astrago/"
    assert upstream_url(base, "jobs") == "http://hub.example:8000/services/astrago/api/jobs"
    assert upstream_url(base, "jobs/ab12/log", "offset=10") == \
        "http://hub.example:8000/services/astrago/api/jobs/ab12/log?offset=10"
    assert upstream_url(base, "uploads/") == "http://hub.example:8000/services/astrago/api/uploads/"
    assert upstream_url(base, "users/a%40b/quota") == "http://hub.example:8000/services/astrago/api/users/a@b/quota"
    for bad in ("..", "../hub/api/users", "jobs/../../hub", "%2e%2e/hub", "a%2Fb", "%2F%2Fevil.example/x",
                "//evil.example/x", "http://evil.example/x", "jobs\\..\\x", "a%5cb", "./jobs", "a//b"):
        with pytest.raises(PathRefused):
            upstream_url(base, bad)
    with pytest.raises(PathRefused):
        upstream_url("", "jobs")


def test_the_servers_token_goes_up_the_browsers_credentials_do_not(lab, upstream):
    upstream.seen.clear()
    r = requests.get(lab["base"] + "astrago/api/whoami?x=1", timeout=10,
                     headers={**_lab(), "Cookie": "lab-cookie=private", "X-Other": "dropped"})
    assert r.status_code == 200, r.text
    assert r.json()["path"] == "/services/astrago/api/whoami?x=1"
    assert "service-session" not in r.headers.get("Set-Cookie", "")
    assert r.headers["X-Log-Next-Offset"] == "42"
    [seen] = upstream.seen
    assert seen["headers"]["Authorization"] == f"token {SERVER_TOKEN}"
    assert "Cookie" not in seen["headers"] and "X-Other" not in seen["headers"]


def test_a_post_body_goes_up_with_its_content_type(lab, upstream):
    upstream.seen.clear()
    xsrf = "abc"
    r = requests.post(lab["base"] + "astrago/api/jobs", timeout=10, json={"kind": "notebook", "slice": "cpu"},
                      headers={**_lab(), "X-XSRFToken": xsrf})
    assert r.status_code == 201, r.text
    [seen] = upstream.seen
    assert seen["method"] == "POST" and seen["path"] == "/services/astrago/api/jobs"
    assert json.loads(seen["body"]) == {"kind": "notebook", "slice": "cpu"}
    assert seen["headers"]["Content-Type"] == "application/json"


@pytest.mark.parametrize("path", ["..%2F..%2Fhub%2Fapi%2Fusers", "%2e%2e/%2e%2e/hub/api/users",
                                  "http:%2F%2F127.0.0.1:9%2Fx", "jobs%2F..%2F..%2Fadmin", "a//b"])
def test_no_path_leaves_the_services_api(lab, upstream, path):
    upstream.seen.clear()
    r = requests.get(lab["base"] + "astrago/api/" + path, headers=_lab(), timeout=10)
    assert r.status_code == 404, (path, r.status_code, r.text)
    assert upstream.seen == []


def test_callers_who_are_not_signed_in_get_nothing(lab, upstream):
    upstream.seen.clear()
    for method in ("GET", "POST"):
        r = requests.request(method, lab["base"] + "astrago/api/whoami", timeout=10)
        assert r.status_code == 403, (method, r.status_code)
    r = requests.get(lab["base"] + "astrago/api/whoami", timeout=10, headers={"Authorization": "token wrong"})
    assert r.status_code == 403
    assert upstream.seen == []


def test_server_info_names_the_slice_devices_and_root(lab):
    info = requests.get(lab["base"] + "astrago/server", headers=_lab(), timeout=10).json()
    assert info["slice"] == "1g.10gb" and info["visible_devices"] == ["MIG-sim-0-1-1g.10gb"]
    assert info["user"] == "pia" and info["service"] is True
    assert Path(info["root_dir"]) == Path(lab["root"])


def test_events_stream_through_unbuffered(lab, upstream):
    upstream.event_sent.clear()
    with requests.get(lab["base"] + "astrago/api/jobs/j1/events?offset=0&_xsrf=tok", timeout=20, stream=True,
                      headers={**_lab(), "Accept": "text/event-stream"}) as r:
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        lines = r.iter_lines(decode_unicode=True)
        first = next(line for line in lines if line.startswith("data:"))
        got_first = time.monotonic()
        assert json.loads(first[5:])["text"] == "line 0"
        # the first event arrived while the service was still holding back the second
        assert 1 not in upstream.event_sent or got_first < upstream.event_sent[1]
        rest = [line for line in lines if line.startswith("data:")]
    assert [json.loads(x[5:])["text"] for x in rest] == ["line 1"]
    assert "_xsrf" not in upstream.seen[-1]["path"]  # the server's own XSRF token stays here


def test_a_browser_that_leaves_ends_the_stream_upstream(lab, upstream):
    upstream.dropped = False
    with requests.get(lab["base"] + "astrago/api/jobs/j1/events?long=1", timeout=20, stream=True,
                      headers={**_lab(), "Accept": "text/event-stream"}) as r:
        next(line for line in r.iter_lines(decode_unicode=True) if line.startswith("data:"))
    deadline = time.monotonic() + 8
    while not upstream.dropped and time.monotonic() < deadline:
        time.sleep(0.1)
    assert upstream.dropped, "the service's stream went on after the browser left"
