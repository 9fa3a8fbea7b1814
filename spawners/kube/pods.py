"""What a user's pod gets for its slice, as KubeSpawner trait values (pure).

`slice_overrides` turns `manifests.container_gpu_resources` (resources, node selector,
node affinity, tolerations, env) plus the admission's id and the quota's cpu/memory into
KubeSpawner traits. `merged_traits` lays them over the traits the deployment configured
(z2jh's tolerations and node-purpose affinity, extraEnv, ...): dictionaries are merged,
lists extended, scalars replaced, so a slice never drops what the chart set.

KubeSpawner's own `kubespawner_override` replaces lists; that is why GPUKubeSpawner applies
these itself.
"""
from __future__ import annotations

import copy
import re
from typing import Any, Mapping

from ..manifests import container_gpu_resources

__all__ = ["SLICE_LABEL", "ALLOCATION_LABEL", "label_value", "merged_traits", "slice_overrides"]

SLICE_LABEL = "astrago.io/slice"
ALLOCATION_LABEL = "astrago.io/allocation"


def label_value(text: str) -> str:
    """A valid label value: at most 63 of [A-Za-z0-9._-], starting and ending alphanumeric."""
    value = re.sub(r"[^A-Za-z0-9._-]", "-", text)[:63]
    return value.strip("-._")


def _quantity(value: float) -> str:
    return f"{value:g}"


def slice_overrides(slice_name: str, model: str | None = None, strategy: str = "mixed", *,
                    allocation_id: str | None = None, cpu: float | None = None,
                    memory_gib: float | None = None) -> dict[str, Any]:
    """KubeSpawner traits for one admitted slice.

    `model` (the catalogue name the admission placed on) narrows the node's GPU product;
    `cpu` and `memory_gib` are what quota counted, given as guarantee and limit alike.
    """
    parts = container_gpu_resources(slice_name, model, strategy)
    env = dict(parts["env"])
    labels = {SLICE_LABEL: label_value(slice_name)}
    if allocation_id:
        env["ASTRAGO_ALLOCATION_ID"] = allocation_id
        labels[ALLOCATION_LABEL] = label_value(allocation_id)
    traits: dict[str, Any] = {
        "extra_resource_limits": dict(parts["resources"]["limits"]),
        "extra_resource_guarantees": dict(parts["resources"]["requests"]),
        "node_selector": dict(parts["node_selector"]),
        "node_affinity_required": copy.deepcopy(parts["node_affinity_required"]),
        "tolerations": [dict(t) for t in parts["tolerations"]],
        "environment": env,
        "extra_labels": labels,
    }
    if cpu:
        traits["cpu_guarantee"] = traits["cpu_limit"] = float(cpu)
    if memory_gib:
        traits["mem_guarantee"] = traits["mem_limit"] = f"{_quantity(memory_gib)}G"
    return traits


def _extend(current: list, extra: list) -> list:
    merged = copy.deepcopy(list(current))
    for item in extra:
        if item not in merged:
            merged.append(copy.deepcopy(item))
    return merged


def merged_traits(current: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The trait values to set: `overrides` laid over `current` (dicts merged, lists extended)."""
    result = {}
    for name, value in overrides.items():
        before = current.get(name)
        if isinstance(value, dict) and isinstance(before, Mapping):
            result[name] = {**copy.deepcopy(dict(before)), **copy.deepcopy(value)}
        elif isinstance(value, list) and isinstance(before, (list, tuple)):
            result[name] = _extend(before, value)
        else:
            result[name] = copy.deepcopy(value)
    return result

