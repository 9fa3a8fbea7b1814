"""GPU slices on a machine described by a static inventory (no real GPU here: the
inventory file is a named stand-in for NVML; the spawner, hub and servers are real)."""
import shutil
import tempfile
from pathlib import Path

import pytest
import requests

from support.fixtures import new_platform, require
from support.kernel import run_code
from support.platform import api_token, login, start_server, stop_server

INVENTORY = {
    "nodes": [{
        "name": "demo",
        "gpus": [
            {"model": "H100-80GB", "mode": "mig", "geometry": {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}},
            {"model": "H100-80GB", "mode": "full"},
        ],
    }]
}


@pytest.fixture(scope="module")
def gpu_platform():
    import os

    require(os.geteuid() == 0, "root")
    tmp = Path(tempfile.mkdtemp(prefix="astrago-gpu-"))
    p = new_platform(tmp, INVENTORY)
    p.start()
    yield p
    p.stop()
    p.remove_system_accounts()
    shutil.rmtree(tmp, ignore_errors=True)


def _user(p, base):
    name, pw = p.add_user(base)
    session, _ = login(p, name, pw)
    return name, session, api_token(p, session, name)


def test_options_form_offers_the_simulated_slices_with_their_cost(gpu_platform):
    name, session, _ = _user(gpu_platform, "olga")
    page = session.get(f"{gpu_platform.url}/hub/spawn", timeout=30).text
    assert "Simulated GPUs" in page and "no real GPU" in page
    for slice_name, units in (("cpu", "0 GPU units"), ("1g.10gb", "0.14 GPU units"), ("2g.20gb", "0.29 GPU units"),
                              ("3g.40gb", "0.43 GPU units"), ("gpu-1", "1.00 GPU units")):
        assert f'value="{slice_name}"' in page
        assert units in page
    assert "(0.14 GPU units, 10 GB GPU memory, 2 free now)" in page  # the two 1g.10gb instances
    assert "Your GPU quota: unlimited." in page


def test_mig_slice_is_exclusive_queued_spawn_starts_when_the_holder_stops(gpu_platform):
    p = gpu_platform
    a, _, ta = _user(p, "mig-a")
    b, session_b, tb = _user(p, "mig-b")
    start_server(p, ta, a, "3g.40gb")
    try:
        env = run_code(p.url, a, ta, "import os; print(os.environ['CUDA_VISIBLE_DEVICES'], os.environ['ASTRAGO_SLICE'])")
        visible, slice_name = env["stdout"].split()
        assert visible.startswith("MIG-sim-demo-0-") and visible.endswith("-3g.40gb")
        assert slice_name == "3g.40gb"
        page = session_b.get(f"{p.url}/hub/spawn", timeout=30).text
        assert "none free now: you will wait in the queue" in page
        r = requests.post(f"{p.url}/hub/api/users/{b}/server", json={"slice": "3g.40gb"},
                          headers={"Authorization": f"token {tb}"}, timeout=60)
        assert r.status_code == 202  # pending: queued behind A
        events = _progress_until(p, tb, b, "Queued: position 1 of 1 for 3g.40gb")
        assert any("Queued: position 1 of 1 for 3g.40gb" in e for e in events)
    finally:
        stop_server(p, ta, a)
    # A's stop released the slice; B's queued spawn now starts on the same instance
    model = _wait_ready(p, tb, b)
    assert model["servers"][""]["ready"]
    env = run_code(p.url, b, tb, "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])")
    assert env["stdout"].strip() == visible
    stop_server(p, tb, b)


def _progress_until(p, token, name, needle, timeout=60):
    """Read the spawn's progress event stream (server-sent events) until `needle` shows up."""
    import json
    import time

    seen = []
    deadline = time.monotonic() + timeout
    with requests.get(f"{p.url}/hub/api/users/{name}/server/progress", headers={"Authorization": f"token {token}"},
                      stream=True, timeout=timeout) as r:
        for line in r.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                seen.append(json.loads(line[5:]).get("message", ""))
                if needle in seen[-1]:
                    return seen
            if time.monotonic() > deadline:
                break
    return seen


def _wait_ready(p, token, name, timeout=60):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = requests.get(f"{p.url}/hub/api/users/{name}", headers={"Authorization": f"token {token}"},
                             timeout=30).json()
        if model["servers"].get("", {}).get("ready"):
            return model
        time.sleep(0.5)
    raise AssertionError(f"{name}'s queued server did not start: {model}")


def test_whole_gpu_slice_sets_the_gpu_uuid(gpu_platform):
    p = gpu_platform
    c, _, tc = _user(p, "full-c")
    start_server(p, tc, c, "gpu-1")
    try:
        out = run_code(p.url, c, tc, "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])")
        assert out["stdout"].strip() == "GPU-sim-demo-1"
    finally:
        stop_server(p, tc, c)
