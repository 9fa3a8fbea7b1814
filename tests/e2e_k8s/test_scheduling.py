"""The real kube-scheduler places pods on KWOK nodes by the GPU resources and labels the device
plugin and GFD publish, and says why in a FailedScheduling event when nothing fits."""
from controlplane.gpu_nodes import GPU_TAINT

TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def pod(name, namespace, resources, *, tolerate=True, selector=None):
    spec = {"containers": [{"name": "c", "image": "registry.invalid/none:1",
                            "resources": {"limits": resources, "requests": resources}}]}
    if tolerate:
        spec["tolerations"] = [TOLERATION]
    if selector:
        spec["nodeSelector"] = selector
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def bound(cp, namespace, name):
    found = cp.rest.read("v1", "Pod", name, namespace)
    return found if found and found["spec"].get("nodeName") and found["status"].get("podIP") else None


def test_a_mig_pod_is_scheduled_onto_the_mig_node_and_gets_a_loopback_pod_ip(control_plane, namespace):
    control_plane.rest.create(pod("mig", namespace, {"nvidia.com/mig-1g.10gb": "1", "cpu": "1", "memory": "1Gi"}))
    placed = control_plane.wait_for(lambda: bound(control_plane, namespace, "mig"), "the pod bound and running")
    assert placed["spec"]["nodeName"] == "gpu-mig-1"
    assert placed["status"]["phase"] == "Running"
    assert placed["status"]["podIP"].startswith("127.77.")
    # bound by kube-scheduler itself (not by a nodeName in the spec), which says so
    scheduled = control_plane.rest.list("v1", "Event", namespace, fieldSelector="reason=Scheduled")["items"]
    assert [(e["involvedObject"]["name"], e.get("reportingComponent") or e["source"].get("component"))
            for e in scheduled] == [("mig", "default-scheduler")]
    assert "to gpu-mig-1" in scheduled[0]["message"]


def test_the_gpu_taint_keeps_pods_without_the_toleration_off_gpu_nodes(control_plane, namespace):
    assert GPU_TAINT in control_plane.rest.read("v1", "Node", "gpu-a100-1")["spec"]["taints"]
    control_plane.rest.create(pod("cpu-only", namespace, {"cpu": "1"}, tolerate=False))
    placed = control_plane.wait_for(lambda: bound(control_plane, namespace, "cpu-only"), "the pod bound")
    assert placed["spec"]["nodeName"] == "cpu-1"


def test_what_no_node_has_free_stays_pending_with_the_schedulers_reason(control_plane, namespace):
    # gpu-mig-1 has two 3g.40gb instances: a third has no place
    for index in range(3):
        control_plane.rest.create(pod(f"big-{index}", namespace, {"nvidia.com/mig-3g.40gb": "1"}))

    def failed_scheduling():
        events = control_plane.rest.list("v1", "Event", namespace, fieldSelector="reason=FailedScheduling")["items"]
        return events or None

    events = control_plane.wait_for(failed_scheduling, "a FailedScheduling event")
    assert "Insufficient nvidia.com/mig-3g.40gb" in events[0]["message"]
    pods = control_plane.rest.list("v1", "Pod", namespace)["items"]
    assert sorted(bool(p["spec"].get("nodeName")) for p in pods) == [False, True, True]


def test_an_mps_share_lands_on_the_mps_node_and_a_shared_suffix_selector_matches_nothing(control_plane, namespace):
    cp = control_plane
    selector = {"nvidia.com/gpu.sharing-strategy": "mps", "nvidia.com/gpu.replicas": "4"}
    cp.rest.create(pod("share", namespace, {"nvidia.com/gpu.shared": "1"}, selector=selector))
    assert cp.wait_for(lambda: bound(cp, namespace, "share"), "the MPS pod bound")["spec"]["nodeName"] == "gpu-mps-1"
    # GFD with renameByDefault does not append -SHARED to the product (REFERENCE.md): nothing matches
    cp.rest.create(pod("suffixed", namespace, {"nvidia.com/gpu.shared": "1"},
                       selector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3-SHARED"}))
    events = cp.wait_for(lambda: [e for e in cp.rest.list("v1", "Event", namespace,
                                                         fieldSelector="reason=FailedScheduling")["items"]
                                  if e["involvedObject"]["name"] == "suffixed"], "the suffixed pod refused")
    assert "didn't match Pod's node affinity/selector" in events[0]["message"]


def test_whole_gpus_of_each_model_by_product(control_plane, namespace):
    cp = control_plane
    for name, product, node in (("a100", "NVIDIA-A100-SXM4-80GB", "gpu-a100-1"), ("h200", "NVIDIA-H200", "gpu-h200-1")):
        cp.rest.create(pod(name, namespace, {"nvidia.com/gpu": "2"}, selector={"nvidia.com/gpu.product": product}))
        assert cp.wait_for(lambda: bound(cp, namespace, name), f"the {name} pod bound")["spec"]["nodeName"] == node
