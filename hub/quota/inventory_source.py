"""Where the service's inventory comes from in each mode."""
from __future__ import annotations

import os
from pathlib import Path

from astrago.spawners.inventory import ClusterInventory, NodeInventory


def load_inventory(service) -> tuple[ClusterInventory, str]:
    """(inventory, a sentence for people). Embedded: a static file, else NVML, else no GPU.
    Cluster: the Kubernetes Node objects (the fleet area's node watch keeps it current)."""
    if getattr(service, "mode", "embedded") == "cluster":
        from ..fleet.inventory_feed import initial_inventory

        return initial_inventory(os.environ.get("ASTRAGO_NODE_SELECTOR", ""))
    path = service.inventory_file
    if path:
        from astrago.spawners.inventory.static import load_static_inventory

        return load_static_inventory(path), f"Simulated GPUs from {Path(path).name}: no real GPU is attached."
    from astrago.spawners.inventory.nvml import InventoryUnavailable, read_nvml_inventory

    try:
        node = read_nvml_inventory(os.uname().nodename)
    except InventoryUnavailable:
        empty = ClusterInventory(nodes=[NodeInventory(name=os.uname().nodename, gpus=[], source="nvml",
                                                      simulated=False)])
        return empty, "This machine has no NVIDIA GPU (NVML is not available): CPU-only workspaces."
    return ClusterInventory(nodes=[node]), f"{len(node.gpus)} NVIDIA GPU(s) found through NVML."
