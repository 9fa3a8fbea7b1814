"""MIG re-cutting, the pure part: plan, check idleness, render what to write, follow progress.

A re-cut is applied by the GPU operator's mig-manager: AstraGo writes the layouts into the
mig-parted ConfigMap and points each node at its layout with `nvidia.com/mig.config`;
mig-manager reports `nvidia.com/mig.config.state` = pending | rebooting | success | failed.
Re-cutting stops the GPU's clients, and mig-manager may stop GPU clients on the whole node,
so a re-cut is refused while a re-cut GPU holds an allocation, and (unless the admin says
otherwise) while any GPU of its node does.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, Iterable, Mapping

from astrago.spawners import slices
from astrago.spawners.geometry import GeometryPlan, GpuPlan, plan_geometries
from astrago.spawners.inventory import ClusterInventory
from astrago.spawners.placement import GpuSnapshot

MIG_CONFIG_LABEL = "nvidia.com/mig.config"
MIG_CONFIG_STATE_LABEL = "nvidia.com/mig.config.state"
TERMINAL_STATES = ("success", "failed")


class RecutRefused(Exception):
    """A re-cut that must not happen; `kind` is a problem type, `detail` is for people."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


# --------------------------------------------------------------------------- planning

def parse_demand(demand) -> dict[str, int]:
    """`{"1g.10gb": 4, ...}` checked: known MIG profiles, whole numbers >= 0."""
    if not isinstance(demand, Mapping) or not demand:
        raise RecutRefused("invalid-request", 'demand must name MIG profiles and counts, e.g. {"1g.10gb": 4}.')
    parsed = {}
    for profile, count in demand.items():
        try:
            kind = slices.parse_slice(profile).kind
        except slices.InvalidSlice as exc:
            raise RecutRefused("invalid-slice", str(exc)) from None
        if kind != "mig":
            raise RecutRefused("invalid-slice", f"{profile} is not a MIG profile; only MIG slices are cut.")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise RecutRefused("invalid-request", f"the demand for {profile} must be a whole number >= 0.")
        parsed[profile] = count
    return parsed


class _Layout:
    """A device layout where the geometry planner takes a placer (it only reads `snapshot()`)."""

    def __init__(self, snapshots: Iterable[GpuSnapshot]):
        self._snapshots = list(snapshots)

    def snapshot(self) -> list[GpuSnapshot]:
        return self._snapshots


def plan_for_demand(inventory: ClusterInventory, demand: Mapping[str, int],
                    layout: Iterable[GpuSnapshot]) -> GeometryPlan:
    """The geometry planner's proposal for `demand`; GPUs holding allocations (per `layout`, the
    ledger's) keep their layout."""
    return plan_geometries(inventory, parse_demand(demand), _Layout(layout))


def _busy(snapshot: GpuSnapshot | None) -> bool:
    return bool(snapshot and (snapshot.holders or any(i.holder for i in snapshot.instances)))


def plan_for_geometries(inventory: ClusterInventory, layout: Iterable[GpuSnapshot],
                        requested: Iterable[Mapping]) -> GeometryPlan:
    """A plan that cuts the named GPUs (`[{node, index, geometry}]`) and keeps every other GPU
    of their nodes as it is."""
    wanted: dict[tuple[str, int], Counter] = {}
    for item in requested:
        if not isinstance(item, Mapping) or not isinstance(item.get("node"), str) \
                or isinstance(item.get("index"), bool) or not isinstance(item.get("index"), int) \
                or not isinstance(item.get("geometry"), Mapping) or not item.get("geometry"):
            raise RecutRefused("invalid-request", 'each GPU is {"node": <name>, "index": <n>, '
                               '"geometry": {"<profile>": <count>, ...}} with at least one instance.')
        wanted[(item["node"], item["index"])] = Counter(parse_demand(item["geometry"]))
    nodes = {node for node, _ in wanted}
    known = {(node.name, gpu.index) for node, gpu in inventory.gpus()}
    missing = sorted(set(wanted) - known)
    if missing:
        raise RecutRefused("not-found", "no such GPU: " + ", ".join(f"{n}/{i}" for n, i in missing))
    snapshots = {(s.node, s.index): s for s in layout}
    gpus, full = [], {}
    for node, gpu in inventory.gpus():
        if node.name not in nodes:
            continue
        key = (node.name, gpu.index)
        model = slices.GPU_MODELS.get(gpu.model)
        snapshot = snapshots.get(key)
        instances = snapshot.instances if snapshot else gpu.mig_instances
        current = Counter(i.profile for i in instances) if gpu.mode == "mig" else Counter()
        if key in wanted:
            if model is None:
                raise RecutRefused("invalid-request", f"GPU {node.name}/{gpu.index} is a model AstraGo does not "
                                   "know; it cannot be cut.")
            if gpu.mode == "mps":
                raise RecutRefused("conflict", f"GPU {node.name}/{gpu.index} is shared through MPS; take its node "
                                   "out of MPS sharing before cutting it into MIG instances.")
            geometry = wanted[key]
            if not slices.geometry_fits(model, geometry):
                raise RecutRefused("invalid-slice", f"{dict(geometry)} does not fit on one {model.name}.")
            gpus.append(GpuPlan(node.name, gpu.index, gpu.uuid, model.name, dict(current), dict(geometry),
                                slices.layout_for_geometry(model, geometry), busy=_busy(snapshot)))
        elif gpu.mode == "mig" and model is not None:
            layout = tuple(slices.PlacedInstance(i.profile, i.start) for i in instances)
            gpus.append(GpuPlan(node.name, gpu.index, gpu.uuid, model.name, dict(current), dict(current), layout,
                                busy=_busy(snapshot)))
        else:
            full.setdefault(node.name, []).append(gpu.index)
    gpus.sort(key=lambda g: (g.node, g.index))
    return GeometryPlan(gpus=tuple(gpus), demand={}, served_gpu_units=Fraction(0),
                        full_gpus={node: tuple(indices) for node, indices in full.items()})


def check_idle(plan: GeometryPlan, snapshots: Iterable[GpuSnapshot], holder_words: Callable[[str], str],
               busy_node_ok: bool = False) -> None:
    """Refuse (RecutRefused "conflict") while a re-cut GPU holds allocations, or any GPU of a
    re-cut node does (unless `busy_node_ok`). `holder_words(allocation id)` names a holder."""
    by_key = {(s.node, s.index): s for s in snapshots}

    def holders(snapshot: GpuSnapshot) -> list[str]:
        ids = list(snapshot.holders) + [i.holder for i in snapshot.instances if i.holder]
        return [holder_words(h) for h in ids]

    recut = plan.recut_gpus
    for gpu in recut:
        snapshot = by_key.get((gpu.node, gpu.index))
        if snapshot is not None and _busy(snapshot):
            raise RecutRefused("conflict", f"GPU {gpu.node}/{gpu.index} holds allocations "
                               f"({', '.join(holders(snapshot))}); re-cutting would stop them. "
                               "Try again once they are released.")
    if busy_node_ok:
        return
    nodes = {g.node for g in recut}
    for snapshot in by_key.values():
        if snapshot.node in nodes and _busy(snapshot):
            raise RecutRefused("conflict", f"node {snapshot.node} has GPU {snapshot.index} in use "
                               f"({', '.join(holders(snapshot))}); the GPU operator may stop every GPU program on "
                               "a node while it re-cuts one. Wait, or send busy_node_ok: true to accept that.")


def changes_to_write(plan: GeometryPlan, current_labels: Mapping[str, Mapping[str, str]]) -> tuple[dict, dict]:
    """(mig-parted configs to add, labels per node) for the nodes whose layout changes and whose
    `nvidia.com/mig.config` does not already name it. The state label is reset to `pending`
    in the same patch, so an old `success` is never mistaken for this re-cut's."""
    configs = plan.mig_parted_config()["mig-configs"]
    labels = {}
    for node, node_labels in plan.node_labels().items():
        name = node_labels[MIG_CONFIG_LABEL]
        if (current_labels.get(node) or {}).get(MIG_CONFIG_LABEL) == name:
            continue
        labels[node] = {MIG_CONFIG_LABEL: name, MIG_CONFIG_STATE_LABEL: "pending"}
    used = {node_labels[MIG_CONFIG_LABEL] for node_labels in labels.values()}
    return {name: entries for name, entries in configs.items() if name in used}, labels


def plan_summary(plan: GeometryPlan) -> dict:
    """A plan as JSON: per GPU what it has and what it gets, and what would be written."""
    configs, labels = changes_to_write(plan, {})
    return {
        "gpus": [{"node": g.node, "index": g.index, "model": g.model, "current": dict(sorted(g.current.items())),
                  "proposed": dict(sorted(g.proposed.items())), "recut": g.recut, "busy": g.busy,
                  "layout": [{"profile": p.profile, "start": p.start} for p in g.layout]} for g in plan.gpus],
        "demand": dict(plan.demand),
        "served_gpu_units": float(plan.served_gpu_units),
        "served_gpu_units_exact": f"{plan.served_gpu_units.numerator}/{plan.served_gpu_units.denominator}",
        "mig_configs": configs,
        "node_labels": labels,
    }


# --------------------------------------------------------------------------- following

@dataclass
class NodeProgress:
    config: str
    state: str = "pending"


@dataclass
class RecutRecord:
    id: str
    created_by: str
    created_at: str
    nodes: dict[str, NodeProgress]
    gpus: list[dict]
    status: str = "applying"  # applying | done | failed | superseded | error
    detail: str = ""
    drained: dict[str, list[int]] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status != "applying"

    def to_dict(self) -> dict:
        return {"id": self.id, "created_by": self.created_by, "created_at": self.created_at, "status": self.status,
                "detail": self.detail, "gpus": self.gpus,
                "nodes": {name: {"config": p.config, "state": p.state} for name, p in sorted(self.nodes.items())}}


def follow(record: RecutRecord, labels_by_node: Mapping[str, Mapping[str, str]]) -> bool:
    """Advance a record from the nodes' labels; True when something changed."""
    if record.finished:
        return False
    changed = False
    for name, progress in record.nodes.items():
        labels = labels_by_node.get(name)
        if labels is None:
            state = "node gone"
        elif labels.get(MIG_CONFIG_LABEL) != progress.config:
            state = "superseded"
        else:
            state = labels.get(MIG_CONFIG_STATE_LABEL) or "pending"
        if state != progress.state:
            progress.state, changed = state, True
    states = {p.state for p in record.nodes.values()}
    if states <= {"success"}:
        record.status, record.detail = "done", "every node reports success"
    elif "failed" in states:
        failed = sorted(n for n, p in record.nodes.items() if p.state == "failed")
        record.status = "failed"
        record.detail = (f"mig-manager reports failed on {', '.join(failed)}; its log "
                         "(kubectl -n gpu-operator logs -l app=nvidia-mig-manager) says why")
    elif states & {"superseded", "node gone"}:
        record.status = "superseded"
        record.detail = "a node was relabelled or removed by someone else before the re-cut finished"
    else:
        return changed
    return True
