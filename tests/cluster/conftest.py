"""Cluster-mode tests: the Kubernetes API is FakeKubeAPI, a test double (kube_double.py).

`fake_kube` plugs the double in where kubespawner gets its client (`load_config`,
`shared_client`), so KubeSpawner's own code (reflectors, pod and PVC creation, deletion)
runs unchanged against it. Nothing here pretends a Kubernetes API server runs.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from kube_double import FakeKubeAPI  # noqa: E402


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
