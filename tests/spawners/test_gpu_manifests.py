"""Manifests: exact dicts per slice and strategy, each Pod validated against the Kubernetes schema.

Schema: kubernetes-validate (pinned 1.37.0 in pyproject) at Kubernetes
`TARGET_KUBERNETES_VERSION` (1.33.0), strict mode (unknown fields are errors).
"""

from fractions import Fraction

import kubernetes_validate
import pytest

from astrago.spawners.manifests import (
    TARGET_KUBERNETES_VERSION,
    container_gpu_resources,
    local_process_env,
    mig_resource_name,
    pod_spec_fragment,
)
from astrago.spawners.placement import Placement
from astrago.spawners.slices import InvalidSlice

TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def test_pinned_kubernetes_version():
    assert TARGET_KUBERNETES_VERSION == "1.33.0"


def test_mig_mixed():
    assert container_gpu_resources("3g.40gb", "H100-80GB") == {
        "resources": {"limits": {"nvidia.com/mig-3g.40gb": "1"}, "requests": {"nvidia.com/mig-3g.40gb": "1"}},
        "node_selector": {},
        "node_affinity_required": [{"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In",
                                                          "values": ["NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe"]}]}],
        "tolerations": [TOLERATION],
        "env": {"ASTRAGO_SLICE": "3g.40gb", "ASTRAGO_GPU_UNITS": "3/7"},
    }


def test_mig_mixed_without_model_asks_only_for_the_profile():
    assert container_gpu_resources("1g.6gb") == {
        "resources": {"limits": {"nvidia.com/mig-1g.6gb": "1"}, "requests": {"nvidia.com/mig-1g.6gb": "1"}},
        "node_selector": {},
        "node_affinity_required": [],
        "tolerations": [TOLERATION],
        "env": {"ASTRAGO_SLICE": "1g.6gb", "ASTRAGO_GPU_UNITS": "1/4"},
    }


def test_mig_single():
    assert container_gpu_resources("1g.5gb", "A100-40GB", strategy="single") == {
        "resources": {"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}},
        "node_selector": {"nvidia.com/mig.strategy": "single"},
        "node_affinity_required": [{"matchExpressions": [{
            "key": "nvidia.com/gpu.product", "operator": "In",
            "values": ["NVIDIA-A100-SXM4-40GB-MIG-1g.5gb", "NVIDIA-A100-PCIE-40GB-MIG-1g.5gb"]}]}],
        "tolerations": [TOLERATION],
        "env": {"ASTRAGO_SLICE": "1g.5gb", "ASTRAGO_GPU_UNITS": "1/7"},
    }


def test_mps_selects_the_renamed_resource_and_the_sharing_label_not_a_shared_product():
    # renameByDefault: true -> the resource is nvidia.com/gpu.shared and GFD appends no -SHARED
    # to nvidia.com/gpu.product (k8s-device-plugin internal/lm/resource.go)
    assert container_gpu_resources("mps-25", "A30") == {
        "resources": {"limits": {"nvidia.com/gpu.shared": "1"}, "requests": {"nvidia.com/gpu.shared": "1"}},
        "node_selector": {"nvidia.com/gpu.sharing-strategy": "mps", "nvidia.com/gpu.replicas": "4"},
        "node_affinity_required": [{"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In",
                                                          "values": ["NVIDIA-A30"]}]}],
        "tolerations": [TOLERATION],
        "env": {"ASTRAGO_SLICE": "mps-25", "ASTRAGO_GPU_UNITS": "1/4"},
    }


def test_media_extension_profiles_request_the_device_plugins_resource_name():
    # the device plugin names `1g.10gb+me` nvidia.com/mig-1g.10gb.me; `+` is not legal in a resource name
    assert container_gpu_resources("1g.10gb+me", "H100-80GB")["resources"] == {
        "limits": {"nvidia.com/mig-1g.10gb.me": "1"}, "requests": {"nvidia.com/mig-1g.10gb.me": "1"}}
    assert mig_resource_name("1g.10gb+me") == "nvidia.com/mig-1g.10gb.me"
    assert mig_resource_name("3g.40gb") == "nvidia.com/mig-3g.40gb"


def test_whole_gpus():
    assert container_gpu_resources("gpu-4") == {
        "resources": {"limits": {"nvidia.com/gpu": "4"}, "requests": {"nvidia.com/gpu": "4"}},
        "node_selector": {"nvidia.com/gpu.sharing-strategy": "none"},
        "node_affinity_required": [],
        "tolerations": [TOLERATION],
        "env": {"ASTRAGO_SLICE": "gpu-4", "ASTRAGO_GPU_UNITS": "4"},
    }


def test_cpu_hides_gpus_from_cuda_images():
    assert container_gpu_resources("cpu") == {
        "resources": {"limits": {}, "requests": {}},
        "node_selector": {},
        "node_affinity_required": [],
        "tolerations": [],
        "env": {"ASTRAGO_SLICE": "cpu", "NVIDIA_VISIBLE_DEVICES": "void"},
    }


def test_profile_of_another_model_is_refused():
    with pytest.raises(InvalidSlice, match="'3g.40gb' is not a MIG profile of the A30."):
        container_gpu_resources("3g.40gb", "A30")


def test_pod_spec_fragment_exact():
    assert pod_spec_fragment("2g.20gb", "A100-80GB", name="jupyter-ada", namespace="astrago", cpu="4",
                             memory="32Gi") == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "jupyter-ada", "namespace": "astrago", "labels": {"astrago.io/slice": "2g.20gb"}},
        "spec": {
            "containers": [{
                "name": "notebook",
                "image": "astrago/singleuser:latest",
                "env": [{"name": "ASTRAGO_GPU_UNITS", "value": "2/7"}, {"name": "ASTRAGO_SLICE", "value": "2g.20gb"}],
                "resources": {
                    "limits": {"nvidia.com/mig-2g.20gb": "1", "cpu": "4", "memory": "32Gi"},
                    "requests": {"nvidia.com/mig-2g.20gb": "1", "cpu": "4", "memory": "32Gi"},
                },
            }],
            "restartPolicy": "OnFailure",
            "tolerations": [TOLERATION],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In",
                                       "values": ["NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe"]}]}]}}},
        },
    }


@pytest.mark.parametrize("slice_name, model", [
    ("1g.10gb", "H100-80GB"), ("1g.10gb+me", "A100-80GB"), ("7g.141gb", "H200-141GB"), ("4g.24gb", None),
    ("mps-50", "H100-NVL-94GB"), ("mps-10", None), ("gpu-1", None), ("gpu-8", "H200-141GB"), ("cpu", None),
])
@pytest.mark.parametrize("strategy", ["mixed", "single"])
def test_every_generated_pod_is_valid_kubernetes(slice_name, model, strategy):
    pod = pod_spec_fragment(slice_name, model, strategy, namespace="astrago", cpu="2", memory="8Gi")
    assert kubernetes_validate.validate(pod, TARGET_KUBERNETES_VERSION, strict=True) == "1.33"


def test_the_validator_does_reject_a_broken_pod():
    pod = pod_spec_fragment("1g.10gb", "H100-80GB")
    pod["spec"]["containers"][0]["env"][0]["value"] = 7  # env values must be strings
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, TARGET_KUBERNETES_VERSION, strict=True)


def placement(**fields):
    base = {"request_id": "r", "node": "ws", "model": "H100-80GB", "gpu_units": Fraction(1)}
    return Placement(**{**base, **fields})


def test_local_env_mig():
    p = placement(slice="3g.40gb", gpu_units=Fraction(3, 7), gpu_uuids=("GPU-a",), gpu_indices=(0,),
                  mig_instance_uuids=("MIG-1",))
    assert local_process_env(p) == {"CUDA_VISIBLE_DEVICES": "MIG-1"}


def test_local_env_whole_gpus():
    p = placement(slice="gpu-2", gpu_units=Fraction(2), gpu_uuids=("GPU-a", "GPU-b"), gpu_indices=(0, 1))
    assert local_process_env(p) == {"CUDA_VISIBLE_DEVICES": "GPU-a,GPU-b"}


def test_local_env_mps():
    p = placement(slice="mps-25", gpu_units=Fraction(1, 4), gpu_uuids=("GPU-a",), gpu_indices=(3,),
                  mps_percent=25, mps_memory_limit_mib=20480)
    assert local_process_env(p, mps_pipe_dir="/run/astrago/mps/3", mps_log_dir="/var/log/astrago/mps/3") == {
        "CUDA_VISIBLE_DEVICES": "GPU-a",
        "CUDA_MPS_PIPE_DIRECTORY": "/run/astrago/mps/3",
        "CUDA_MPS_LOG_DIRECTORY": "/var/log/astrago/mps/3",
        "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": "25",
        "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": "0=20G",
    }
    odd = placement(slice="mps-10", gpu_units=Fraction(1, 10), gpu_uuids=("GPU-a",), mps_percent=10,
                    mps_memory_limit_mib=2457)
    assert local_process_env(odd)["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=2457M"


def test_local_env_cpu():
    assert local_process_env(None) == {"CUDA_VISIBLE_DEVICES": ""}
    assert local_process_env(placement(slice="cpu", gpu_units=Fraction(0), model=None)) == {"CUDA_VISIBLE_DEVICES": ""}
