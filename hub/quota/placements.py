"""A placement as the ledger stores it (the allocation's `placement` column) and the API shows it."""
from __future__ import annotations

from astrago.spawners.placement import Placement


def placement_to_dict(p: Placement | None) -> dict:
    if p is None:
        return {}
    return {
        "node": p.node, "model": p.model, "gpu_uuids": list(p.gpu_uuids), "gpu_indices": list(p.gpu_indices),
        "mig_instance_uuids": list(p.mig_instance_uuids), "mps_percent": p.mps_percent,
        "mps_memory_limit_mib": p.mps_memory_limit_mib,
        "visible_devices": list(p.mig_instance_uuids or p.gpu_uuids),
    }
