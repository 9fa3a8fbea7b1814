"""MIG re-cutting as an admin action (hub/fleet), in cluster mode: the admission desk over a real
sqlite database, the node watch and the fleet's Kubernetes client over FakeKubeAPI, the
Kubernetes API test double. The double plays mig-manager and GPU feature discovery."""
from types import SimpleNamespace

import pytest
import yaml
from kubernetes_asyncio.client.exceptions import ApiException

from astrago.hub.db.session import Database
from astrago.hub.fleet.area import NEEDS_CLUSTER, FleetArea
from astrago.hub.fleet.kube_client import FleetKubeClient
from astrago.hub.fleet.recut import RecutRefused
from astrago.hub.quota.desk import AdmissionDesk, AdmissionRequest
from astrago.spawners.geometry import GeometryPlan
from astrago.spawners.inventory.kube_watch import NodeWatch
from astrago.spawners.kube.operator_config import BASE_MIG_CONFIGS
from gpu_nodes import h100_node
from k8s_schema import validate
from test_node_watch import until

#: n1 idle at first: GPU 0 and GPU 1 cut 3g x2; n2: one GPU cut 1g x7
N1 = h100_node("n1", 2, {"3g.40gb": 4}, mig_config="all-3g.40gb")
N2 = h100_node("n2", 1, {"1g.10gb": 7}, mig_config="all-1g.10gb")


@pytest.fixture
async def fleet(fake_kube, tmp_path):
    fake_kube.add_node(N1)
    fake_kube.add_node(N2)
    db = Database(f"sqlite:///{tmp_path}/fleet.sqlite")
    db.migrate()
    watch = NodeWatch(fake_kube, timeout_seconds=1)
    await watch.start()
    service = SimpleNamespace(db=db, desk=AdmissionDesk(watch.inventory()), mode="cluster", inventory_note="")
    area = FleetArea(service, cluster=True, kube=FleetKubeClient(fake_kube))
    area.watch = watch
    watch.add_listener(area.on_nodes_changed)
    yield area
    await watch.stop()
    db.close()


async def admit(area, user, slice_name):
    request = AdmissionRequest("workspace", f"{user}/", user, [], slice_name)
    return (await area.service.db.run(area.desk.admit, request)).allocation


def holders(area):
    return {(s.node, s.index): [i.holder for i in s.instances if i.holder] for s in area.desk.placer.snapshot()}


async def test_the_planner_proposes_layouts_for_idle_gpus_only(fleet):
    held = await admit(fleet, "alice", "3g.40gb")
    busy_gpu = next(key for key, h in holders(fleet).items() if held["id"] in h)
    plan = await fleet.plan({"demand": {"1g.10gb": 14}})
    recut = [(g["node"], g["index"], g["proposed"]) for g in plan["gpus"] if g["recut"]]
    idle_gpu = ({("n1", 0), ("n1", 1)} - {busy_gpu}).pop()
    assert recut == [(*idle_gpu, {"1g.10gb": 7})]
    assert [g["busy"] for g in plan["gpus"] if (g["node"], g["index"]) == busy_gpu] == [True]
    assert plan["served_gpu_units"] == 2.0  # seven on n2 already, seven more from the re-cut
    assert list(plan["node_labels"]) == ["n1"]


async def test_refused_while_the_gpu_or_its_node_holds_allocations(fleet):
    held = await admit(fleet, "alice", "3g.40gb")
    node, index = next(key for key, h in holders(fleet).items() if held["id"] in h)
    with pytest.raises(RecutRefused) as refused:
        await fleet.apply({"gpus": [{"node": node, "index": index, "geometry": {"1g.10gb": 7}}]}, "root")
    assert refused.value.kind == "conflict"
    assert refused.value.detail == (f"GPU {node}/{index} holds allocations (alice's 3g.40gb (workspace alice/)); "
                                    "re-cutting would stop them. Try again once they are released.")
    with pytest.raises(RecutRefused) as refused:
        await fleet.apply({"demand": {"1g.10gb": 14}}, "root")
    assert refused.value.detail.startswith(f"node n1 has GPU {index} in use (alice's 3g.40gb")
    assert not fleet.recuts and not fleet.draining
    assert not [c for c in fleet.kube.core_v1.calls if c[0] in ("patch_node", "create_namespaced_config_map")]


async def test_refusals_for_impossible_requests(fleet):
    cases = [({"demand": {"mps-25": 1}}, "invalid-slice"), ({"demand": {"1g.10gb": -1}}, "invalid-request"),
             ({"gpus": [{"node": "n9", "index": 0, "geometry": {"7g.80gb": 1}}]}, "not-found"),
             ({"gpus": [{"node": "n1", "index": 0, "geometry": {"7g.80gb": 2}}]}, "invalid-slice"),
             ({"demand": {"1g.10gb": 1}, "gpus": []}, "invalid-request"), ({"demand": {}}, "invalid-request")]
    for body, kind in cases:
        with pytest.raises(RecutRefused) as refused:
            await fleet.apply(body, "root")
        assert refused.value.kind == kind, body


async def test_apply_writes_the_config_map_labels_the_node_and_follows_mig_manager(fleet):
    fake = fleet.kube.core_v1
    record = await fleet.apply({"gpus": [{"node": "n1", "index": 1, "geometry": {"1g.10gb": 7}}]}, "root")
    entries = [{"devices": [0], "mig-enabled": True, "mig-devices": {"3g.40gb": 2}},
               {"devices": [1], "mig-enabled": True, "mig-devices": {"1g.10gb": 7}}]
    name = GeometryPlan.config_name(entries)
    assert record.to_dict() == {
        "id": record.id, "created_by": "root", "created_at": record.created_at, "status": "applying", "detail": "",
        "gpus": [{"node": "n1", "index": 1, "model": "H100-80GB", "current": {"3g.40gb": 2},
                  "proposed": {"1g.10gb": 7}, "recut": True, "busy": False,
                  "layout": [{"profile": "1g.10gb", "start": s} for s in (6, 5, 4, 3, 2, 1, 0)]}],
        "nodes": {"n1": {"config": name, "state": "pending"}},
    }
    config_map = fake.objects["configmaps"]["gpu-operator/astrago-mig-parted-config"]
    assert yaml.safe_load(config_map["data"]["config.yaml"]) == {
        "version": "v1", "mig-configs": {**BASE_MIG_CONFIGS, name: entries}}
    validate({k: v for k, v in config_map.items() if k != "metadata"} | {"metadata": {
        "name": config_map["metadata"]["name"], "namespace": "gpu-operator", "labels": config_map["metadata"]["labels"]}})
    patches = [kw["body"] for m, kw in fake.calls if m == "patch_node"]
    assert patches == [{"metadata": {"labels": {"nvidia.com/mig.config": name,
                                                "nvidia.com/mig.config.state": "pending"}}}]
    validate({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", **patches[0]["metadata"]}})

    # while n1 is re-cut nothing new is placed there: a 3g.40gb waits in the queue
    assert fleet.draining == {"n1": {0, 1}}
    waiting = await admit(fleet, "bob", "3g.40gb")
    assert waiting["status"] == "queued"

    # mig-manager works, then GPU feature discovery reports the new instances
    fake.set_node_labels("n1", {"nvidia.com/mig.config.state": "rebooting"})
    await until(lambda: record.nodes["n1"].state == "rebooting")
    assert record.status == "applying"
    fake.set_node_labels("n1", {"nvidia.com/mig-3g.40gb.count": "2", "nvidia.com/mig-1g.10gb.count": "7",
                                "nvidia.com/mig.config.state": "success"})
    await until(lambda: record.status == "done")
    assert record.detail == "every node reports success" and fleet.draining == {}
    await until(lambda: any(i.profile == "1g.10gb" for n, g in fleet.desk.inventory.gpus() if n.name == "n1"
                            for i in g.mig_instances))
    # the re-cut GPUs are back, and the waiting request got the 3g.40gb on GPU 0
    now = await fleet.service.db.run(lambda s: fleet.desk.describe(s, s.get(
        __import__("astrago.hub.quota.models", fromlist=["Allocation"]).Allocation, waiting["id"])))
    assert now["status"] == "admitted" and now["placement"]["node"] == "n1"


async def test_the_config_map_keeps_foreign_and_in_use_layouts_and_drops_stale_ones(fleet):
    fake = fleet.kube.core_v1
    await fleet.kube.write_mig_configs({**BASE_MIG_CONFIGS, "site-custom": [{"devices": "all", "mig-enabled": False}],
                                        "astrago-stale": [{"devices": "all", "mig-enabled": False}],
                                        "all-3g.40gb": [{"devices": "all", "mig-enabled": True,
                                                         "mig-devices": {"3g.40gb": 2}}]})
    await fleet.apply({"gpus": [{"node": "n2", "index": 0, "geometry": {"7g.80gb": 1}}]}, "root")
    configs = yaml.safe_load(fake.objects["configmaps"]["gpu-operator/astrago-mig-parted-config"]["data"]["config.yaml"])
    assert sorted(configs["mig-configs"]) == sorted(["all-disabled", "all-enabled", "all-3g.40gb", "site-custom",
                                                     GeometryPlan.config_name([{"devices": [0], "mig-enabled": True,
                                                                                "mig-devices": {"7g.80gb": 1}}])])
    written = [m for m, _ in fake.calls if m.endswith("_namespaced_config_map") and not m.startswith("read")]
    assert written == ["create_namespaced_config_map", "replace_namespaced_config_map"]


async def test_a_kubernetes_refusal_undoes_the_drain_and_says_why(fleet):
    fleet.kube.core_v1.fail_next["patch_node"] = ApiException(status=403, reason="Forbidden")
    record = await fleet.apply({"gpus": [{"node": "n2", "index": 0, "geometry": {"7g.80gb": 1}}]}, "root")
    assert record.status == "error"
    assert record.detail == "Kubernetes refused the change: labelling node n2: HTTP 403 Forbidden"
    assert fleet.draining == {}
    assert (await admit(fleet, "carol", "1g.10gb"))["status"] == "admitted"


async def test_one_recut_at_a_time_and_a_failed_one_is_reported(fleet):
    fake = fleet.kube.core_v1
    record = await fleet.apply({"gpus": [{"node": "n2", "index": 0, "geometry": {"7g.80gb": 1}}]}, "root")
    with pytest.raises(RecutRefused) as refused:
        await fleet.apply({"gpus": [{"node": "n1", "index": 0, "geometry": {"7g.80gb": 1}}]}, "root")
    assert refused.value.detail == "A re-cut is still being applied; wait until it finishes."
    fake.set_node_labels("n2", {"nvidia.com/mig.config.state": "failed"})
    await until(lambda: record.status == "failed")
    assert record.detail.startswith("mig-manager reports failed on n2")
    assert fleet.draining == {}


async def test_embedded_mode_degrades_clearly(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/e.sqlite")
    db.migrate()
    from astrago.spawners.inventory.static import inventory_from_cluster_spec

    desk = AdmissionDesk(inventory_from_cluster_spec({"nodes": [{"name": "box", "gpus": [
        {"model": "H100-80GB", "mode": "mig", "geometry": {"3g.40gb": 2}}]}]}))
    area = FleetArea(SimpleNamespace(db=db, desk=desk, mode="embedded", inventory_note="simulated"), cluster=False)
    for action in (area.plan({"demand": {"1g.10gb": 1}}), area.apply({"demand": {"1g.10gb": 1}}, "root")):
        with pytest.raises(RecutRefused) as refused:
            await action
        assert (refused.value.kind, refused.value.detail) == ("conflict", NEEDS_CLUSTER)
    overview = await db.run(lambda s: area.overview(lambda h: h))
    assert overview["mode"] == "embedded" and overview["can_recut"] is False
    assert [[i["profile"] for i in g["instances"]] for g in overview["nodes"][0]["gpus"]] == [["3g.40gb", "3g.40gb"]]
    db.close()
