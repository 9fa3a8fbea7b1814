"""MIG re-cutting end to end on the real control plane (hub/fleet): the plan is written as the
mig-parted ConfigMap and the node's `nvidia.com/mig.config` label by the hub's service account
(shipped RBAC), the simulated mig-manager (tests/controlplane/mig_manager.py) re-cuts the node,
the node watch sees the new capacity and labels, and the new slices are offered; refused while
AstraGo holds the GPU, and reported failed by mig-manager while a pod AstraGo did not make does."""
import asyncio
from types import SimpleNamespace

import pytest
import yaml
from kubernetes_asyncio import client, config as kube_config

from astrago.hub.db.session import Database
from astrago.hub.fleet.area import FleetArea
from astrago.hub.fleet.kube_client import FleetKubeClient
from astrago.hub.fleet.recut import RecutRefused
from astrago.hub.quota.desk import AdmissionDesk, AdmissionRequest
from astrago.hub.service.contract import AreaContext
from astrago.hub.service.interfaces.admission import AdmissionLedger
from astrago.spawners.geometry import GeometryPlan
from astrago.spawners.inventory.kube_watch import NodeWatch
from controlplane.gpu_nodes import mixed_mig_node
from controlplane.hub_rbac import OPERATOR_NAMESPACE, hub_service_account_kubeconfig

NODE = "gpu-recut-1"


@pytest.fixture(scope="module")
def hub_kubeconfig(control_plane):
    return hub_service_account_kubeconfig(control_plane)


@pytest.fixture
async def fleet(control_plane, hub_kubeconfig, tmp_path):
    cp = control_plane
    # two H100s, both cut 3g.40gb x2; only this node is re-cut by these tests
    await asyncio.to_thread(cp.add_node, **mixed_mig_node(NODE, {"3g.40gb": 4}, mig_config="all-3g.40gb"))
    configuration = client.Configuration()
    await kube_config.load_kube_config(config_file=str(hub_kubeconfig), client_configuration=configuration)
    api_client = client.ApiClient(configuration)
    core = client.CoreV1Api(api_client)
    db = Database(f"sqlite:///{tmp_path}/fleet.sqlite")
    db.migrate()
    watch = NodeWatch(core, timeout_seconds=10)
    await watch.start()
    context = AreaContext(db=db, settings=SimpleNamespace(mode="cluster", node_selector=""), hub_api=None,
                          hub_user=None)
    context.provide(AdmissionLedger, AdmissionDesk(watch.inventory()))
    area = FleetArea()
    area.setup(context)
    area.kube, area.watch = FleetKubeClient(core), watch
    watch.add_listener(area.on_nodes_changed)
    yield area
    await watch.stop()
    await api_client.close()
    db.close()
    await asyncio.to_thread(cp.remove_node, NODE)
    cp.rest.delete("v1", "ConfigMap", "astrago-mig-parted-config", OPERATOR_NAMESPACE)


async def until(condition, what, timeout=60.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"waited {timeout:.0f}s for {what}"
        await asyncio.sleep(0.1)


def offered(area, node):
    return sorted(sorted(i.profile for i in gpu.mig_instances) for n, gpu in area.ledger.inventory.gpus()
                  if n.name == node)


async def admit(area, user, slice_name):
    request = AdmissionRequest("workspace", f"{user}/", user, [], slice_name)
    return (await area.db.run(area.ledger.admit, request)).allocation


async def test_a_recut_is_applied_by_mig_manager_and_the_new_slices_are_offered(fleet, control_plane):
    cp = control_plane
    assert offered(fleet, NODE) == [["3g.40gb"] * 2, ["3g.40gb"] * 2]
    record = await fleet.apply({"gpus": [{"node": NODE, "index": 1, "geometry": {"1g.10gb": 7}}]}, "root")
    entries = [{"devices": [0], "mig-enabled": True, "mig-devices": {"3g.40gb": 2}},
               {"devices": [1], "mig-enabled": True, "mig-devices": {"1g.10gb": 7}}]
    name = GeometryPlan.config_name(entries)
    assert record.nodes[NODE].config == name
    config_map = cp.rest.read("v1", "ConfigMap", "astrago-mig-parted-config", OPERATOR_NAMESPACE)
    assert yaml.safe_load(config_map["data"]["config.yaml"])["mig-configs"][name] == entries
    await until(lambda: record.status == "done", "the re-cut to finish")
    assert (NODE, name, "success") in cp.mig_manager.history
    node = cp.rest.read("v1", "Node", NODE)
    assert node["metadata"]["labels"]["nvidia.com/mig.config.state"] == "success"
    assert {k: v for k, v in node["status"]["allocatable"].items() if k.startswith("nvidia.com/")} == {
        "nvidia.com/gpu": "0", "nvidia.com/mig-3g.40gb": "2", "nvidia.com/mig-1g.10gb": "7"}
    await until(lambda: offered(fleet, NODE) == [["1g.10gb"] * 7, ["3g.40gb"] * 2], "the new slices offered")
    # and kube-scheduler places a pod on the new resource of that node
    cp.rest.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "on-new-slice", "namespace": "default"},
                    "spec": {"nodeSelector": {"kubernetes.io/hostname": NODE},
                             "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                             "containers": [{"name": "c", "image": "none", "resources": {
                                 "limits": {"nvidia.com/mig-1g.10gb": "1"}}}]}})
    try:
        await asyncio.to_thread(cp.wait_for, lambda: (cp.rest.read("v1", "Pod", "on-new-slice", "default") or {})
                                .get("spec", {}).get("nodeName") == NODE, "the pod scheduled on the new slice")
    finally:
        cp.rest.delete("v1", "Pod", "on-new-slice", "default")


async def test_refused_while_astrago_holds_the_gpu(fleet, control_plane):
    held = await admit(fleet, "alice", "3g.40gb")
    assert held["status"] == "admitted"
    node, index = next((s.node, s.index) for s in fleet.ledger.device_layout()
                       if any(i.holder == held["id"] for i in s.instances))
    before = control_plane.rest.read("v1", "Node", node)["metadata"]["labels"]["nvidia.com/mig.config"]
    with pytest.raises(RecutRefused) as refused:
        await fleet.apply({"gpus": [{"node": node, "index": index, "geometry": {"7g.80gb": 1}}]}, "root")
    assert refused.value.kind == "conflict"
    assert refused.value.detail.startswith(f"GPU {node}/{index} holds allocations (alice's 3g.40gb")
    labels = control_plane.rest.read("v1", "Node", node)["metadata"]["labels"]
    assert labels["nvidia.com/mig.config"] == before  # nothing was written
    assert control_plane.rest.read("v1", "ConfigMap", "astrago-mig-parted-config", OPERATOR_NAMESPACE) is None


async def test_mig_manager_fails_the_recut_while_a_pod_astrago_did_not_make_holds_the_gpu(fleet, control_plane):
    cp = control_plane
    cp.rest.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "foreign", "namespace": "default"},
                    "spec": {"nodeSelector": {"kubernetes.io/hostname": NODE},
                             "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                             "containers": [{"name": "c", "image": "none", "resources": {
                                 "limits": {"nvidia.com/mig-3g.40gb": "1"}}}]}})
    try:
        await asyncio.to_thread(cp.wait_for, lambda: (cp.rest.read("v1", "Pod", "foreign", "default") or {})
                                .get("spec", {}).get("nodeName") == NODE, "the foreign pod scheduled")
        record = await fleet.apply({"gpus": [{"node": NODE, "index": 0, "geometry": {"7g.80gb": 1}}]}, "root")
        await until(lambda: record.finished, "mig-manager's answer")
        assert record.status == "failed" and record.detail.startswith(f"mig-manager reports failed on {NODE}")
        assert offered(fleet, NODE) == [["3g.40gb"] * 2, ["3g.40gb"] * 2]  # nothing was cut
        assert fleet.draining == {}
    finally:
        cp.rest.delete("v1", "Pod", "foreign", "default")


async def test_the_planner_proposes_layouts_for_idle_gpus_only(fleet):
    held = await admit(fleet, "alice", "3g.40gb")
    busy = next((s.node, s.index) for s in fleet.ledger.device_layout()
                if any(i.holder == held["id"] for i in s.instances))
    plan = await fleet.plan({"demand": {"1g.10gb": 21}})
    recut = [(g["node"], g["index"]) for g in plan["gpus"] if g["recut"]]
    assert recut and busy not in recut
    assert [g["busy"] for g in plan["gpus"] if (g["node"], g["index"]) == busy] == [True]
    assert set(plan["node_labels"]) == {node for node, _ in recut}


async def test_refusals_for_impossible_requests(fleet):
    cases = [({"demand": {"mps-25": 1}}, "invalid-slice"), ({"demand": {"1g.10gb": -1}}, "invalid-request"),
             ({"gpus": [{"node": "n9", "index": 0, "geometry": {"7g.80gb": 1}}]}, "not-found"),
             ({"gpus": [{"node": NODE, "index": 0, "geometry": {"7g.80gb": 2}}]}, "invalid-slice"),
             ({"demand": {"1g.10gb": 1}, "gpus": []}, "invalid-request"), ({"demand": {}}, "invalid-request")]
    for body, kind in cases:
        with pytest.raises(RecutRefused) as refused:
            await fleet.apply(body, "root")
        assert refused.value.kind == kind, body


async def test_the_config_map_keeps_foreign_and_in_use_layouts_and_drops_stale_ones(fleet, control_plane):
    from astrago.spawners.kube.operator_config import BASE_MIG_CONFIGS

    await fleet.kube.write_mig_configs({**BASE_MIG_CONFIGS, "site-custom": [{"devices": "all", "mig-enabled": False}],
                                        "astrago-stale": [{"devices": "all", "mig-enabled": False}],
                                        "all-3g.40gb": [{"devices": "all", "mig-enabled": True,
                                                         "mig-devices": {"3g.40gb": 2}}]})
    first = control_plane.rest.read("v1", "ConfigMap", "astrago-mig-parted-config", OPERATOR_NAMESPACE)
    record = await fleet.apply({"gpus": [{"node": NODE, "index": 0, "geometry": {"7g.80gb": 1}}]}, "root")
    config_map = control_plane.rest.read("v1", "ConfigMap", "astrago-mig-parted-config", OPERATOR_NAMESPACE)
    assert config_map["metadata"]["uid"] == first["metadata"]["uid"]  # replaced, not re-made
    configs = yaml.safe_load(config_map["data"]["config.yaml"])["mig-configs"]
    assert sorted(configs) == sorted(["all-disabled", "all-enabled", "all-3g.40gb", "site-custom",
                                      record.nodes[NODE].config])
    await until(lambda: record.status == "done", "the re-cut to finish")
    assert offered(fleet, NODE) == [["3g.40gb"] * 2, ["7g.80gb"]]


async def test_a_kubernetes_refusal_undoes_the_drain_and_says_why(fleet, control_plane):
    """A service account that may write the ConfigMap but not label nodes: the API server's 403."""
    cp = control_plane
    cp.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
              "metadata": {"name": "no-node-labels", "namespace": OPERATOR_NAMESPACE},
              "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "astrago-hub-mig-config"},
              "subjects": [{"kind": "ServiceAccount", "name": "no-node-labels", "namespace": "astrago"}]})
    kubeconfig = cp.service_account_kubeconfig("astrago", "no-node-labels")
    configuration = client.Configuration()
    await kube_config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    async with client.ApiClient(configuration) as api_client:
        fleet.kube = FleetKubeClient(client.CoreV1Api(api_client))
        record = await fleet.apply({"gpus": [{"node": NODE, "index": 0, "geometry": {"7g.80gb": 1}}]}, "root")
    assert record.status == "error"
    assert record.detail == f"Kubernetes refused the change: labelling node {NODE}: HTTP 403 Forbidden"
    assert fleet.draining == {}
    assert (await admit(fleet, "carol", "1g.10gb"))["status"] == "admitted"


async def test_one_recut_at_a_time(fleet, control_plane):
    control_plane.mig_manager.hold()
    try:
        record = await fleet.apply({"gpus": [{"node": NODE, "index": 0, "geometry": {"7g.80gb": 1}}]}, "root")
        with pytest.raises(RecutRefused) as refused:
            await fleet.apply({"gpus": [{"node": NODE, "index": 1, "geometry": {"7g.80gb": 1}}]}, "root")
        assert refused.value.detail == "A re-cut is still being applied; wait until it finishes."
        assert record.status == "applying" and fleet.draining == {NODE: {0, 1}}
    finally:
        control_plane.mig_manager.release()
    await until(lambda: record.status == "done", "the re-cut to finish")
    assert fleet.draining == {}
