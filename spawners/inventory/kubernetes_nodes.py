"""The Kubernetes inventory source: GPUs as GPU feature discovery (GFD) and the device plugin
describe them on Node objects.

Node objects are plain dicts (what `kubectl get nodes -o json` or the API returns); fetching
them is the caller's business. What a Node tells:

- `nvidia.com/gpu.product`, `gpu.count`, `gpu.memory` (MiB): the physical GPUs;
- MIG `mixed` strategy: `nvidia.com/mig-<profile>.count` per profile, summed over the node's
  GPUs, and `nvidia.com/gpu` capacity for the GPUs not in MIG mode;
- MIG `single` strategy: the product becomes `<product>-MIG-<profile>` and `gpu.count`
  counts MIG devices, every GPU cut the same way;
- sharing: `nvidia.com/gpu.sharing-strategy` (none | mps | time-slicing) and `gpu.replicas`.

Kubernetes does not say which GPU holds which instance, nor the instances' UUIDs: GPUs are
reconstructed (instances spread largest first over the MIG GPUs) and given stable
synthetic ids `GPU-k8s-<node>-<i>` / `MIG-k8s-<node>-<i>-<start>-<profile>`. Only the
per-node counts are facts, which is all the scheduler-facing side needs.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any, Mapping

from .. import slices
from . import ClusterInventory, GPUDevice, InvalidInventory, MigInstance, NodeInventory

LABEL = "nvidia.com/"
_MIG_COUNT_LABEL = re.compile(r"^nvidia\.com/mig-(?P<profile>\d+g\.\d+gb(?:\+me)?)\.count$")
_SINGLE_PRODUCT = re.compile(r"-MIG-(?P<profile>\d+g\.\d+gb(?:\+me)?)$", re.IGNORECASE)


def nodes_from_kubernetes(node_objects: list[Mapping[str, Any]]) -> ClusterInventory:
    """Inventory of the GPU nodes among `node_objects` (nodes without NVIDIA GPUs are left out, and
    cordoned nodes: kube-scheduler places nothing new there, so they offer no capacity)."""
    nodes = []
    for node in node_objects:
        if (node.get("spec") or {}).get("unschedulable"):
            continue
        inventory = _node(node)
        if inventory is not None:
            nodes.append(inventory)
    return ClusterInventory(nodes=nodes)


def _int(value, default=0) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


def _node(node: Mapping[str, Any]) -> NodeInventory | None:
    name = node.get("metadata", {}).get("name")
    labels = node.get("metadata", {}).get("labels", {}) or {}
    capacity = node.get("status", {}).get("capacity", {}) or {}
    count = _int(labels.get(LABEL + "gpu.count"))
    product = labels.get(LABEL + "gpu.product", "")
    if not name or count == 0 or not product:
        return None
    model = slices.identify_model(gfd_product=product)
    strategy = labels.get(LABEL + "mig.strategy")
    single_profile = _SINGLE_PRODUCT.search(product)
    if strategy == "single" and single_profile:
        gpus = _single_strategy_gpus(name, model, product, labels, count, single_profile.group("profile"))
    else:
        mig_counts = Counter({m.group("profile"): _int(v) for key, v in labels.items()
                              if (m := _MIG_COUNT_LABEL.match(key)) and _int(v) > 0})
        full = _whole_gpus(labels, capacity, count) if mig_counts else count
        gpus = _mixed_strategy_gpus(name, model, product, labels, count, full, mig_counts)
    return NodeInventory(
        name=name,
        gpus=gpus,
        source="kubernetes",
        simulated=False,
        mig_strategy=strategy,
        mig_config=labels.get(LABEL + "mig.config"),
        mig_config_state=labels.get(LABEL + "mig.config.state"),
    )


def _whole_gpus(labels, capacity, count) -> int:
    """GPUs not in MIG mode on a mixed node: `nvidia.com/gpu` capacity, or the shared
    resource over its replicas when the device plugin renamed it."""
    if LABEL + "gpu" in capacity:
        return _int(capacity[LABEL + "gpu"], count)
    replicas = max(_int(labels.get(LABEL + "gpu.replicas"), 1), 1)
    return _int(capacity.get(LABEL + "gpu.shared"), count * replicas) // replicas


def _gpu(node, index, model, product, memory_mib, mode) -> GPUDevice:
    return GPUDevice(index=index, uuid=f"GPU-k8s-{node}-{index}", model=model.name if model else None,
                     product_name=product, memory_mib=memory_mib, mode=mode)


def _apply_sharing(gpu: GPUDevice, labels) -> None:
    sharing = labels.get(LABEL + "gpu.sharing-strategy", "none")
    replicas = _int(labels.get(LABEL + "gpu.replicas"), 1)
    if sharing == "mps" and replicas > 1:
        gpu.mode, gpu.mps_replicas = "mps", replicas
    elif sharing == "time-slicing" and replicas > 1:
        gpu.time_slicing_replicas = replicas


def _mixed_strategy_gpus(node, model, product, labels, count, full, mig_counts) -> list[GPUDevice]:
    memory_mib = _int(labels.get(LABEL + "gpu.memory"))
    mig_gpus = max(count - full, 0)
    if mig_counts and model is None:
        raise InvalidInventory(f"node {node!r}: MIG instances on an unknown GPU model {product!r}")
    per_gpu = _spread_instances(node, model, mig_counts, mig_gpus) if mig_counts else []
    gpus = []
    for index in range(count):
        if index < mig_gpus:
            gpu = _gpu(node, index, model, product, memory_mib, "mig")
            gpu.mig_instances = _instances(node, index, model, per_gpu[index])
        else:
            gpu = _gpu(node, index, model, product, memory_mib, "full")
            _apply_sharing(gpu, labels)
        gpus.append(gpu)
    return gpus


def _single_strategy_gpus(node, model, product, labels, count, profile) -> list[GPUDevice]:
    """Under `single`, every GPU holds the same profile; mig-parted's all-<profile> configs cut
    each GPU to the profile's maximum, which is how the physical GPUs are counted back."""
    if model is None or profile not in model.mig_profiles:
        raise InvalidInventory(f"node {node!r}: {profile!r} on unknown GPU product {product!r}")
    per_gpu = model.mig_profiles[profile].max_instances
    physical = math.ceil(count / per_gpu)
    gpus = []
    remaining = count
    for index in range(physical):
        here = min(per_gpu, remaining)
        remaining -= here
        gpu = _gpu(node, index, model, _SINGLE_PRODUCT.sub("", product), model.memory_gib * 1024, "mig")
        gpu.mig_instances = _instances(node, index, model, Counter({profile: here}))
        gpus.append(gpu)
    return gpus


def _spread_instances(node, model, mig_counts: Counter, mig_gpus: int) -> list[Counter]:
    """Split the node's per-profile counts into one feasible geometry per MIG GPU.

    Evenly when the counts divide (mig-parted's `all-*` configs cut every GPU alike);
    otherwise a search over the model's feasible geometries, fullest first.
    """
    unknown = [p for p in mig_counts if p not in model.mig_profiles]
    if unknown:
        raise InvalidInventory(f"node {node!r}: {unknown} are not MIG profiles of the {model.name}")
    if mig_gpus and all(n % mig_gpus == 0 for n in mig_counts.values()):
        even = Counter({p: n // mig_gpus for p, n in mig_counts.items()})
        if slices.geometry_fits(model, even):
            return [Counter(even) for _ in range(mig_gpus)]
    geometries = sorted(slices.feasible_geometries(model), key=lambda g: -sum(g.values()))
    failed = set()

    def split(remaining: Counter, gpus_left: int):
        if not +remaining:
            return [Counter() for _ in range(gpus_left)]
        key = (tuple(sorted((+remaining).items())), gpus_left)
        if gpus_left == 0 or key in failed:
            return None
        for geometry in geometries:
            if geometry and not geometry - remaining:  # geometry within what is left
                rest = split(remaining - geometry, gpus_left - 1)
                if rest is not None:
                    return [geometry] + rest
        failed.add(key)
        return None

    result = split(Counter(mig_counts), mig_gpus)
    if result is None:
        raise InvalidInventory(f"node {node!r}: {dict(mig_counts)} do not fit on {mig_gpus} {model.name} GPU(s)")
    return result


def _instances(node, index, model, geometry: Counter) -> list[MigInstance]:
    return [MigInstance(uuid=f"MIG-k8s-{node}-{index}-{placed.start}-{placed.profile}",
                        profile=placed.profile, start=placed.start)
            for placed in slices.layout_for_geometry(model, geometry)]
