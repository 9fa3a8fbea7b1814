"""Fixtures of the monitoring tests: a real embedded AstraGo on simulated GPUs, shared by the
end-to-end tests of this folder.

No GPU here: the inventory is a static file (a named stand-in for NVML's), and the devices'
readings come from the simulated collector's load file (`simulated-gpu-load.json` in the data
directory). The hub, proxy, service, realm, spawner and users' servers all run for real.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from monkit import INVENTORY, MonitoredPlatform
from support.fixtures import new_platform, require


@pytest.fixture(scope="package")
def gpu_platform():
    require(os.geteuid() == 0, "root (the local spawner makes a system account per user)")
    tmp = Path(tempfile.mkdtemp(prefix="astrago-monitor-"))
    p = new_platform(tmp, INVENTORY)
    p.start()
    try:
        yield MonitoredPlatform(p)
    finally:
        p.stop()
        p.remove_system_accounts()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(autouse=True)
def _keep_platform_log(request, artifacts):
    yield
    if "gpu_platform" in request.fixturenames:
        mp = request.getfixturevalue("gpu_platform")
        (artifacts / "monitoring-platform.log").write_text(mp.p.log())
