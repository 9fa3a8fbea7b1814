"""Readings for a simulated inventory (a static inventory file: no real GPU is attached).

A stand-in for NVML on machines without GPUs (demos, the end-to-end tests): each round it
reads a JSON file of utilisation and memory per device UUID,

    {"default": {"utilization_percent": 0, "memory_used_mib": 0},
     "devices": {"MIG-sim-demo-0-0-3g.40gb": {"utilization_percent": 55, "memory_used_mib": 20480}}}

Devices neither listed nor covered by "default" get no reading (unknown, never idle). Without
the file there are no readings at all, and the dashboards say so.
"""
from __future__ import annotations

import json
from pathlib import Path

from astrago.spawners import slices

from ..readings import DeviceReading

MIB = 1024 * 1024


def _memory_mib(model: str | None, profile: str | None, fallback: int) -> int:
    if model and profile:
        try:
            return int(slices.slice_memory_gib(model, profile) * 1024)
        except (slices.InvalidSlice, KeyError, ValueError):
            pass
    return fallback


def simulated_readings(inventory, load: dict | None) -> list[DeviceReading]:
    """Readings of every device of `inventory` that `load` covers (pure)."""
    if not load:
        return []
    per_device = load.get("devices") or {}
    fallback = load.get("default")
    out = []
    for node, gpu in inventory.gpus():
        devices = [(gpu.uuid, "gpu", "", None, gpu.memory_mib)]
        if gpu.mode == "mig":
            devices += [(i.uuid, "mig", i.profile, i.gi_id, _memory_mib(gpu.model, i.profile, gpu.memory_mib))
                        for i in gpu.mig_instances]
        for uuid, kind, profile, gi_id, memory_mib in devices:
            spec = per_device.get(uuid, fallback)
            if spec is None:
                continue
            util = spec.get("utilization_percent")
            if kind == "gpu" and gpu.mode == "mig" and uuid not in per_device:
                util = None  # as on real hardware: a GPU in MIG mode reports no utilisation of its own
            used = spec.get("memory_used_mib")
            out.append(DeviceReading(
                uuid=uuid, kind=kind, node=node.name, gpu_uuid=gpu.uuid, gpu_index=gpu.index, gi_id=gi_id,
                profile=profile, utilization=None if util is None else max(0.0, min(1.0, float(util) / 100.0)),
                memory_used_bytes=None if used is None else int(float(used) * MIB),
                memory_total_bytes=int(memory_mib) * MIB))
    return out


def read_load_file(path: str) -> dict | None:
    p = Path(path)
    if not p.exists():
        return None
    data = json.loads(p.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data
