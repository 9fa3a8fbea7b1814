"""Node objects as GPU feature discovery and the device plugin label them (test data)."""
from __future__ import annotations


def h100_node(name: str, gpus: int, mig_counts: dict[str, int] | None = None, *, whole: int = 0,
              mig_config: str = "all-enabled", state: str = "success") -> dict:
    """An H100 node, `mixed` strategy: `mig_counts` instances in all (per profile), `whole` GPUs not in MIG mode."""
    labels = {"kubernetes.io/hostname": name, "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
              "nvidia.com/gpu.count": str(gpus), "nvidia.com/gpu.memory": "81559", "nvidia.com/mig.capable": "true",
              "nvidia.com/mig.strategy": "mixed", "nvidia.com/mig.config": mig_config,
              "nvidia.com/mig.config.state": state, "nvidia.com/gpu.sharing-strategy": "none"}
    capacity = {"cpu": "64", "memory": "528000000Ki", "pods": "110", "nvidia.com/gpu": str(whole)}
    for profile, count in (mig_counts or {}).items():
        labels[f"nvidia.com/mig-{profile}.count"] = str(count)
        capacity[f"nvidia.com/mig-{profile}"] = str(count)
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "status": {"capacity": capacity, "allocatable": dict(capacity)}}


def cpu_node(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"capacity": {"cpu": "16", "memory": "64000000Ki", "pods": "110"}}}
