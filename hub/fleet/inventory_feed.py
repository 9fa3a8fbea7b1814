"""The cluster inventory feeding the admission desk.

At service start the desk is built from one list of the Node objects (`initial_inventory`,
called by `hub.quota.inventory_source` in cluster mode). Afterwards the shared node watch
(`spawners.inventory.kube_watch.NodeWatch`) reports GPU-relevant changes and
`rebuild_desk` swaps in a placer over the new inventory, on the database thread like every
other desk change.

Kubernetes gives per-node counts, not which GPU holds which instance, so device ids are
reconstructed; after a change an allocation may not find its old id. It is then placed
again on the same node and model (Kubernetes already runs its pod: only the count matters),
and, failing that, kept in the ledger unplaced and logged, never released here: the pod
is real; the reconciler releases allocations whose servers are gone.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import select

from astrago.spawners.inventory import ClusterInventory
from astrago.spawners.placement import Placer

from ..quota.desk import placement_to_dict
from ..quota.models import Allocation

log = logging.getLogger("astrago.fleet")


@dataclass
class RebuildReport:
    restored: int = 0
    moved: list[str] = field(default_factory=list)
    unplaced: list[str] = field(default_factory=list)
    admitted_now: list[str] = field(default_factory=list)


def initial_inventory(label_selector: str = "", api_factory=None) -> tuple[ClusterInventory, str]:
    """(inventory, a sentence for people) from one list of the cluster's Node objects."""
    from astrago.spawners.inventory.kube_watch import list_nodes_once
    from astrago.spawners.inventory.kubernetes_nodes import nodes_from_kubernetes

    inventory = nodes_from_kubernetes(list_nodes_once(api_factory, label_selector))
    gpus = inventory.gpu_count
    return inventory, (f"{gpus} NVIDIA GPU(s) on {len(inventory.nodes)} node(s), from the Kubernetes API."
                       if gpus else "No node of this cluster has an NVIDIA GPU yet: CPU-only workspaces.")


#: holder id prefix of the GPUs kept out of placement while they are re-cut
DRAIN_HOLDER = "recut-in-progress:"
#: holder id prefix of the slices pods AstraGo did not admit hold (DaemonSets, tenants, kubectl)
CLUSTER_HOLDER = "held-in-cluster:"


def hold_foreign(placer: Placer, foreign: dict[str, dict[str, int]]) -> list[str]:
    """Hold, on each node, the slices that bound pods AstraGo did not admit are using
    (`cluster_capacity.foreign_usage`), so the desk never admits what kube-scheduler cannot
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


def rebuild_desk(session, desk, inventory: ClusterInventory, drained: dict[str, set[int]] | None = None,
                 node_objects: list[dict] | None = None, pods: list[dict] | None = None) -> RebuildReport:
    """Swap the desk onto `inventory`, re-holding every admitted allocation, the GPUs being
    re-cut (`drained`: node -> GPU indices) and, when the cluster's bound `pods` are known, the
    slices pods AstraGo did not admit hold; admit what now fits."""
    placer = Placer(inventory)
    report = RebuildReport()
    admitted = session.scalars(select(Allocation).where(Allocation.status == "admitted")
                               .order_by(Allocation.admitted_at)).all()
    for alloc in admitted:
        held = alloc.placement or {}
        if placer.restore(alloc.id, alloc.slice, held):
            report.restored += 1
            continue
        placement = None
        if held.get("node") in {n.name for n in inventory.nodes}:
            placement = placer.place(alloc.id, alloc.slice, model=held.get("model"), node=held.get("node"))
        if placement is None:
            placement = placer.place(alloc.id, alloc.slice, model=held.get("model"))
        if placement is None:
            report.unplaced.append(alloc.id)
            continue
        alloc.placement = placement_to_dict(placement)
        report.moved.append(alloc.id)
    hold_drained(placer, drained or {})
    if pods is not None:
        from astrago.spawners.inventory.cluster_capacity import ALLOCATION_LABEL, JOB_LABEL, foreign_usage

        own = {ALLOCATION_LABEL: {a.id for a in admitted},
               JOB_LABEL: {a.owner_id for a in admitted if a.owner_kind == "job"}}
        short = hold_foreign(placer, foreign_usage(node_objects or [], pods, own))
        if short:
            log.info("slices in use by pods AstraGo did not admit, already taken in the ledger: %s", short)
    desk.inventory = inventory
    desk.placer = placer
    # the desk caches per slice whether it can ever be placed; that changes with the inventory
    getattr(desk, "_fit_cache", {}).clear()
    report.admitted_now = desk.schedule(session)
    if report.unplaced:
        log.warning("after an inventory change %d admitted allocation(s) found no device: %s",
                    len(report.unplaced), ", ".join(report.unplaced))
    return report
