"""The static inventory source: a cluster file (YAML or JSON) describing nodes and GPUs.

Used by tests, the placement benchmark, simulations and hosts without NVML. The format is
the benchmark's cluster file, kept stable because other traces are fed to it::

    {"nodes": [{"name": "n1", "gpus": [
        {"model": "H100-80GB", "mode": "mig", "geometry": {"3g.40gb": 2}},
        {"model": "H100-80GB", "mode": "mps", "mps_replicas": 4},
        {"model": "A100-40GB", "mode": "full", "uuid": "GPU-..."},
        {"model": "A30", "mode": "mig",
         "instances": [{"profile": "2g.12gb", "start": 0, "uuid": "MIG-..."}]}]}]}

A MIG GPU without `geometry` or `instances` is uncut. Missing uuids are generated
deterministically (`GPU-sim-<node>-<i>`, `MIG-sim-<node>-<i>-<start>-<profile>`), and the
inventory is marked simulated.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Mapping

from .. import slices
from . import ClusterInventory, GPUDevice, InvalidInventory, MigInstance, NodeInventory, GPU_MODES

DEFAULT_MPS_REPLICAS = 4


def load_static_inventory(path: str | Path) -> ClusterInventory:
    """Read a cluster file; YAML and JSON both accepted (JSON is YAML, but json is faster)."""
    text = Path(path).read_text()
    if Path(path).suffix == ".json":
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text)
    return inventory_from_cluster_spec(data, where=str(path))


def simulated_gpu_uuid(node: str, index: int) -> str:
    return f"GPU-sim-{node}-{index}"


def simulated_mig_uuid(node: str, index: int, start: int, profile: str) -> str:
    return f"MIG-sim-{node}-{index}-{start}-{profile}"


def inventory_from_cluster_spec(data: Mapping[str, Any], where: str = "cluster spec") -> ClusterInventory:
    """Build an inventory from an already parsed cluster file."""
    if not isinstance(data, Mapping) or not isinstance(data.get("nodes"), list):
        raise InvalidInventory(f"{where}: expected an object with a 'nodes' list")
    nodes = []
    seen = set()
    for n, node in enumerate(data["nodes"]):
        name = node.get("name") if isinstance(node, Mapping) else None
        if not name:
            raise InvalidInventory(f"{where}: node {n} has no name")
        if name in seen:
            raise InvalidInventory(f"{where}: node {name!r} appears twice")
        seen.add(name)
        gpus = [_gpu(name, i, gpu, f"{where}: node {name!r} gpu {i}") for i, gpu in enumerate(node.get("gpus", []))]
        nodes.append(NodeInventory(name=name, gpus=gpus, source="static", simulated=True))
    return ClusterInventory(nodes=nodes)


def _gpu(node: str, position: int, spec: Mapping[str, Any], where: str) -> GPUDevice:
    model = slices.find_model(spec.get("model"))
    if model is None:
        raise InvalidInventory(f"{where}: unknown model {spec.get('model')!r}; "
                               f"known: {', '.join(slices.GPU_MODELS)}")
    mode = spec.get("mode", "full")
    if mode not in GPU_MODES:
        raise InvalidInventory(f"{where}: mode must be one of {', '.join(GPU_MODES)}, not {mode!r}")
    index = int(spec.get("index", position))
    gpu = GPUDevice(
        index=index,
        uuid=spec.get("uuid") or simulated_gpu_uuid(node, index),
        model=model.name,
        product_name=model.display_name,
        memory_mib=model.memory_gib * 1024,
        mode=mode,
    )
    if mode == "mps":
        gpu.mps_replicas = int(spec.get("mps_replicas", DEFAULT_MPS_REPLICAS))
        if gpu.mps_replicas not in slices.MPS_REPLICA_CHOICES:
            raise InvalidInventory(f"{where}: mps_replicas must be one of {slices.MPS_REPLICA_CHOICES}")
    if mode == "mig":
        gpu.mig_instances = _instances(node, index, model, spec, where)
    elif spec.get("geometry") or spec.get("instances"):
        raise InvalidInventory(f"{where}: geometry and instances need mode 'mig'")
    return gpu


def _instances(node, index, model, spec, where) -> list[MigInstance]:
    if spec.get("instances"):
        instances = []
        for item in spec["instances"]:
            profile, start = item["profile"], int(item["start"])
            if profile not in model.mig_profiles or start not in model.mig_profiles[profile].starts:
                raise InvalidInventory(f"{where}: {profile} cannot start at {start} on {model.name}")
            instances.append(MigInstance(uuid=item.get("uuid") or simulated_mig_uuid(node, index, start, profile),
                                         profile=profile, start=start))
        _check_no_overlap(model, instances, where)
        return instances
    geometry = Counter(spec.get("geometry") or {})
    try:
        layout = slices.layout_for_geometry(model, geometry)
    except slices.InvalidSlice as error:
        raise InvalidInventory(f"{where}: {error}") from None
    return [MigInstance(uuid=simulated_mig_uuid(node, index, placed.start, placed.profile),
                        profile=placed.profile, start=placed.start) for placed in layout]


def _check_no_overlap(model, instances, where) -> None:
    used = set()
    for instance in instances:
        profile = model.mig_profiles[instance.profile]
        slots = set(range(instance.start, instance.start + profile.memory_slices))
        if slots & used or instance.start + profile.memory_slices > model.memory_slices:
            raise InvalidInventory(f"{where}: {instance.profile} at {instance.start} overlaps another instance")
        used |= slots
    if not slices.geometry_fits(model, Counter(i.profile for i in instances)):
        raise InvalidInventory(f"{where}: instances exceed the {model.name}'s budgets")
