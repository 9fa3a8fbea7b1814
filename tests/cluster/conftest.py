"""Cluster-mode tests: the Kubernetes API is FakeKubeAPI, a test double (kube_double.py).

`fake_kube` plugs the double in where kubespawner gets its client (`load_config`,
`shared_client`), so KubeSpawner's own code (reflectors, pod and PVC creation, deletion)
runs unchanged against it. Nothing here pretends a Kubernetes API server runs.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from kube_double import FakeKubeAPI  # noqa: E402
from support.fixtures import new_platform, require  # noqa: E402

#: the GPUs of the embedded platform below: one H100 cut 3g.40gb x2, one whole H100 (simulated)
CLUSTER = {"nodes": [{"name": "sim", "gpus": [{"model": "H100-80GB", "mode": "mig", "geometry": {"3g.40gb": 2}},
                                               {"model": "H100-80GB", "mode": "full"}]}]}


@pytest.fixture
async def fake_kube(monkeypatch):
    import kubespawner.reflector
    import kubespawner.spawner

    from astrago.spawners.inventory.kube_watch import NodeWatch
    from astrago.spawners.kube import GPUKubeSpawner

    fake = FakeKubeAPI()
    monkeypatch.setattr(kubespawner.spawner, "load_config", lambda **kw: None)
    monkeypatch.setattr(kubespawner.spawner, "shared_client", lambda *a, **k: fake)
    monkeypatch.setattr(kubespawner.reflector, "shared_client", lambda *a, **k: fake)
    yield fake
    await GPUKubeSpawner._stop_all_reflectors()
    await NodeWatch.stop_all()


@pytest.fixture(scope="session")
def astrago_service():
    """A real embedded AstraGo (hub, proxy, service, realm) whose admission API the spawner calls."""
    require(os.geteuid() == 0, "root (astrago up makes system accounts)")
    tmp = Path(tempfile.mkdtemp(prefix="astrago-kube-"))
    platform = new_platform(tmp, CLUSTER)
    platform.extra_env = {"ASTRAGO_RECONCILE_GRACE": "3600", "ASTRAGO_RECONCILE_INTERVAL": "3600"}
    platform.start()
    token = (platform.data_dir / "spawner_token").read_text().strip()
    yield SimpleNamespace(api=f"http://127.0.0.1:{platform.ports['service']}/services/astrago/api/", token=token,
                          platform=platform)
    platform.stop()
    platform.remove_system_accounts()
    shutil.rmtree(tmp, ignore_errors=True)
