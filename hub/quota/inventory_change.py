"""Moving the ledger onto a new inventory (cluster mode: the node watch saw a change).

Kubernetes gives per-node counts, not which GPU holds which instance, so device ids are
reconstructed; after a change an allocation may not find its old id. It is then placed
again on the same node and model (Kubernetes already runs its pod: only the count matters),
and, failing that, kept in the ledger unplaced and logged, never released here: the pod
is real; the reconciler releases allocations whose servers are gone.
"""
from __future__ import annotations

import logging

from sqlalchemy import select

from astrago.spawners.inventory import ClusterInventory
from astrago.spawners.placement import Placer

from ..service.interfaces.admission import CLUSTER_HOLDER, DRAIN_HOLDER, InventoryRebuild
from .models import Allocation
from .placements import place_gang, placed_to_dict, restore_gang

log = logging.getLogger("astrago.quota")


def hold_foreign(placer: Placer, foreign: dict[str, dict[str, int]]) -> list[str]:
    """Hold, on each node, the slices that bound pods AstraGo did not admit are using
    (`cluster_capacity.foreign_usage`), so the ledger never admits what kube-scheduler cannot
    place. Returns what could not be held (the ledger already had those slices taken there)."""
    short = []
    for node, used in sorted(foreign.items()):
        for slice_name, count in sorted(used.items()):
            for i in range(count):
                if placer.place(f"{CLUSTER_HOLDER}{node}/{slice_name}/{i}", slice_name, node=node) is None:
                    short.append(f"{node}/{slice_name}")
    return short


def hold_drained(placer: Placer, drained: dict[str, set[int]]) -> int:
    """Take every free instance (and free whole GPU) of the drained GPUs, so nothing new lands
    there while mig-manager re-cuts them; the slices stay known, so requests queue meanwhile."""
    held = 0
    for gpu in placer.snapshot():
        if gpu.index not in drained.get(gpu.node, ()):
            continue
        if gpu.mode == "mig":
            for instance in gpu.instances:
                if instance.holder is None:
                    held += placer.restore(DRAIN_HOLDER + instance.uuid, instance.profile,
                                           {"gpu_uuids": [gpu.uuid], "mig_instance_uuids": [instance.uuid]})
        elif gpu.mode == "full" and not gpu.holders:
            held += placer.restore(DRAIN_HOLDER + gpu.uuid, "gpu-1", {"gpu_uuids": [gpu.uuid]})
    return held


def replace_inventory(session, desk, inventory: ClusterInventory, *, drained: dict[str, set[int]] | None = None,
                      node_objects: list[dict] | None = None, pods: list[dict] | None = None) -> InventoryRebuild:
    """Swap the desk onto `inventory`, re-holding every admitted allocation, the GPUs being
    re-cut (`drained`: node -> GPU indices) and, when the cluster's bound `pods` are known, the
    slices pods AstraGo did not admit hold; admit what now fits."""
    placer = Placer(inventory)
    report = InventoryRebuild()
    admitted = session.scalars(select(Allocation).where(Allocation.status == "admitted")
                               .order_by(Allocation.admitted_at)).all()
    nodes = {n.name for n in inventory.nodes}
    for alloc in admitted:
        held, replicas = alloc.placement or {}, alloc.replicas or 1
        if restore_gang(placer, alloc.id, alloc.slice, held, replicas):
            report.restored += 1
            continue
        placement = None
        if held.get("node") in nodes and replicas == 1:
            placement = placer.place(alloc.id, alloc.slice, model=held.get("model"), node=held.get("node"))
        if placement is None:
            placement = place_gang(placer, alloc.id, alloc.slice, replicas, model=held.get("model"))
        if placement is None and replicas > 1:  # its replicas may go to any model now
            placement = place_gang(placer, alloc.id, alloc.slice, replicas)
        if placement is None:
            report.unplaced.append(alloc.id)
            continue
        alloc.placement = placed_to_dict(placement)
        report.moved.append(alloc.id)
    hold_drained(placer, drained or {})
    if pods is not None:
        from astrago.spawners.inventory.cluster_capacity import ALLOCATION_LABEL, JOB_LABEL, foreign_usage

        own = {ALLOCATION_LABEL: {a.id for a in admitted},
               JOB_LABEL: {a.owner_id for a in admitted if a.owner_kind == "job"}}
        short = hold_foreign(placer, foreign_usage(node_objects or [], pods, own))
        if short:
            log.info("slices in use by pods AstraGo did not admit, already taken in the ledger: %s", short)
    desk.swap_placer(inventory, placer)
    report.admitted_now = desk.schedule(session)
    if report.unplaced:
        log.warning("after an inventory change %d admitted allocation(s) found no device: %s",
                    len(report.unplaced), ", ".join(report.unplaced))
    return report
