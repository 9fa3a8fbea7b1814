"""AstraGo deployed on a REAL Kubernetes cluster (docs/deploy-kubernetes.md, "Checking a deployment").

Not part of the suite's run (the file name does not match test_*.py, so nothing is collected
or skipped by default): an operator runs it by naming it, against their own cluster. The
suite's own cluster tests are the test_*.py files beside it, on the control plane built by
`make controlplane` (docs/testbed-kubernetes.md). Nothing here is a test double.

    KUBECONFIG=~/.kube/config \
    ASTRAGO_E2E_NAMESPACE=astrago \
    ASTRAGO_E2E_HUB_URL=https://astrago.example.org ASTRAGO_E2E_TOKEN=<a user's JupyterHub API token> \
    ASTRAGO_E2E_EXPECT_GPUS=1 \
    .venv/bin/python -m pytest tests/e2e_k8s/deployed_cluster_check.py -v -p no:cacheprovider
"""
import os
import time

import pytest
import requests
from kubernetes_asyncio import client, config

from astrago.spawners.inventory.kube_watch import NodeWatch
from astrago.spawners.kube.operator_config import DEVICE_PLUGIN_CONFIG_MAP, MIG_PARTED_CONFIG_MAP
from support.fixtures import require

NAMESPACE = os.environ.get("ASTRAGO_E2E_NAMESPACE", "astrago")
OPERATOR_NAMESPACE = os.environ.get("ASTRAGO_GPU_OPERATOR_NAMESPACE", "gpu-operator")


@pytest.fixture
async def core():
    await config.load_kube_config()
    async with client.ApiClient() as api_client:
        yield client.CoreV1Api(api_client)


async def test_the_hub_runs_astragos_image_and_exposes_the_service_port(core):
    pods = await core.list_namespaced_pod(NAMESPACE, label_selector="component=hub")
    assert pods.items, f"no hub pod in namespace {NAMESPACE}"
    hub = pods.items[0]
    assert hub.status.phase == "Running"
    assert "astrago" in hub.spec.containers[0].image
    env = {e.name for e in hub.spec.containers[0].env or []}
    assert {"ASTRAGO_MODE", "ASTRAGO_DB_URL", "ASTRAGO_SPAWNER_TOKEN"} <= env
    service = await core.read_namespaced_service("hub", NAMESPACE)
    assert 10101 in [p.port for p in service.spec.ports]


async def test_the_gpu_operator_reads_astragos_config_maps(core):
    for name in (MIG_PARTED_CONFIG_MAP, DEVICE_PLUGIN_CONFIG_MAP):
        assert (await core.read_namespaced_config_map(name, OPERATOR_NAMESPACE)).data


async def test_the_node_watch_reads_the_cluster(core):
    watch = NodeWatch(core, timeout_seconds=5)
    await watch.start()
    try:
        inventory = watch.inventory()
        if os.environ.get("ASTRAGO_E2E_EXPECT_GPUS"):
            assert inventory.gpu_count > 0, "no GPU node: is the GPU operator's feature discovery running?"
    finally:
        await watch.stop()


def test_a_cpu_workspace_starts_and_stops():
    url, token = os.environ.get("ASTRAGO_E2E_HUB_URL"), os.environ.get("ASTRAGO_E2E_TOKEN")
    require(bool(url and token), "ASTRAGO_E2E_HUB_URL and ASTRAGO_E2E_TOKEN (a user's API token)")
    h = {"Authorization": f"token {token}"}
    me = requests.get(f"{url}/hub/api/user", headers=h, timeout=30).json()["name"]
    r = requests.post(f"{url}/hub/api/users/{me}/server", json={"slice": "cpu"}, headers=h, timeout=60)
    assert r.status_code in (201, 202), r.text
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        server = requests.get(f"{url}/hub/api/users/{me}", headers=h, timeout=30).json()["servers"].get("", {})
        if server.get("ready"):
            break
        time.sleep(3)
    else:
        pytest.fail("the workspace did not become ready in 10 minutes")
    requests.delete(f"{url}/hub/api/users/{me}/server", headers=h, timeout=60)
