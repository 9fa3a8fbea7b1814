"""Capacity as the cluster says it, at the admission desk: the desk over a real sqlite database
is rebuilt from Node objects and the bound Pod objects (what the shared pod watch holds), so a
pod AstraGo did not admit takes its slice out of what the desk may admit. No Kubernetes here:
the objects are literal dicts as the API returns them."""
from types import SimpleNamespace

import pytest

from astrago.hub.db.session import Database
from astrago.hub.quota.desk import AdmissionDesk, AdmissionRequest
from astrago.hub.service.interfaces.admission import CLUSTER_HOLDER
from astrago.spawners.inventory.kubernetes_nodes import nodes_from_kubernetes
from gpu_nodes import h100_node

NODE = h100_node("mig-1", 1, {"3g.40gb": 2})


def kubectl_pod(name="someone-elses", node="mig-1", labels=None, phase="Running"):
    return {"metadata": {"name": name, "namespace": "default", "labels": labels or {}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {
                "limits": {"nvidia.com/mig-3g.40gb": "1"}}}]},
            "status": {"phase": phase}}


@pytest.fixture
def desk(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/capacity.sqlite")
    db.migrate()
    desk = AdmissionDesk(nodes_from_kubernetes([NODE]))
    yield SimpleNamespace(db=db, desk=desk)
    db.close()


def admit(env, user):
    request = AdmissionRequest("workspace", f"{user}/", user, [], "3g.40gb")
    return env.db.run_sync(env.desk.admit, request).allocation


def rebuild(env, pods):
    return env.db.run_sync(lambda session: env.desk.replace_inventory(session, nodes_from_kubernetes([NODE]),
                                                                      drained={}, node_objects=[NODE], pods=pods))


def holders(env):
    return sorted(i.holder for s in env.desk.device_layout() for i in s.instances if i.holder)


def test_a_pod_made_with_kubectl_makes_the_next_user_queue(desk):
    rebuild(desk, [kubectl_pod()])
    assert holders(desk) == [f"{CLUSTER_HOLDER}mig-1/3g.40gb/0"]
    alice = admit(desk, "alice")
    assert alice["status"] == "admitted"
    bob = admit(desk, "bob")
    assert bob["status"] == "queued"  # not admitted into a pod kube-scheduler cannot place


def test_astragos_own_pods_are_not_counted_twice(desk):
    alice = admit(desk, "alice")
    rebuild(desk, [kubectl_pod("alice-pod", labels={"astrago.io/allocation": alice["id"]})])
    assert holders(desk) == [alice["id"]]
    assert admit(desk, "bob")["status"] == "admitted"


def test_when_the_foreign_pod_ends_its_slice_is_admitted_again(desk):
    rebuild(desk, [kubectl_pod(), kubectl_pod("unscheduled", node=None, phase="Pending")])
    assert admit(desk, "alice")["status"] == "admitted"
    bob = admit(desk, "bob")
    assert bob["status"] == "queued"
    report = rebuild(desk, [kubectl_pod(phase="Succeeded")])
    assert report.admitted_now == [bob["id"]]


def test_without_the_pod_watch_the_ledger_alone_decides(desk):
    rebuild(desk, None)
    assert [admit(desk, u)["status"] for u in ("alice", "bob")] == ["admitted", "admitted"]
