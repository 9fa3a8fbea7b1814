"""What the cluster has free as kube-scheduler counts it (spawners/inventory/cluster_capacity.py):
Node and Pod objects as the API returns them -> free resources and slices per node. Pure, literal dicts."""
from astrago.spawners.inventory.cluster_capacity import (
    foreign_usage,
    free_resources,
    free_slices,
    is_bound,
    pod_requests,
    resource_slice,
)

MIG_NODE = {"metadata": {"name": "mig-1", "labels": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
                                                     "nvidia.com/mig.strategy": "mixed"}},
            "status": {"capacity": {"cpu": "64", "nvidia.com/mig-3g.40gb": "2", "nvidia.com/mig-1g.10gb": "7",
                                    "nvidia.com/mig-1g.10gb.me": "1"},
                       "allocatable": {"cpu": "63", "nvidia.com/mig-3g.40gb": "2", "nvidia.com/mig-1g.10gb": "6",
                                       "nvidia.com/mig-1g.10gb.me": "1"}}}
MPS_NODE = {"metadata": {"name": "mps-1", "labels": {"nvidia.com/gpu.sharing-strategy": "mps",
                                                     "nvidia.com/gpu.replicas": "4"}},
            "status": {"allocatable": {"nvidia.com/gpu.shared": "8"}}}
WHOLE_NODE = {"metadata": {"name": "a100-1", "labels": {"nvidia.com/gpu.sharing-strategy": "none"}},
              "status": {"allocatable": {"nvidia.com/gpu": "4", "cpu": "32"}}}
CPU_NODE = {"metadata": {"name": "cpu-1", "labels": {}}, "status": {"allocatable": {"cpu": "16"}}}
NODES = [MIG_NODE, MPS_NODE, WHOLE_NODE, CPU_NODE]


def pod(name, node, resources, phase="Running", labels=None, init=None, overhead=None, requests=None):
    container = {"name": "c", "resources": {"limits": dict(resources)}}
    if requests is not None:
        container["resources"]["requests"] = dict(requests)
    spec = {"containers": [container]}
    if node:
        spec["nodeName"] = node
    if init:
        spec["initContainers"] = init
    if overhead:
        spec["overhead"] = overhead
    return {"metadata": {"name": name, "namespace": "other", "labels": labels or {}}, "spec": spec,
            "status": {"phase": phase}}


def test_a_pods_requests_are_what_the_scheduler_counts():
    assert pod_requests(pod("p", "n", {"nvidia.com/mig-3g.40gb": "1", "cpu": "2"})) == {"nvidia.com/mig-3g.40gb": 1}
    two = {"spec": {"containers": [{"resources": {"limits": {"nvidia.com/gpu": "1"}}},
                                   {"resources": {"requests": {"nvidia.com/gpu": "2"}, "limits": {"nvidia.com/gpu": "2"}}}]}}
    assert pod_requests(two) == {"nvidia.com/gpu": 3}
    # an init container needing more than the containers sets the pod's request
    init = pod("p", "n", {"nvidia.com/gpu": "1"}, init=[{"name": "i", "resources": {"limits": {"nvidia.com/gpu": "2"}}}])
    assert pod_requests(init) == {"nvidia.com/gpu": 2}
    sidecar = pod("p", "n", {"nvidia.com/gpu": "1"},
                  init=[{"name": "s", "restartPolicy": "Always", "resources": {"limits": {"nvidia.com/gpu": "1"}}}])
    assert pod_requests(sidecar) == {"nvidia.com/gpu": 2}
    assert pod_requests({"spec": {}}) == {}


def test_only_bound_unfinished_pods_hold_resources():
    assert is_bound(pod("p", "mig-1", {}))
    assert is_bound(pod("p", "mig-1", {}, phase="Pending"))  # bound, image still pulling
    assert not is_bound(pod("p", None, {}, phase="Pending"))  # not scheduled yet
    assert not is_bound(pod("p", "mig-1", {}, phase="Succeeded"))
    assert not is_bound(pod("p", "mig-1", {}, phase="Failed"))


PODS = [
    pod("kubectl-made", "mig-1", {"nvidia.com/mig-3g.40gb": "1"}),
    pod("astrago-ws", "mig-1", {"nvidia.com/mig-1g.10gb": "1"}, labels={"astrago.io/allocation": "a-1"}),
    pod("job-pod", "mig-1", {"nvidia.com/mig-1g.10gb": "1"}, labels={"astrago.io/job-id": "job-7"}),
    pod("done", "mig-1", {"nvidia.com/mig-3g.40gb": "1"}, phase="Succeeded"),
    pod("pending", None, {"nvidia.com/mig-3g.40gb": "1"}, phase="Pending"),
    pod("tenant", "mps-1", {"nvidia.com/gpu.shared": "3"}),
    pod("daemonset", "a100-1", {"nvidia.com/gpu": "1"}, labels={"app": "dcgm-probe"}),
    pod("released", "a100-1", {"nvidia.com/gpu": "2"}, labels={"astrago.io/allocation": "a-old"}),
    pod("cpu", "cpu-1", {"cpu": "1"}),
]


def test_free_resources_are_allocatable_minus_bound_pods():
    assert free_resources(NODES, PODS) == {
        "mig-1": {"nvidia.com/mig-1g.10gb": 4, "nvidia.com/mig-1g.10gb.me": 1, "nvidia.com/mig-3g.40gb": 1},
        "mps-1": {"nvidia.com/gpu.shared": 5},
        "a100-1": {"nvidia.com/gpu": 1},
    }


def test_an_overcommitted_node_has_nothing_free_never_less():
    lost = {"metadata": {"name": "n"}, "status": {"allocatable": {"nvidia.com/gpu": "1"}}}
    assert free_resources([lost], [pod("a", "n", {"nvidia.com/gpu": "2"})]) == {"n": {"nvidia.com/gpu": 0}}


def test_free_slices_in_astragos_names():
    assert free_slices(NODES, PODS) == {
        "mig-1": {"1g.10gb": 4, "1g.10gb+me": 1, "3g.40gb": 1},
        "mps-1": {"mps-25": 5},
        "a100-1": {"gpu-1": 1},
    }
    assert free_slices(NODES, []) == {"mig-1": {"1g.10gb": 6, "1g.10gb+me": 1, "3g.40gb": 2},
                                      "mps-1": {"mps-25": 8}, "a100-1": {"gpu-1": 4}}


def test_resource_names_map_to_slices():
    assert resource_slice("nvidia.com/mig-1g.10gb.me") == "1g.10gb+me"
    assert resource_slice("nvidia.com/mig-7g.80gb") == "7g.80gb"
    assert resource_slice("nvidia.com/gpu") == "gpu-1"
    assert resource_slice("nvidia.com/gpu.shared", {"nvidia.com/gpu.sharing-strategy": "mps",
                                                    "nvidia.com/gpu.replicas": "10"}) == "mps-10"
    assert resource_slice("nvidia.com/gpu.shared", {"nvidia.com/gpu.sharing-strategy": "time-slicing",
                                                    "nvidia.com/gpu.replicas": "4"}) is None
    assert resource_slice("example.com/fpga") is None


def test_foreign_usage_is_what_astragos_admitted_allocations_do_not_explain():
    own = {"astrago.io/allocation": {"a-1"}, "astrago.io/job-id": {"job-7"}}
    assert foreign_usage(NODES, PODS, own) == {
        "a100-1": {"gpu-1": 3},  # the DaemonSet's GPU and a released allocation's pod still running
        "mig-1": {"3g.40gb": 1},  # the kubectl pod
        "mps-1": {"mps-25": 3},  # another tenant
    }
    everything_own = {"astrago.io/allocation": {"a-1", "a-old"}, "astrago.io/job-id": {"job-7"}}
    assert foreign_usage(NODES, PODS[:3], everything_own) == {"mig-1": {"3g.40gb": 1}}
