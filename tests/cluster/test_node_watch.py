"""The shared node watch (spawners/inventory/kube_watch.py) against FakeKubeAPI, the Kubernetes
API test double: list, then watch; GPU-relevant changes only; relist after 410 Gone and after
the watch times out; one shared cache per process."""
import asyncio

import pytest

from astrago.spawners.inventory import InventoryUnavailable
from astrago.spawners.inventory.kube_watch import NodeWatch, gpu_signature, list_nodes_once
from gpu_nodes import cpu_node, h100_node
from kubernetes_asyncio.client.exceptions import ApiException


async def until(condition, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def geometry(inventory, node):
    return [sorted(i.profile for i in gpu.mig_instances) for n, gpu in inventory.gpus() if n.name == node]


@pytest.fixture
async def watched(fake_kube):
    fake_kube.add_node(h100_node("n1", 2, {"3g.40gb": 4}))
    fake_kube.add_node(cpu_node("c1"))
    heard = []
    watch = NodeWatch(fake_kube, timeout_seconds=1)
    watch.add_listener(heard.append)
    await watch.start()
    yield fake_kube, watch, heard
    await watch.stop()


async def test_first_list_fills_the_cache_and_the_inventory(watched):
    fake, watch, heard = watched
    assert sorted(watch.nodes) == ["c1", "n1"]
    assert heard == [{"c1", "n1"}]
    assert geometry(watch.inventory(), "n1") == [["3g.40gb", "3g.40gb"], ["3g.40gb", "3g.40gb"]]
    assert [n.name for n in watch.inventory().nodes] == ["n1"]  # nodes without GPUs are left out


async def test_gpu_label_changes_are_heard_heartbeats_are_not(watched):
    fake, watch, heard = watched
    await until(lambda: fake.watcher_count("nodes") == 1)
    fake.touch_node("n1", "2030-01-01T00:00:10Z")
    fake.set_node_labels("c1", {"topology.kubernetes.io/zone": "b"})
    await until(lambda: watch.nodes["c1"]["metadata"]["labels"].get("topology.kubernetes.io/zone") == "b")
    assert heard == [{"c1", "n1"}]
    fake.set_node_labels("n1", {"nvidia.com/mig-3g.40gb.count": "2", "nvidia.com/mig-1g.10gb.count": "7"})
    await until(lambda: len(heard) == 2)
    assert heard[-1] == {"n1"}
    assert geometry(watch.inventory(), "n1") == [["1g.10gb"] * 7, ["3g.40gb", "3g.40gb"]]


async def test_new_and_removed_nodes(watched):
    fake, watch, heard = watched
    await until(lambda: fake.watcher_count("nodes") == 1)
    fake.add_node(h100_node("n2", 1, {"1g.10gb": 7}))
    await until(lambda: "n2" in watch.nodes)
    fake.remove_node("n2")
    await until(lambda: "n2" not in watch.nodes)
    assert heard[1:] == [{"n2"}, {"n2"}]


async def test_an_expired_watch_lists_again_and_misses_nothing(watched):
    fake, watch, heard = watched
    await until(lambda: fake.watcher_count("nodes") == 1)
    lists_before = sum(1 for m, kw in fake.calls if m == "list_node" and not kw.get("watch"))
    fake.expire_watches("nodes")
    fake.objects["nodes"]["n1"]["metadata"]["labels"]["nvidia.com/mig.config.state"] = "pending"  # missed by the watch
    await until(lambda: sum(1 for m, kw in fake.calls if m == "list_node" and not kw.get("watch")) > lists_before,
                timeout=10)
    await until(lambda: watch.nodes["n1"]["metadata"]["labels"]["nvidia.com/mig.config.state"] == "pending")


async def test_the_watch_restarts_after_its_timeout_from_the_last_version(watched):
    fake, watch, heard = watched
    await until(lambda: sum(1 for m, kw in fake.calls if m == "list_node" and kw.get("watch")) >= 2, timeout=5)
    versions = [kw["resource_version"] for m, kw in fake.calls if m == "list_node" and kw.get("watch")]
    assert all(versions)


async def test_one_shared_watch_per_process(fake_kube):
    fake_kube.add_node(h100_node("n1", 1, {"7g.80gb": 1}))
    first = await NodeWatch.shared(lambda: fake_kube)
    second = await NodeWatch.shared(lambda: fake_kube)
    assert first is second
    assert sum(1 for m, kw in fake_kube.calls if m == "list_node" and not kw.get("watch")) == 1


def test_gpu_signature_ignores_everything_but_nvidia():
    node = h100_node("n1", 1, {"7g.80gb": 1})
    other = h100_node("n1", 1, {"7g.80gb": 1})
    other["metadata"]["labels"]["kubernetes.io/arch"] = "amd64"
    other["status"]["capacity"]["cpu"] = "128"
    assert gpu_signature(node) == gpu_signature(other)
    other["metadata"]["labels"]["nvidia.com/mig.config.state"] = "pending"
    assert gpu_signature(node) != gpu_signature(other)


def test_one_list_for_start_up_and_a_clear_error_when_it_cannot():
    from kube_double import FakeKubeAPI

    fake = FakeKubeAPI()
    fake.add_node(h100_node("n1", 1, {"7g.80gb": 1}))
    assert [n["metadata"]["name"] for n in list_nodes_once(lambda: fake)] == ["n1"]
    for _ in range(2):
        fake.fail_next["list_node"] = ApiException(status=403, reason="Forbidden")
        with pytest.raises(InventoryUnavailable) as error:
            list_nodes_once(lambda: fake, attempts=1)
        assert "needs get/list/watch on nodes" in str(error.value)
