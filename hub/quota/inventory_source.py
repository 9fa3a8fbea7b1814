"""Where the service's inventory comes from in each mode."""
from __future__ import annotations

import os
from pathlib import Path

from astrago.spawners.inventory import ClusterInventory, NodeInventory


def load_inventory(settings) -> tuple[ClusterInventory, str]:
    """(inventory, a sentence for people). Embedded: a static file, else NVML, else no GPU.
    Cluster: one list of the Kubernetes Node objects (the fleet area's node watch keeps the
    ledger's inventory current afterwards). `settings`: the service (mode, inventory_file,
    node_selector)."""
    if getattr(settings, "mode", "embedded") == "cluster":
        return cluster_inventory(getattr(settings, "node_selector", ""))
    path = settings.inventory_file
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


def cluster_inventory(label_selector: str = "", api_factory=None) -> tuple[ClusterInventory, str]:
    """(inventory, a sentence for people) from one list of the cluster's Node objects."""
    from astrago.spawners.inventory.kube_watch import list_nodes_once
    from astrago.spawners.inventory.kubernetes_nodes import nodes_from_kubernetes

    inventory = nodes_from_kubernetes(list_nodes_once(api_factory, label_selector))
    gpus = inventory.gpu_count
    return inventory, (f"{gpus} NVIDIA GPU(s) on {len(inventory.nodes)} node(s), from the Kubernetes API."
                       if gpus else "No node of this cluster has an NVIDIA GPU yet: CPU-only workspaces.")
