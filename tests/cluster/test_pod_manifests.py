"""What a user's pod gets for its slice: exact KubeSpawner traits per variant (pure), then the
pods and PVCs KubeSpawner itself renders from them, compared exactly and validated against the
official Kubernetes schema (kubernetes-validate, strict, TARGET_KUBERNETES_VERSION)."""
from types import SimpleNamespace

import pytest

from astrago.spawners.kube import GPUKubeSpawner
from astrago.spawners.kube.pods import label_value, merged_traits, slice_overrides
from k8s_schema import validate
from kube_double import serialise

TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
H100 = {"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In",
                              "values": ["NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe"]}]}
JUPYTERHUB_VERSION = __import__("jupyterhub").__version__
ALLOC = "0f8b6a52-3c1e-4d7a-9a57-1c2d3e4f5a6b"

#: slice_overrides(...) -> the exact traits, one case per manifest variant
VARIANTS = {
    "mig-mixed": (("3g.40gb", "H100-80GB", "mixed"), {
        "extra_resource_limits": {"nvidia.com/mig-3g.40gb": "1"},
        "extra_resource_guarantees": {"nvidia.com/mig-3g.40gb": "1"},
        "node_selector": {},
        "node_affinity_required": [H100],
        "tolerations": [TOLERATION],
        "environment": {"ASTRAGO_SLICE": "3g.40gb", "ASTRAGO_GPU_UNITS": "3/7", "ASTRAGO_ALLOCATION_ID": ALLOC},
        "extra_labels": {"astrago.io/slice": "3g.40gb", "astrago.io/allocation": ALLOC},
        "cpu_guarantee": 2.0, "cpu_limit": 2.0, "mem_guarantee": "8G", "mem_limit": "8G",
    }),
    "mig-mixed-me": (("1g.10gb+me", None, "mixed"), {
        "extra_resource_limits": {"nvidia.com/mig-1g.10gb.me": "1"},
        "extra_resource_guarantees": {"nvidia.com/mig-1g.10gb.me": "1"},
        "node_selector": {},
        "node_affinity_required": [],
        "tolerations": [TOLERATION],
        "environment": {"ASTRAGO_SLICE": "1g.10gb+me", "ASTRAGO_GPU_UNITS": "1/7", "ASTRAGO_ALLOCATION_ID": ALLOC},
        "extra_labels": {"astrago.io/slice": "1g.10gb-me", "astrago.io/allocation": ALLOC},
        "cpu_guarantee": 2.0, "cpu_limit": 2.0, "mem_guarantee": "8G", "mem_limit": "8G",
    }),
    "mig-single": (("1g.5gb", "A100-40GB", "single"), {
        "extra_resource_limits": {"nvidia.com/gpu": "1"},
        "extra_resource_guarantees": {"nvidia.com/gpu": "1"},
        "node_selector": {"nvidia.com/mig.strategy": "single"},
        "node_affinity_required": [{"matchExpressions": [{
            "key": "nvidia.com/gpu.product", "operator": "In",
            "values": ["NVIDIA-A100-SXM4-40GB-MIG-1g.5gb", "NVIDIA-A100-PCIE-40GB-MIG-1g.5gb"]}]}],
        "tolerations": [TOLERATION],
        "environment": {"ASTRAGO_SLICE": "1g.5gb", "ASTRAGO_GPU_UNITS": "1/7", "ASTRAGO_ALLOCATION_ID": ALLOC},
        "extra_labels": {"astrago.io/slice": "1g.5gb", "astrago.io/allocation": ALLOC},
        "cpu_guarantee": 2.0, "cpu_limit": 2.0, "mem_guarantee": "8G", "mem_limit": "8G",
    }),
    "mps": (("mps-25", "A30", "mixed"), {
        "extra_resource_limits": {"nvidia.com/gpu.shared": "1"},
        "extra_resource_guarantees": {"nvidia.com/gpu.shared": "1"},
        "node_selector": {"nvidia.com/gpu.sharing-strategy": "mps", "nvidia.com/gpu.replicas": "4"},
        "node_affinity_required": [{"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In",
                                                          "values": ["NVIDIA-A30"]}]}],
        "tolerations": [TOLERATION],
        "environment": {"ASTRAGO_SLICE": "mps-25", "ASTRAGO_GPU_UNITS": "1/4", "ASTRAGO_ALLOCATION_ID": ALLOC},
        "extra_labels": {"astrago.io/slice": "mps-25", "astrago.io/allocation": ALLOC},
        "cpu_guarantee": 2.0, "cpu_limit": 2.0, "mem_guarantee": "8G", "mem_limit": "8G",
    }),
    "whole": (("gpu-2", None, "mixed"), {
        "extra_resource_limits": {"nvidia.com/gpu": "2"},
        "extra_resource_guarantees": {"nvidia.com/gpu": "2"},
        "node_selector": {"nvidia.com/gpu.sharing-strategy": "none"},
        "node_affinity_required": [],
        "tolerations": [TOLERATION],
        "environment": {"ASTRAGO_SLICE": "gpu-2", "ASTRAGO_GPU_UNITS": "2", "ASTRAGO_ALLOCATION_ID": ALLOC},
        "extra_labels": {"astrago.io/slice": "gpu-2", "astrago.io/allocation": ALLOC},
        "cpu_guarantee": 2.0, "cpu_limit": 2.0, "mem_guarantee": "8G", "mem_limit": "8G",
    }),
    "cpu": (("cpu", None, "mixed"), {
        "extra_resource_limits": {},
        "extra_resource_guarantees": {},
        "node_selector": {},
        "node_affinity_required": [],
        "tolerations": [],
        "environment": {"ASTRAGO_SLICE": "cpu", "NVIDIA_VISIBLE_DEVICES": "void", "ASTRAGO_ALLOCATION_ID": ALLOC},
        "extra_labels": {"astrago.io/slice": "cpu", "astrago.io/allocation": ALLOC},
        "cpu_guarantee": 2.0, "cpu_limit": 2.0, "mem_guarantee": "8G", "mem_limit": "8G",
    }),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_slice_overrides_exact(variant):
    (slice_name, model, strategy), expected = VARIANTS[variant]
    assert slice_overrides(slice_name, model, strategy, allocation_id=ALLOC, cpu=2, memory_gib=8) == expected


def test_without_quota_dimensions_no_cpu_or_memory_is_set():
    assert set(slice_overrides("cpu")) == {"extra_resource_limits", "extra_resource_guarantees", "node_selector",
                                           "node_affinity_required", "tolerations", "environment", "extra_labels"}


def test_label_values_are_valid():
    assert label_value("1g.10gb+me") == "1g.10gb-me"
    assert label_value("x" * 80) == "x" * 63
    assert label_value("-a+") == "a"


def test_merging_keeps_what_the_chart_configured():
    chart = {
        "tolerations": [{"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user",
                         "effect": "NoSchedule"}],
        "node_affinity_required": [],
        "environment": {"ASTRAGO_SERVICE_URL": "http://hub:10101/services/astrago/"},
        "extra_labels": {"hub.jupyter.org/network-access-hub": "true"},
        "node_selector": {}, "extra_resource_limits": {}, "extra_resource_guarantees": {},
    }
    merged = merged_traits(chart, slice_overrides("3g.40gb", "H100-80GB"))
    assert merged == {
        "tolerations": chart["tolerations"] + [TOLERATION],
        "node_affinity_required": [H100],
        "environment": {"ASTRAGO_SERVICE_URL": "http://hub:10101/services/astrago/", "ASTRAGO_SLICE": "3g.40gb",
                        "ASTRAGO_GPU_UNITS": "3/7"},
        "extra_labels": {"hub.jupyter.org/network-access-hub": "true", "astrago.io/slice": "3g.40gb"},
        "node_selector": {},
        "extra_resource_limits": {"nvidia.com/mig-3g.40gb": "1"},
        "extra_resource_guarantees": {"nvidia.com/mig-3g.40gb": "1"},
    }
    assert chart["tolerations"] == [{"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user",
                                     "effect": "NoSchedule"}]  # the configured value is not changed in place


def _spawner(**config):
    user = SimpleNamespace(name="alice", id=7, url="/user/alice/", groups=[SimpleNamespace(name="vision")])
    return GPUKubeSpawner(_mock=True, user=user, namespace="astrago", image="harbor.example.org/astrago/singleuser:1.0",
                          storage_pvc_ensure=True, storage_capacity="50Gi", pvc_name_template="claim-{user_server}",
                          **config)


async def _pod(variant, **config):
    (slice_name, model, strategy), _ = VARIANTS[variant]
    spawner = _spawner(**config)
    spawner._apply_pod_settings(slice_overrides(slice_name, model, strategy, allocation_id=ALLOC, cpu=2,
                                                memory_gib=8))
    return serialise(await spawner.get_pod_manifest())


def _slice_parts(pod):
    container = pod["spec"]["containers"][0]
    return {
        "labels": {k: v for k, v in pod["metadata"]["labels"].items() if k.startswith("astrago.io/")},
        "nodeSelector": pod["spec"].get("nodeSelector"),
        "affinity": pod["spec"].get("affinity"),
        "tolerations": pod["spec"].get("tolerations"),
        "resources": container["resources"],
        "astrago_env": {e["name"]: e["value"] for e in container["env"]
                        if e["name"].startswith("ASTRAGO_") or e["name"] == "NVIDIA_VISIBLE_DEVICES"},
    }


def _expected_parts(variant):
    _, traits = VARIANTS[variant]
    affinity = ({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": traits["node_affinity_required"]}}} if traits["node_affinity_required"] else None)
    return {
        "labels": traits["extra_labels"],
        "nodeSelector": traits["node_selector"] or None,
        "affinity": affinity,
        "tolerations": traits["tolerations"] or None,
        "resources": {"limits": {"cpu": 2.0, "memory": 8 * 1024 ** 3, **traits["extra_resource_limits"]},
                      "requests": {"cpu": 2.0, "memory": 8 * 1024 ** 3, **traits["extra_resource_guarantees"]}},
        "astrago_env": traits["environment"],
    }


@pytest.mark.parametrize("variant", sorted(VARIANTS))
async def test_kubespawner_renders_each_variant_exactly_and_validly(fake_kube, variant):
    pod = await _pod(variant)
    assert _slice_parts(pod) == _expected_parts(variant)
    validate(pod)


async def test_the_whole_mig_pod_exactly(fake_kube):
    pod = await _pod("mig-mixed")
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0].pop("env")}
    assert env["ASTRAGO_GPU_UNITS"] == "3/7" and env["JUPYTERHUB_USER"] == "alice"
    assert pod == {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "jupyter-alice",
            "annotations": {"hub.jupyter.org/username": "alice", "hub.jupyter.org/kubespawner-version": "7.1.0",
                            "hub.jupyter.org/jupyterhub-version": JUPYTERHUB_VERSION},
            "labels": {"hub.jupyter.org/username": "alice", "astrago.io/slice": "3g.40gb",
                       "astrago.io/allocation": ALLOC, "app.kubernetes.io/name": "jupyterhub",
                       "app.kubernetes.io/managed-by": "kubespawner", "app": "jupyterhub", "heritage": "jupyterhub",
                       "app.kubernetes.io/component": "singleuser-server", "component": "singleuser-server",
                       "hub.jupyter.org/servername": ""},
        },
        "spec": {
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [H100]}}},
            "automountServiceAccountToken": False,
            "containers": [{
                "image": "harbor.example.org/astrago/singleuser:1.0", "lifecycle": {}, "name": "notebook",
                "ports": [{"containerPort": 8888, "name": "notebook-port"}],
                "resources": {"limits": {"cpu": 2.0, "memory": 8589934592, "nvidia.com/mig-3g.40gb": "1"},
                              "requests": {"cpu": 2.0, "memory": 8589934592, "nvidia.com/mig-3g.40gb": "1"}},
                "securityContext": {"allowPrivilegeEscalation": False}, "volumeMounts": [],
            }],
            "imagePullSecrets": [], "restartPolicy": "OnFailure", "tolerations": [TOLERATION], "volumes": [],
        },
    }


async def test_a_second_spawn_on_another_slice_does_not_keep_the_first_slices_settings(fake_kube):
    spawner = _spawner(tolerations=[{"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user",
                                     "effect": "NoSchedule"}])
    spawner._apply_pod_settings(slice_overrides("3g.40gb", "H100-80GB", allocation_id=ALLOC))
    spawner._apply_pod_settings(slice_overrides("cpu", allocation_id=ALLOC))
    pod = serialise(await spawner.get_pod_manifest())
    assert pod["spec"]["tolerations"] == [{"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user",
                                           "effect": "NoSchedule"}]
    assert "affinity" not in pod["spec"]
    assert pod["spec"]["containers"][0]["resources"] == {"limits": {}, "requests": {}}
    assert {"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"} in pod["spec"]["containers"][0]["env"]
    validate(pod)


async def test_the_per_user_home_volume_claim(fake_kube):
    pvc = serialise(_spawner().get_pvc_manifest())
    assert pvc == {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "claim-alice",
                     "annotations": {"hub.jupyter.org/username": "alice", "hub.jupyter.org/kubespawner-version": "7.1.0",
                                     "hub.jupyter.org/jupyterhub-version": JUPYTERHUB_VERSION},
                     "labels": {"hub.jupyter.org/username": "alice", "app.kubernetes.io/name": "jupyterhub",
                                "app.kubernetes.io/managed-by": "kubespawner", "app": "jupyterhub",
                                "heritage": "jupyterhub", "app.kubernetes.io/component": "singleuser-server",
                                "component": "singleuser-storage"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "50Gi"}}},
    }
    validate(pvc)
