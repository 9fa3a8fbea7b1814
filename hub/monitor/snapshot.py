"""What the metrics and the dashboards show: the ledger, the device layout and the readings, joined.

`build_view(...)` (pure) takes the quota area's accounting (`AccountingSnapshot`: the allocation
ledger, the queue, quotas and GPU-hours, read on the database thread), the ledger's device layout
and the collectors' readings, and joins them: each slice with the allocation holding it (user,
workspace or job) and how busy it is.

Attribution: on one machine the ledger knows the exact device (MIG or GPU UUID) of every
allocation, so a reading's UUID names its holder; MPS shares of one GPU are told apart by the
system account of each process. In a cluster readings carry the allocation id of their pod
(`allocation_hint`, see collectors.prometheus).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from ..service.interfaces.accounting import AccountingSnapshot
from .readings import CollectorResult, DeviceReading


# --------------------------------------------------------------------------- the joined view (pure)

@dataclass(slots=True)
class SliceView:
    node: str
    gpu_index: int
    gpu_uuid: str
    slice_id: str  # MIG uuid, GPU uuid, or "<GPU uuid>#mps<n>"
    kind: str  # mig | gpu | mps
    profile: str  # "3g.40gb", "gpu", "mps-25"
    start: int | None = None  # MIG: memory-slice position
    size: int = 1  # MIG: memory slices (for drawing)
    allocation_id: str | None = None
    user: str = ""
    owner_kind: str = ""
    owner: str = ""
    utilization: float | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None


@dataclass(slots=True)
class GpuView:
    node: str
    index: int
    uuid: str
    model: str
    mode: str
    utilization: float | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    up: bool | None = None  # None: no device collector covers this node
    slices: list = field(default_factory=list)
    processes: list = field(default_factory=list)


@dataclass(slots=True)
class UserView:
    name: str
    gpu_units: float = 0.0
    servers: int = 0
    cpu: float = 0.0
    memory_gib: float = 0.0
    gpu_hours: float = 0.0
    busy_units: float | None = None  # sum of utilisation x units over slices with a reading
    measured_units: float = 0.0  # units of the slices that have a reading
    limits: dict = field(default_factory=dict)


@dataclass
class FleetView:
    at: float
    gpus: list[GpuView]
    slices: list[SliceView]
    users: dict[str, UserView]
    groups: dict[str, float]  # accounting group -> GPU units held
    group_limits: dict[str, dict]
    queue: dict[str, tuple[int, float]]  # slice -> (waiting, oldest wait in s)
    allocations: dict[tuple[str, str], int]  # (slice, owner kind) -> admitted count
    capacity_units: float
    allocated_units: float
    allocation_utilization: dict[str, float | None]  # allocation id -> utilisation (max over its devices)
    collectors: list[CollectorResult]
    servers: dict[str, int]  # ready | pending -> count
    notes: list[str] = field(default_factory=list)


@lru_cache(maxsize=1024)
def _mig_size(model: str | None, profile: str) -> int:
    """Memory slices a MIG profile spans (its width when drawn)."""
    from astrago.spawners import slices

    try:
        m = slices.GPU_MODELS.get(model) if model else None
        if m is None:
            m = next(x for x in slices.GPU_MODELS.values() if profile in x.mig_profiles)
        return m.mig_profiles[profile].memory_slices
    except (StopIteration, KeyError, AttributeError):
        return 1


def build_view(accounting: AccountingSnapshot, gpus_snapshot, inventory, results: list[CollectorResult],
               now: float | None = None) -> FleetView:
    """Join ledger, device layout and readings (pure). `gpus_snapshot`: AdmissionLedger.device_layout()."""
    now = accounting.at if now is None else now
    held = accounting.held
    device_results = [r for r in results if r.ok and r.servers is None]
    readings: dict[str, DeviceReading] = {}
    hinted: dict[str, list[DeviceReading]] = {}
    nodes_covered = set()
    for r in device_results:
        for d in r.devices:
            readings[d.uuid] = d
            nodes_covered.add(d.node)
            if d.allocation_hint:
                hinted.setdefault(d.allocation_hint, []).append(d)
    seen_gpus = {(d.node, d.gpu_uuid) for d in readings.values()}
    seen_indices = {(d.node, d.gpu_index) for d in readings.values()}
    memory_of = {}
    for node, gpu in inventory.gpus():
        memory_of[gpu.uuid] = gpu.memory_mib * 1024 * 1024
    gpus: list[GpuView] = []
    slices: list[SliceView] = []
    alloc_util: dict[str, float | None] = {}

    def note_util(aid: str | None, value: float | None):
        if aid is None:
            return
        if value is None:
            alloc_util.setdefault(aid, None)
        else:
            prev = alloc_util.get(aid)
            alloc_util[aid] = value if prev is None else max(prev, value)

    hint_util: dict[str, float] = {}
    for aid, devs in hinted.items():  # cluster: readings name their allocation (pod label)
        values = [d.utilization for d in devs if d.utilization is not None]
        if values:
            hint_util[aid] = max(values)

    for g in gpus_snapshot:
        reading = readings.get(g.uuid)
        view = GpuView(node=g.node, index=g.index, uuid=g.uuid, model=g.model or "unknown", mode=g.mode,
                       memory_total_bytes=memory_of.get(g.uuid))
        if reading is not None:
            view.utilization = reading.utilization
            view.memory_used_bytes = reading.memory_used_bytes
            view.memory_total_bytes = reading.memory_total_bytes or view.memory_total_bytes
            view.processes = reading.processes
        if g.node in nodes_covered:
            view.up = (g.node, g.uuid) in seen_gpus or (g.node, g.index) in seen_indices
        if g.mode == "mig":
            for inst in g.instances:
                r = readings.get(inst.uuid)
                s = SliceView(g.node, g.index, g.uuid, inst.uuid, "mig", inst.profile, inst.start,
                              _mig_size(g.model, inst.profile), inst.holder)
                if r is not None:
                    s.utilization, s.memory_used_bytes, s.memory_total_bytes = (
                        r.utilization, r.memory_used_bytes, r.memory_total_bytes)
                view.slices.append(s)
        elif g.mode == "mps":
            for n, holder in enumerate(g.holders):
                s = SliceView(g.node, g.index, g.uuid, f"{g.uuid}#mps{n}", "mps", "", None, 1, holder)
                a = held.get(holder)
                if reading is not None and a is not None:
                    mine = [p for p in reading.processes if p.user == a.user]
                    s.utilization = min(1.0, sum(p.sm_utilization or 0.0 for p in mine))
                    s.memory_used_bytes = sum(p.memory_used_bytes or 0 for p in mine)
                view.slices.append(s)
        else:
            holder = g.holders[0] if g.holders else None
            s = SliceView(g.node, g.index, g.uuid, g.uuid, "gpu", "gpu", None, 1, holder)
            if reading is not None:
                s.utilization, s.memory_used_bytes, s.memory_total_bytes = (
                    reading.utilization, reading.memory_used_bytes, reading.memory_total_bytes)
            s.memory_total_bytes = s.memory_total_bytes or view.memory_total_bytes
            view.slices.append(s)
        for s in view.slices:
            a = held.get(s.allocation_id) if s.allocation_id else None
            if a is not None:
                s.user, s.owner_kind, s.owner = a.user, a.owner_kind, a.owner_id
                if s.kind == "mps":
                    s.profile = a.slice
                elif s.kind == "gpu":
                    s.profile = a.slice
            elif s.kind == "gpu":
                s.profile = "gpu-1"
            if s.utilization is None and s.allocation_id in hint_util:
                s.utilization = hint_util[s.allocation_id]
            note_util(s.allocation_id, s.utilization)
            slices.append(s)
        gpus.append(view)
    for aid, value in hint_util.items():
        note_util(aid, value)
    users: dict[str, UserView] = {}
    groups: dict[str, float] = {}
    allocations: dict[tuple[str, str], int] = {}
    for a in held.values():
        u = users.get(a.user)
        if u is None:
            u = users[a.user] = UserView(a.user)
        u.gpu_units += a.units
        u.servers += 1
        u.cpu += a.cpu
        u.memory_gib += a.memory_gib
        if a.units > 0:
            util = alloc_util.get(a.id)
            if util is not None:
                u.busy_units = (u.busy_units or 0.0) + util * a.units
                u.measured_units += a.units
        groups[a.accounting_group] = groups.get(a.accounting_group, 0.0) + a.units
        key = (a.slice, a.owner_kind)
        allocations[key] = allocations.get(key, 0) + 1
    for user, hours in accounting.gpu_hours.items():
        users.setdefault(user, UserView(user)).gpu_hours = hours
    for user, limits in accounting.user_limits.items():
        users.setdefault(user, UserView(user)).limits = limits
    queue: dict[str, tuple[int, float]] = {}
    for slc, _user, created in accounting.queued:
        n, oldest = queue.get(slc, (0, 0.0))
        queue[slc] = (n + 1, max(oldest, now - (created or now)))
    capacity = 0.0
    for _node, gpu in inventory.gpus():
        if gpu.mode in ("full", "mig", "mps"):
            capacity += 1.0
    servers = {"ready": 0, "pending": 0}
    for r in results:
        if r.ok and r.servers is not None:
            for s in r.servers:
                servers["ready" if s.ready else "pending"] += 1
    notes = [r.note for r in results if r.note]
    return FleetView(at=now, gpus=gpus, slices=slices, users=users, groups=groups,
                     group_limits=accounting.group_limits, queue=queue, allocations=allocations,
                     capacity_units=capacity, allocated_units=sum(a.units for a in held.values()),
                     allocation_utilization=alloc_util, collectors=list(results), servers=servers, notes=notes)

