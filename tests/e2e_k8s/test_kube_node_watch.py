"""The shared node watch (spawners/inventory/kube_watch.py) against the real API server's watches,
as the hub's service account with the shipped RBAC: nodes added, relabelled and removed change
the inventory the service offers; a watch that ends is resumed from its resourceVersion (no
relist); bookmarks keep a quiet watch's resourceVersion current; after the API server
restarts, a stale resourceVersion gets 410 Gone and the watch lists again, missing nothing."""
import asyncio

import pytest
from kubernetes_asyncio import client, config as kube_config

from astrago.spawners.inventory.kube_watch import NodeWatch
from controlplane.gpu_nodes import mixed_mig_node
from controlplane.hub_rbac import hub_service_account_kubeconfig
from controlplane.rest import KubeError


class RecordingCoreV1:
    """The real CoreV1Api, with each list_node call's arguments written down (a spy, not a double)."""

    def __init__(self, api: client.CoreV1Api):
        self.api = api
        self.calls: list[dict] = []

    async def list_node(self, **kwargs):
        self.calls.append(dict(kwargs))
        return await self.api.list_node(**kwargs)

    def lists(self) -> list[dict]:
        return [c for c in self.calls if not c.get("watch")]

    def watches(self) -> list[dict]:
        return [c for c in self.calls if c.get("watch")]


@pytest.fixture(scope="module")
def hub_kubeconfig(control_plane):
    return hub_service_account_kubeconfig(control_plane)


@pytest.fixture
async def core(hub_kubeconfig):
    configuration = client.Configuration()
    await kube_config.load_kube_config(config_file=str(hub_kubeconfig), client_configuration=configuration)
    async with client.ApiClient(configuration) as api_client:
        yield RecordingCoreV1(client.CoreV1Api(api_client))


async def until(condition, what, timeout=60.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"waited {timeout:.0f}s for {what}"
        await asyncio.sleep(0.1)


def offered(watch, node):
    return [sorted(i.profile for i in gpu.mig_instances) for n, gpu in watch.inventory().gpus() if n.name == node]


def label(cp, node, labels):
    cp.rest.merge_patch("v1", "Node", node, {"metadata": {"labels": labels}})


async def test_a_node_added_relabelled_and_removed_changes_the_offer(control_plane, core):
    cp = control_plane
    heard = []
    watch = NodeWatch(core, timeout_seconds=5)
    watch.add_listener(heard.append)
    await watch.start()
    try:
        assert sorted(offered(watch, "gpu-mig-1")) == [["1g.10gb"] * 7, ["3g.40gb", "3g.40gb"]]
        assert "cpu-1" in watch.nodes and "cpu-1" not in [n.name for n in watch.inventory().nodes]
        spec = mixed_mig_node("gpu-mig-new", {"7g.80gb": 1}, gpus=1)
        await asyncio.to_thread(cp.add_node, **spec)
        await until(lambda: offered(watch, "gpu-mig-new") == [["7g.80gb"]], "the new node offered")
        # mig-manager and GFD after a re-cut: new counts, new capacity
        label(cp, "gpu-mig-new", {"nvidia.com/mig-7g.80gb.count": None, "nvidia.com/mig-1g.10gb.count": "7"})
        await until(lambda: offered(watch, "gpu-mig-new") == [["1g.10gb"] * 7], "the relabelled node offered")
        await asyncio.to_thread(cp.remove_node, "gpu-mig-new")
        await until(lambda: offered(watch, "gpu-mig-new") == [], "the removed node gone from the offer")
        assert [h for h in heard if "gpu-mig-new" in h] == [{"gpu-mig-new"}] * 3
        assert len(core.lists()) == 1  # one list, then watches only
    finally:
        await watch.stop()


async def test_an_ended_watch_resumes_from_its_resource_version_and_misses_nothing(control_plane, core):
    cp = control_plane
    watch = NodeWatch(core, timeout_seconds=1)
    await watch.start()
    try:
        await until(lambda: len(core.watches()) >= 1, "the first watch")
        listed_version = int(core.watches()[0]["resource_version"])
        label(cp, "cpu-1", {"testbed.astrago.dev/round": "1"})
        await until(lambda: len(core.watches()) >= 3, "two watches after the first ended")  # server-side timeouts
        label(cp, "cpu-1", {"testbed.astrago.dev/round": "2"})
        await until(lambda: watch.nodes["cpu-1"]["metadata"]["labels"].get("testbed.astrago.dev/round") == "2",
                    "the change seen")
        versions = [int(c["resource_version"]) for c in core.watches()]
        assert len(core.lists()) == 1, "an ended watch must be resumed, not listed again"
        assert versions == sorted(versions) and versions[-1] > listed_version
    finally:
        await watch.stop()


async def test_bookmarks_keep_a_quiet_watch_current(control_plane, core):
    """No node of the selector changes, but the cluster does: with bookmarks the watch's
    resourceVersion follows, so a restart later resumes instead of meeting 410 Gone."""
    cp = control_plane
    cp.rest.create({"apiVersion": "v1", "kind": "Node", "metadata": {
        "name": "quiet-1", "labels": {"testbed.astrago.dev/quiet": "true"}}})  # no kubelet: it never changes
    watch = NodeWatch(core, "testbed.astrago.dev/quiet=true", timeout_seconds=5)
    await watch.start()
    try:
        await until(lambda: core.watches(), "the first watch")
        for round_ in range(3):
            label(cp, "cpu-1", {"testbed.astrago.dev/noise": str(round_)})

        def resumed_past_the_quiet_nodes_last_event():
            # only a bookmark can carry a watch past the version of the last event it was sent
            last_event = int(watch.nodes["quiet-1"]["metadata"]["resourceVersion"])
            return any(int(c["resource_version"]) > last_event for c in core.watches()[1:])

        await until(resumed_past_the_quiet_nodes_last_event, "a watch resumed from a bookmark's resourceVersion",
                    timeout=40)
        assert all(c.get("allow_watch_bookmarks") for c in core.watches())
    finally:
        await watch.stop()
        cp.rest.delete("v1", "Node", "quiet-1")


async def test_after_an_api_server_restart_a_stale_version_is_gone_and_the_watch_lists_again(control_plane, core):
    cp = control_plane
    watch = NodeWatch(core, timeout_seconds=5, max_backoff=2)
    await watch.start()
    try:
        await until(lambda: core.watches(), "the first watch")
        stale = cp.rest.read("v1", "Node", "cpu-1")["metadata"]["resourceVersion"]
        await asyncio.to_thread(cp.restart_apiserver)
        # the new API server's watch cache starts at the current version: older ones are gone
        with pytest.raises(KubeError) as gone:
            for event in cp.rest.watch("/api/v1/nodes", stale, timeout_seconds=5):
                if event["type"] == "ERROR":
                    raise KubeError(event["object"]["code"], event["object"], "watch from a stale version")
        assert gone.value.status == 410
        label(cp, "cpu-1", {"testbed.astrago.dev/after-restart": "yes"})
        await until(lambda: watch.nodes["cpu-1"]["metadata"]["labels"].get("testbed.astrago.dev/after-restart")
                    == "yes", "the change after the restart seen")
        assert len(core.lists()) >= 2, "the watch must list again after losing its history"
    finally:
        await watch.stop()


async def test_gpu_changes_are_heard_status_updates_and_other_labels_are_not(control_plane, core):
    cp = control_plane
    heard = []
    watch = NodeWatch(core, timeout_seconds=5)
    watch.add_listener(heard.append)
    await watch.start()
    try:
        heard.clear()
        # what a kubelet sends every few seconds, and a label nobody in AstraGo reads
        cp.rest.merge_patch("v1", "Node", "gpu-a100-1", {"status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "testbed heartbeat",
             "lastHeartbeatTime": "2030-01-01T00:00:10Z", "lastTransitionTime": "2030-01-01T00:00:00Z"}]}},
            subresource="status")
        label(cp, "gpu-a100-1", {"topology.kubernetes.io/zone": "b"})
        await until(lambda: watch.nodes["gpu-a100-1"]["metadata"]["labels"].get("topology.kubernetes.io/zone")
                    == "b", "the zone label seen")
        assert heard == []
        label(cp, "gpu-a100-1", {"nvidia.com/gpu.count": "3"})
        await until(lambda: heard, "the GPU change heard")
        assert heard == [{"gpu-a100-1"}]
        assert [len(n.gpus) for n in watch.inventory().nodes if n.name == "gpu-a100-1"] == [3]
    finally:
        label(cp, "gpu-a100-1", {"nvidia.com/gpu.count": "4", "topology.kubernetes.io/zone": None})
        await watch.stop()


async def test_one_shared_watch_per_process(core):
    try:
        first = await NodeWatch.shared(lambda: core)
        second = await NodeWatch.shared(lambda: core)
        assert first is second
        assert len(core.lists()) == 1
    finally:
        await NodeWatch.stop_all()


def test_one_list_for_start_up_and_a_clear_error_without_the_rbac(control_plane, hub_kubeconfig):
    """The service lists nodes once at start (no event loop yet). A service account without the
    shipped node grants gets the API server's real 403, said in words an operator can act on."""
    from astrago.spawners.inventory import InventoryUnavailable
    from astrago.spawners.inventory.kube_watch import list_nodes_once

    def factory(kubeconfig):
        configuration = client.Configuration()
        asyncio.run(kube_config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration))
        return lambda: client.CoreV1Api(client.ApiClient(configuration))

    names = {n["metadata"]["name"] for n in list_nodes_once(factory(hub_kubeconfig))}
    assert {"gpu-mig-1", "gpu-mps-1", "cpu-1"} <= names
    nobody = control_plane.service_account_kubeconfig("astrago", "nobody")
    with pytest.raises(InventoryUnavailable) as error:
        list_nodes_once(factory(nobody), attempts=1)
    assert "403" in str(error.value) and "needs get/list/watch on nodes" in str(error.value)


def test_gpu_signature_is_nvidia_labels_and_capacity_only():
    from astrago.spawners.inventory.kube_watch import gpu_signature

    spec = mixed_mig_node("n1", {"7g.80gb": 1}, gpus=1)

    def node(labels=None, capacity=None):
        return {"metadata": {"name": "n1", "labels": {**spec["labels"], **(labels or {})}},
                "status": {"capacity": {**spec["capacity"], **(capacity or {})}}}

    assert gpu_signature(node()) == gpu_signature(node({"kubernetes.io/arch": "arm64"}, {"cpu": "128"}))
    assert gpu_signature(node()) != gpu_signature(node({"nvidia.com/mig.config.state": "pending"}))
    assert gpu_signature(node()) != gpu_signature(node(capacity={"nvidia.com/mig-7g.80gb": "0"}))


def test_the_service_reads_the_cluster_inventory_at_start(control_plane, hub_kubeconfig):
    """The service's start-up read (hub/quota/inventory_source in cluster mode), in its own
    process as the service runs it, with the hub's kubeconfig: the GPU nodes, not the CPU node."""
    import json
    import os
    import subprocess
    import sys

    script = ("import json\nfrom types import SimpleNamespace\n"
              "from astrago.hub.quota import inventory_source\n"
              "inventory, note = inventory_source.load_inventory(SimpleNamespace(mode='cluster', inventory_file=''))\n"
              "print(json.dumps([note, {n.name: len(n.gpus) for n in inventory.nodes}]))\n")
    env = {**os.environ, "KUBECONFIG": str(hub_kubeconfig)}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    note, gpus = json.loads(done.stdout.strip().splitlines()[-1])
    assert note == f"{sum(gpus.values())} NVIDIA GPU(s) on {len(gpus)} node(s), from the Kubernetes API."
    assert {"gpu-mig-1": 2, "gpu-mps-1": 1, "gpu-a100-1": 4, "gpu-h200-1": 2}.items() <= gpus.items()
    assert "cpu-1" not in gpus
