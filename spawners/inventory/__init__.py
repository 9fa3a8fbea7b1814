"""What GPUs exist: nodes -> GPUs -> mode (whole, MIG with its instances, MPS with N replicas).

The inventory says what exists, not who uses it: allocations live in the placer
(`astrago.spawners.placement.Placer`), which is the ledger on one machine and the
simulator in a cluster. Three sources fill it, one module each:

- `nvml`: a real host, through NVML (the embedded mode);
- `kubernetes_nodes`: Node objects as GPU feature discovery and the device plugin label them;
- `static`: a YAML/JSON cluster file (tests, simulation, hosts without NVML).

The dataclasses use `__slots__`: a 10,000-GPU simulated inventory must stay small.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

__all__ = [
    "ClusterInventory",
    "GPUDevice",
    "InvalidInventory",
    "InventoryUnavailable",
    "MigInstance",
    "NodeInventory",
    "load_static_inventory",
    "inventory_from_cluster_spec",
    "nodes_from_kubernetes",
    "read_nvml_inventory",
]

GPU_MODES = ("full", "mig", "mps")


class InventoryUnavailable(RuntimeError):
    """The source cannot be read at all (no NVML library, no driver, no permission)."""


class InvalidInventory(ValueError):
    """The source was read but does not describe a valid inventory; the message says where."""


@dataclass(slots=True)
class MigInstance:
    """An existing MIG instance (a GPU instance with its compute instance).

    `start` is the position on the memory axis; None when the source cannot tell
    (NVML without the privilege to query GPU instances).
    """

    uuid: str
    profile: str
    start: int | None
    gi_id: int | None = None
    ci_id: int | None = None


@dataclass(slots=True)
class GPUDevice:
    """One physical GPU. `model` is the catalogue key, None when the catalogue does not know it."""

    index: int
    uuid: str
    model: str | None
    product_name: str
    memory_mib: int
    mode: str  # "full" | "mig" | "mps"
    mig_instances: list[MigInstance] = field(default_factory=list)
    mps_replicas: int = 0
    # Time-sliced GPUs (device plugin `sharing.timeSlicing`) are listed but never placed on:
    # time slicing has neither isolation nor a share size that quota could count.
    time_slicing_replicas: int = 0


@dataclass(slots=True)
class NodeInventory:
    name: str
    gpus: list[GPUDevice]
    source: str  # "nvml" | "static" | "kubernetes"
    simulated: bool = False
    # Kubernetes only: how the GPU operator has the node's MIG set up right now.
    mig_strategy: str | None = None
    mig_config: str | None = None
    mig_config_state: str | None = None


@dataclass(slots=True)
class ClusterInventory:
    nodes: list[NodeInventory]

    def gpus(self) -> Iterator[tuple[NodeInventory, GPUDevice]]:
        for node in self.nodes:
            for gpu in node.gpus:
                yield node, gpu

    @property
    def gpu_count(self) -> int:
        return sum(len(node.gpus) for node in self.nodes)


from .kubernetes_nodes import nodes_from_kubernetes  # noqa: E402
from .nvml import read_nvml_inventory  # noqa: E402
from .static import inventory_from_cluster_spec, load_static_inventory  # noqa: E402
