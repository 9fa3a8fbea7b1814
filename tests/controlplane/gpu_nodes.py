"""GPU nodes as the NVIDIA GPU operator shows them to Kubernetes: the capacity the device
plugin registers and the labels GPU feature discovery (GFD) and mig-manager write.

Literal data, checked against REFERENCE.md ("How Kubernetes sees slices", "Facts checked
against upstream sources"): `mixed` MIG nodes publish one resource per profile plus
`nvidia.com/mig-<profile>.count` labels; an MPS node (device plugin config `mps-4-replicas`,
MIG strategy `none`, resource renamed to `nvidia.com/gpu.shared`, product NOT suffixed
`-SHARED`); whole-GPU nodes publish `nvidia.com/gpu`. GPU nodes carry the taint
docs/deploy-kubernetes.md recommends, `nvidia.com/gpu=present:NoSchedule`.

`STANDARD_NODES` is the fleet the e2e_k8s session starts with; `ControlPlane.add_node(**spec)`
takes each entry as it is.
"""
from __future__ import annotations

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}

HOST = {"cpu": "64", "memory": "512Gi", "pods": "110", "ephemeral-storage": "1Ti"}

H100_PRODUCT = "NVIDIA-H100-80GB-HBM3"


def _gpu_labels(product: str, count: int, memory_mib: int, family: str) -> dict[str, str]:
    return {"nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": product, "nvidia.com/gpu.count": str(count),
            "nvidia.com/gpu.memory": str(memory_mib), "nvidia.com/gpu.family": family,
            "nvidia.com/cuda.driver.major": "570", "nvidia.com/gpu.deploy.device-plugin": "true"}


def mig_counts_labels(counts: dict[str, int]) -> dict[str, str]:
    """GFD's per-profile labels under the `mixed` strategy (counts summed over the node's GPUs)."""
    labels = {}
    for profile, count in counts.items():
        labels[f"nvidia.com/mig-{profile}.count"] = str(count)
    return labels


def mig_capacity(counts: dict[str, int]) -> dict[str, str]:
    """The device plugin's resources under `mixed`: `+me` profiles are named `.me`."""
    return {f"nvidia.com/mig-{profile.replace('+', '.')}": str(count) for profile, count in counts.items()}


def mixed_mig_node(name: str, counts: dict[str, int], *, gpus: int = 2, whole: int = 0,
                   mig_config: str = "all-enabled", state: str = "success") -> dict:
    """An H100 80GB node cut by mig-manager, `mixed` strategy: `counts` instances in all."""
    labels = {**_gpu_labels(H100_PRODUCT, gpus, 81559, "hopper"),
              "nvidia.com/mig.capable": "true", "nvidia.com/mps.capable": "false",
              "nvidia.com/mig.strategy": "mixed", "nvidia.com/gpu.sharing-strategy": "none",
              "nvidia.com/mig.config": mig_config, "nvidia.com/mig.config.state": state,
              "nvidia.com/device-plugin.config": "default", **mig_counts_labels(counts)}
    capacity = {**HOST, "nvidia.com/gpu": str(whole), **mig_capacity(counts)}
    return {"name": name, "capacity": capacity, "labels": labels, "taints": [GPU_TAINT]}


def mps_node(name: str, *, gpus: int = 1, replicas: int = 4) -> dict:
    """An H100 node shared through MPS: device plugin config `mps-<replicas>-replicas`
    (`migStrategy: none`, `renameByDefault: true`), so the resource is `nvidia.com/gpu.shared`."""
    labels = {**_gpu_labels(H100_PRODUCT, gpus, 81559, "hopper"),
              "nvidia.com/mig.capable": "true", "nvidia.com/mps.capable": "true",
              "nvidia.com/mig.strategy": "none", "nvidia.com/mig.config": "all-disabled",
              "nvidia.com/mig.config.state": "success",
              "nvidia.com/gpu.sharing-strategy": "mps", "nvidia.com/gpu.replicas": str(replicas),
              "nvidia.com/device-plugin.config": f"mps-{replicas}-replicas"}
    capacity = {**HOST, "nvidia.com/gpu": "0", "nvidia.com/gpu.shared": str(gpus * replicas)}
    return {"name": name, "capacity": capacity, "labels": labels, "taints": [GPU_TAINT]}


def whole_gpu_node(name: str, product: str, gpus: int, memory_mib: int, family: str) -> dict:
    """Whole GPUs, no MIG and no sharing."""
    labels = {**_gpu_labels(product, gpus, memory_mib, family), "nvidia.com/gpu.sharing-strategy": "none",
              "nvidia.com/mig.strategy": "mixed", "nvidia.com/device-plugin.config": "default"}
    if family in ("ampere", "hopper"):
        labels["nvidia.com/mig.capable"] = "true"
        labels["nvidia.com/mig.config"] = "all-disabled"
        labels["nvidia.com/mig.config.state"] = "success"
    return {"name": name, "capacity": {**HOST, "nvidia.com/gpu": str(gpus)}, "labels": labels,
            "taints": [GPU_TAINT]}


def cpu_node(name: str) -> dict:
    return {"name": name, "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "1Ti"},
            "labels": {}, "taints": []}


#: the fleet of the e2e_k8s session: GPU 0 of gpu-mig-1 cut 3g.40gb x2, GPU 1 cut 1g.10gb x7
STANDARD_NODES = [
    mixed_mig_node("gpu-mig-1", {"3g.40gb": 2, "1g.10gb": 7}),
    mps_node("gpu-mps-1"),
    whole_gpu_node("gpu-a100-1", "NVIDIA-A100-SXM4-80GB", 4, 81920, "ampere"),
    whole_gpu_node("gpu-h200-1", "NVIDIA-H200", 2, 143771, "hopper"),
    cpu_node("cpu-1"),
]
