"""A placement as the ledger stores it (the allocation's `placement` column) and the API shows it."""
from __future__ import annotations

from astrago.spawners.placement import Placement, Placer

#: a gang's members are held on the placer as `<allocation id>#<rank>`
MEMBER_SEPARATOR = "#"


def placement_to_dict(p: Placement | None) -> dict:
    if p is None:
        return {}
    return {
        "node": p.node, "model": p.model, "gpu_uuids": list(p.gpu_uuids), "gpu_indices": list(p.gpu_indices),
        "mig_instance_uuids": list(p.mig_instance_uuids), "mps_percent": p.mps_percent,
        "mps_memory_limit_mib": p.mps_memory_limit_mib,
        "visible_devices": list(p.mig_instance_uuids or p.gpu_uuids),
    }


def placed_to_dict(placed) -> dict:
    """What an allocation stores: one placement, or a gang's (each replica's under `replicas`,
    replica 0's also at the top, so readers of one placement see the first replica)."""
    if isinstance(placed, (list, tuple)):
        members = [placement_to_dict(p) for p in placed]
        return {**members[0], "replicas": members}
    return placement_to_dict(placed)


def member_ids(allocation_id: str, replicas: int) -> list[str]:
    """The placer ids of an allocation's replicas (pure): its own id when it is one."""
    if replicas <= 1:
        return [allocation_id]
    return [f"{allocation_id}{MEMBER_SEPARATOR}{rank}" for rank in range(replicas)]


def allocation_of(holder: str) -> str:
    """The allocation a placer holder id belongs to (pure)."""
    return holder.split(MEMBER_SEPARATOR, 1)[0]


def place_gang(placer: Placer, allocation_id: str, slice_name: str, replicas: int = 1, **where):
    """Place every replica of a request on a slice of its own, or none (pure but for `placer`):
    the Placement (one replica), the list of them (a gang), or None with `placer.last_refusal`
    saying why."""
    if replicas <= 1:
        return placer.place(allocation_id, slice_name, **where)
    placed = []
    for member in member_ids(allocation_id, replicas):
        found = placer.place(member, slice_name, **where)
        if found is None:
            why = placer.last_refusal or f"no free {slice_name}"
            for done in placed:
                placer.release(done.request_id)
            placer.last_refusal = (f"{replicas} x {slice_name} at once: {why} ({len(placed)} of {replicas} "
                                   "would fit now)")
            return None
        placed.append(found)
    return placed


def release_gang(placer: Placer, allocation_id: str, replicas: int = 1) -> list:
    """Release every replica's devices; the placements released."""
    released = [placer.release(member) for member in member_ids(allocation_id, replicas)]
    return [p for p in released if p is not None]


def restore_gang(placer: Placer, allocation_id: str, slice_name: str, held: dict, replicas: int = 1) -> bool:
    """Hold again what every replica held (after a restart, on a new inventory); all or none."""
    if replicas <= 1:
        return placer.restore(allocation_id, slice_name, held)
    parts = held.get("replicas") or []
    if len(parts) != replicas:
        return False
    done = []
    for member, part in zip(member_ids(allocation_id, replicas), parts):
        if not placer.restore(member, slice_name, part):
            for member_done in done:
                placer.release(member_done)
            return False
        done.append(member)
    return True
