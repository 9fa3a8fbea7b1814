"""The admission desk: quota check, placement and the queue, in one transaction.

It is the single writer of the allocation ledger (DESIGN.md: the service owns the
state). Every call runs on the service's database thread, so the in-memory
`Placer` and the `allocations` table change together; a failed transaction undoes
its placement. With several service processes on one MariaDB the row lock on
`admission_lock` still serialises quota checks (placement state is per process:
run one service process, as DESIGN.md says).
"""
from __future__ import annotations

import functools
import heapq
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from typing import Iterator, Mapping

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from astrago.spawners import slices
from astrago.spawners.inventory import ClusterInventory
from astrago.spawners.placement import Placer

from ..service.interfaces.admission import AdmissionError, AdmissionOutcome, AdmissionRequest, AllocationRecord
from . import fairshare
from .books import QuotaBook
from .limits import QuotaLimits, Request, Usage, check, effective_quota, queued_jobs_limit, running_jobs_limit
from .models import AdmissionLock, Allocation, Quota
from .placements import placement_to_dict

ACTIVE = ("queued", "admitted")


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _ts(dt: datetime | None) -> float | None:
    return None if dt is None else dt.replace(tzinfo=timezone.utc).timestamp()


class AdmissionDesk:
    """The AdmissionLedger of the quota area (service.interfaces.admission)."""

    inventory_note = ""  # where the inventory came from (the area sets it)

    def __init__(self, inventory: ClusterInventory, *, half_life_s: float = fairshare.DEFAULT_HALF_LIFE_S,
                 gpu_hours_period_days: int = 30):
        self.inventory = inventory
        self.half_life_s = half_life_s
        self.gpu_hours_period_days = gpu_hours_period_days
        self.placer = Placer(inventory)
        self._fit_cache: dict = {}
        self._quota_book = QuotaBook()
        #: (cores, GiB) that admitted jobs may hold together on this machine (the local executor
        #: sets it); None: no bound (Kubernetes places jobs by their requests)
        self.job_capacity: tuple[Fraction, Fraction] | None = None

    # -- start-up --------------------------------------------------------

    def restore(self, session: Session) -> list[str]:
        """Re-hold the devices of admitted allocations after a restart; returns ids that
        could not be restored (their devices are gone) — those are released."""
        lost = []
        for alloc in session.scalars(select(Allocation).where(Allocation.status == "admitted")
                                     .order_by(Allocation.admitted_at)):
            if not self.placer.restore(alloc.id, alloc.slice, alloc.placement):
                alloc.status = "released"
                alloc.released_at = _now()
                alloc.reason = "its devices are no longer in the inventory"
                lost.append(alloc.id)
        return lost

    # -- quota -----------------------------------------------------------

    def limits_for(self, session: Session, user: str, groups: list[str]) -> QuotaLimits:
        rows = session.scalars(select(Quota).where(
            ((Quota.subject_kind == "user") & (Quota.subject_name == user))
            | ((Quota.subject_kind == "group") & (Quota.subject_name.in_(groups or [""])))
            | (Quota.subject_kind == "default"))).all()
        own = next((QuotaLimits.from_dict(r.limits) for r in rows if r.subject_kind == "user"), None)
        default = next((QuotaLimits.from_dict(r.limits) for r in rows if r.subject_kind == "default"), None)
        group_limits = [QuotaLimits.from_dict(r.limits) for r in rows if r.subject_kind == "group"]
        return effective_quota(own, group_limits, default)

    def usage_of(self, session: Session, user: str, now: datetime | None = None,
                 period_days: int | None = None) -> Usage:
        now = now or _now()
        held = session.scalars(select(Allocation).where(Allocation.user == user, Allocation.status == "admitted")).all()
        units = sum((Fraction(a.units_num, a.units_den) for a in held), Fraction(0))
        counts: dict = {}
        for a in held:
            counts[a.slice] = counts.get(a.slice, 0) + 1
        period = period_days or self.gpu_hours_period_days
        since = now.timestamp() - period * 86400
        hours = Fraction(0)
        since_dt = datetime.fromtimestamp(since, timezone.utc).replace(tzinfo=None)
        for a in session.scalars(select(Allocation).where(
                Allocation.user == user, Allocation.admitted_at.is_not(None),
                (Allocation.released_at.is_(None)) | (Allocation.released_at > since_dt))):
            start = max(_ts(a.admitted_at), since)
            end = _ts(a.released_at) if a.released_at else now.replace(tzinfo=timezone.utc).timestamp()
            if end > start:
                hours += Fraction(a.units_num, a.units_den) * Fraction(end - start).limit_denominator(1000) / 3600
        return Usage(gpu_units=units, cpu=Fraction(sum(a.cpu for a in held)).limit_denominator(1000),
                     memory_gib=Fraction(sum(a.memory_gib for a in held)).limit_denominator(1000),
                     servers=len(held), gpu_hours=hours, profile_counts=counts)

    # -- slices ----------------------------------------------------------

    def quotas_changed(self) -> None:
        """Call after changing the quotas table outside `admit`."""
        self._quota_book.invalidate()

    def units_and_fit(self, slice_name: str) -> Fraction:
        """GPU units of a slice here; raises AdmissionError when invalid or never placeable.
        Cached per slice name: the inventory is fixed for the desk's life."""
        cached = self._fit_cache.get(slice_name)
        if cached is None:
            try:
                cached = self._units_and_fit(slice_name)
            except AdmissionError as exc:
                cached = exc
            if len(self._fit_cache) < 10_000:  # names come from clients: bound the cache
                self._fit_cache[slice_name] = cached
        if isinstance(cached, AdmissionError):
            raise AdmissionError(cached.kind, cached.detail, cached.extra)
        return cached

    def _units_and_fit(self, slice_name: str) -> Fraction:
        try:
            request = slices.parse_slice(slice_name)
        except slices.InvalidSlice as exc:
            raise AdmissionError("invalid-slice", str(exc)) from None
        if request.kind == "cpu":
            return Fraction(0)
        gpus = [g for n in self.inventory.nodes for g in n.gpus]
        if request.kind == "gpu":
            most = max((sum(1 for g in n.gpus if g.mode == "full") for n in self.inventory.nodes), default=0)
            if most < request.count:
                raise AdmissionError("capacity-unavailable",
                                     f"{slice_name} can never be placed here: no node has {request.count} whole "
                                     f"GPU(s) (the most on one node is {most}).")
            return Fraction(request.count)
        if request.kind == "mps":
            hosts = [g for g in gpus if g.mode == "mps" and g.mps_replicas and 100 // g.mps_replicas == request.percent]
            if not hosts:
                raise AdmissionError("capacity-unavailable",
                                     f"{slice_name} can never be placed here: no GPU is shared through MPS in "
                                     f"{request.percent}% shares.")
            return Fraction(request.percent, 100)
        hosts = [g for g in gpus if g.mode == "mig" and any(i.profile == slice_name for i in g.mig_instances)]
        if not hosts:
            raise AdmissionError("capacity-unavailable",
                                 f"{slice_name} can never be placed here: no GPU has a MIG {slice_name} instance.")
        return slices.slice_gpu_units(hosts[0].model, slice_name)

    # -- the operations ---------------------------------------------------

    def admit(self, session: Session, req: AdmissionRequest) -> AdmissionOutcome:
        session.execute(select(AdmissionLock).where(AdmissionLock.id == 1).with_for_update()).first()
        if req.client_key:
            existing = session.scalars(select(Allocation).where(Allocation.client_key == req.client_key)).first()
            if existing is not None:
                return AdmissionOutcome(self.describe(session, existing), created=False)
        units = self.units_and_fit(req.slice)
        self._quota_book.refresh(session)
        limits = self._quota_book.limits(req.user, req.groups)
        usage = self._held_now(session, req.user, with_hours=limits.gpu_hours is not None)
        request = Request(req.slice, units, Fraction(req.cpu).limit_denominator(1000),
                          Fraction(req.memory_gib).limit_denominator(1000))
        over = check(limits, usage, request)
        if over and req.wait_over_quota and not check(limits, Usage(), request):
            over_now, over = over, []  # fits the quota once what the user holds is released: wait
        else:
            over_now = []
        if over:
            first = over[0]
            if first.dimension.startswith("slice:") and first.limit == 0:
                raise AdmissionError("quota-exceeded", f"Your groups do not allow {req.slice} slices.",
                                     {"dimension": first.dimension, "exceeded": [o.to_dict() for o in over]})
            raise AdmissionError("quota-exceeded", " ".join(o.sentence() for o in over)
                                 + " Stop something you run, or ask for more quota on your My AstraGo page.",
                                 {"dimension": first.dimension, "left": first.to_dict()["left"],
                                  "exceeded": [o.to_dict() for o in over]})
        weights = {g: self._quota_book.weights[g] for g in req.groups if g in self._quota_book.weights}
        alloc = Allocation(
            id=str(uuid.uuid4()), client_key=req.client_key or str(uuid.uuid4()), owner_kind=req.owner_kind,
            owner_id=req.owner_id, user=req.user, groups=sorted(req.groups),
            accounting_group=fairshare.accounting_group(req.groups, weights), slice=req.slice,
            units_num=units.numerator, units_den=units.denominator, cpu=req.cpu, memory_gib=req.memory_gib,
            priority=req.priority, status="queued", reason="", placement={}, created_at=_now(),
        )
        session.add(alloc)
        if over_now:
            alloc.reason = "over quota: " + " ".join(o.sentence() for o in over_now)
            session.flush()
            return AdmissionOutcome(self.describe(session, alloc))
        if req.owner_kind == "job":
            bounds = self._job_bounds(session, {req.user: limits})
            why = bounds.refusal(req.user, request.cpu, request.memory_gib)
            if why:
                alloc.reason = f"waiting: {why}"
                session.flush()
                return AdmissionOutcome(self.describe(session, alloc))
        placement = self.placer.place(alloc.id, req.slice)
        try:
            if placement is not None:
                alloc.status = "admitted"
                alloc.admitted_at = _now()
                alloc.placement = placement_to_dict(placement)
            else:
                alloc.reason = f"waiting: {self.placer.last_refusal or 'no capacity'}"
            session.flush()
        except BaseException:
            self.placer.release(alloc.id)
            raise
        return AdmissionOutcome(self.describe(session, alloc))

    def release(self, session: Session, allocation_id: str, reason: str = "released") -> AdmissionOutcome:
        session.execute(select(AdmissionLock).where(AdmissionLock.id == 1).with_for_update()).first()
        alloc = session.get(Allocation, allocation_id)
        if alloc is None:
            raise AdmissionError("not-found", f"No allocation {allocation_id}.")
        if alloc.status in ACTIVE:
            was_admitted = alloc.status == "admitted"
            alloc.status = "released" if was_admitted else "cancelled"
            alloc.released_at = _now()
            alloc.reason = reason
            if was_admitted:
                self.placer.release(alloc.id)
        admitted = self.schedule(session)
        return AdmissionOutcome(self.describe(session, alloc), created=False, admitted_now=admitted)

    def schedule(self, session: Session) -> list[str]:
        """One scheduling cycle: admit queued requests that fit now, in fair-share order
        (smaller ones backfilled past a head that does not fit). Returns the admitted ids.

        The database is read once (queued rows, quotas, what users hold, past usage); the
        cycle itself is `plan_admissions`, pure and in memory, the same code the scheduler
        benchmark (bench/scheduler.py) times.
        """
        queued = session.execute(select(*_QUEUED_COLUMNS).where(Allocation.status == "queued")).all()
        if not queued:
            return []
        state = self._cycle_state(session, queued)
        jobs = self._job_bounds(session, state.limits) if any(a.owner_kind == "job" for a in queued) else None
        result = plan_admissions(state.candidates, self.placer, group_usage=state.group_usage,
                                 user_usage=state.user_usage, weights=state.weights, limits=state.limits,
                                 usage=state.usage, jobs=jobs)
        now = _now()
        if result.admitted:
            rows = {a.id: a for a in session.scalars(select(Allocation).where(
                Allocation.id.in_([i for i, _ in result.admitted])))}
            for alloc_id, placement in result.admitted:
                alloc = rows[alloc_id]
                alloc.status = "admitted"
                alloc.admitted_at = now
                alloc.placement = placement_to_dict(placement)
                alloc.reason = ""
        current = {row.id: row.reason for row in queued}
        changed = [{"aid": i, "why": why} for i, why in result.reasons.items() if current.get(i) != why]
        if changed:  # one executemany, not an ORM object per waiting request
            session.flush()
            session.execute(update(Allocation.__table__).where(Allocation.__table__.c.id == bindparam("aid"))
                            .values(reason=bindparam("why")), changed)
        session.flush()
        return [alloc_id for alloc_id, _ in result.admitted]

    # -- views -----------------------------------------------------------

    def queue(self, session: Session) -> list[Allocation]:
        """Queued requests in the order the next cycle considers them."""
        queued = session.scalars(select(Allocation).where(Allocation.status == "queued")).all()
        if not queued:
            return []
        group_usage, user_usage = self._fair_usage(session, time.time())
        by_id = {a.id: a for a in queued}
        return [by_id[c.id] for c in fair_order([_candidate(a) for a in queued], group_usage, user_usage,
                                                self._weights(session))]

    def positions(self, session: Session) -> dict[str, int]:
        """Queue position (1-based) of every queued request, computed once."""
        queued = session.execute(select(*_QUEUED_COLUMNS).where(Allocation.status == "queued")).all()
        if not queued:
            return {}
        group_usage, user_usage = self._fair_usage(session, time.time())
        order = fair_order([_candidate(a) for a in queued], group_usage, user_usage, self._weights(session))
        return {c.id: n for n, c in enumerate(order, start=1)}

    def describe(self, session: Session, alloc: "Allocation | str",
                 positions: Mapping[str, int] | None = None) -> dict | None:
        """The allocation (a row, or its id) as the API shows it; None for an unknown id."""
        if isinstance(alloc, str):
            alloc = session.get(Allocation, alloc)
            if alloc is None:
                return None
        out = {
            "id": alloc.id, "client_key": alloc.client_key, "status": alloc.status,
            "owner": {"kind": alloc.owner_kind, "id": alloc.owner_id}, "user": alloc.user, "groups": alloc.groups,
            "slice": alloc.slice, "gpu_units": float(Fraction(alloc.units_num, alloc.units_den)),
            "gpu_units_exact": f"{alloc.units_num}/{alloc.units_den}", "cpu": alloc.cpu,
            "memory_gib": alloc.memory_gib, "placement": alloc.placement, "reason": alloc.reason,
            "created_at": alloc.created_at.isoformat() + "Z",
            "admitted_at": alloc.admitted_at.isoformat() + "Z" if alloc.admitted_at else None,
            "released_at": alloc.released_at.isoformat() + "Z" if alloc.released_at else None,
        }
        if alloc.status == "queued":
            if positions is None:
                positions = self.positions(session)
            out["position"] = positions.get(alloc.id)
            out["queue_length"] = len(positions)
        return out

    # -- the rest of the AdmissionLedger interface ---------------------------

    def allocations(self, session: Session, ids) -> dict[str, AllocationRecord]:
        ids = list(ids)
        if not ids:
            return {}
        return {a.id: _record(a) for a in session.scalars(select(Allocation).where(Allocation.id.in_(ids)))}

    def held(self, session: Session) -> list[AllocationRecord]:
        return [_record(a) for a in session.scalars(select(Allocation).where(Allocation.status == "admitted")
                                                    .order_by(Allocation.admitted_at))]

    def queued_jobs_limit(self, session: Session, user: str, groups) -> int | None:
        return queued_jobs_limit(self.limits_for(session, user, list(groups)))

    def set_job_capacity(self, cpu: float, memory_gib: float) -> None:
        self.job_capacity = (Fraction(cpu).limit_denominator(1000), Fraction(memory_gib).limit_denominator(1000))

    def device_layout(self) -> list:
        return self.placer.snapshot()

    def replace_inventory(self, session: Session, inventory: ClusterInventory, *, drained=None, node_objects=None,
                          pods=None):
        from .inventory_change import replace_inventory

        return replace_inventory(session, self, inventory, drained=drained, node_objects=node_objects, pods=pods)

    def swap_placer(self, inventory: ClusterInventory, placer: Placer) -> None:
        """Place on `placer` over `inventory` from now on (what may ever be placed changes too)."""
        self.inventory = inventory
        self.placer = placer
        self._fit_cache.clear()

    # -- internals ---------------------------------------------------------

    def _job_bounds(self, session: Session, limits: Mapping[str, QuotaLimits]) -> "JobBounds":
        """What admitted jobs hold now: per user (against running_jobs) and together (against
        the machine's capacity)."""
        running: dict[str, int] = {}
        cpu, mem = Fraction(0), Fraction(0)
        for user, c, m in session.execute(select(Allocation.user, Allocation.cpu, Allocation.memory_gib)
                                          .where(Allocation.owner_kind == "job", Allocation.status == "admitted")):
            running[user] = running.get(user, 0) + 1
            cpu += _amount(c)
            mem += _amount(m)
        caps = {u: running_jobs_limit(lim) for u, lim in limits.items()}
        return JobBounds(running, caps, self.job_capacity, cpu, mem)

    def _held_now(self, session: Session, user: str, *, with_hours: bool) -> Usage:
        """What `user` holds now, read as plain columns (the admission path: no ORM objects);
        GPU-hours only when the user's quota limits them."""
        rows = session.execute(select(Allocation.units_num, Allocation.units_den, Allocation.cpu,
                                      Allocation.memory_gib, Allocation.slice)
                               .where(Allocation.user == user, Allocation.status == "admitted")).all()
        if with_hours:
            hours = self.usage_of(session, user).gpu_hours
        else:
            hours = Fraction(0)
        counts: dict = {}
        for *_, slice_name in rows:
            counts[slice_name] = counts.get(slice_name, 0) + 1
        return Usage(gpu_units=sum((Fraction(n, d) for n, d, *_ in rows), Fraction(0)),
                     cpu=Fraction(sum(r[2] for r in rows)).limit_denominator(1000),
                     memory_gib=Fraction(sum(r[3] for r in rows)).limit_denominator(1000),
                     servers=len(rows), gpu_hours=hours, profile_counts=counts)

    def _weights(self, session: Session, groups: list[str] | None = None) -> dict[str, float]:
        """Fair-share weights of groups (only `groups` when given: the per-request path)."""
        q = select(Quota.subject_name, Quota.weight).where(Quota.subject_kind == "group")
        if groups is not None:
            if not groups:
                return {}
            q = q.where(Quota.subject_name.in_(groups))
        return {name: weight for name, weight in session.execute(q)}

    def _fair_usage(self, session: Session, now: float) -> tuple[dict, dict]:
        """(group, user) usage as the fair order weighs it: decayed GPU-hours plus what is held now
        (`committed_usage`)."""
        group_usage, user_usage = self._decayed_usage(session, now)
        held_group: dict[str, float] = {}
        held_user: dict[str, float] = {}
        for user, group, num, den in session.execute(select(Allocation.user, Allocation.accounting_group,
                                                            Allocation.units_num, Allocation.units_den)
                                                     .where(Allocation.status == "admitted")):
            held_group[group] = held_group.get(group, 0.0) + num / den
            held_user[user] = held_user.get(user, 0.0) + num / den
        return committed_usage(group_usage, held_group), committed_usage(user_usage, held_user)

    def _cycle_state(self, session: Session, queued) -> "CycleState":
        """Everything a cycle needs, read in a few queries (not one per waiting request)."""
        now = time.time()
        group_usage, user_usage = self._fair_usage(session, now)
        weights = self._weights(session)
        users = {a.user for a in queued}
        quotas = session.scalars(select(Quota)).all()
        own = {r.subject_name: QuotaLimits.from_dict(r.limits) for r in quotas if r.subject_kind == "user"}
        by_group = {r.subject_name: QuotaLimits.from_dict(r.limits) for r in quotas if r.subject_kind == "group"}
        default = next((QuotaLimits.from_dict(r.limits) for r in quotas if r.subject_kind == "default"), None)
        limits: dict[str, QuotaLimits] = {}
        for a in queued:
            if a.user not in limits:
                limits[a.user] = effective_quota(own.get(a.user), [by_group[g] for g in a.groups if g in by_group],
                                                 default)
        limited = {u for u, lim in limits.items() if lim != UNLIMITED}
        usage = self._usage_many(session, limited, now) if limited else {}
        return CycleState([_candidate(a) for a in queued], group_usage, user_usage, weights, limits, usage)

    def _usage_many(self, session: Session, users: set[str], now: float) -> dict[str, Usage]:
        """`usage_of` for many users in two queries."""
        held = session.scalars(select(Allocation).where(Allocation.status == "admitted",
                                                        Allocation.user.in_(users))).all()
        since = now - self.gpu_hours_period_days * 86400
        since_dt = datetime.fromtimestamp(since, timezone.utc).replace(tzinfo=None)
        past = session.execute(select(Allocation.user, Allocation.units_num, Allocation.units_den,
                                      Allocation.admitted_at, Allocation.released_at).where(
            Allocation.user.in_(users), Allocation.admitted_at.is_not(None),
            (Allocation.released_at.is_(None)) | (Allocation.released_at > since_dt))).all()
        acc = {u: {"units": Fraction(0), "cpu": 0.0, "mem": 0.0, "n": 0, "hours": Fraction(0), "counts": {}}
               for u in users}
        for a in held:
            x = acc[a.user]
            x["units"] += Fraction(a.units_num, a.units_den)
            x["cpu"] += a.cpu
            x["mem"] += a.memory_gib
            x["n"] += 1
            x["counts"][a.slice] = x["counts"].get(a.slice, 0) + 1
        for user, num, den, start, end in past:
            s0 = max(_ts(start), since)
            e0 = _ts(end) if end else now
            if e0 > s0:
                acc[user]["hours"] += Fraction(num, den) * Fraction(e0 - s0).limit_denominator(1000) / 3600
        return {u: Usage(gpu_units=x["units"], cpu=Fraction(x["cpu"]).limit_denominator(1000),
                         memory_gib=Fraction(x["mem"]).limit_denominator(1000), servers=x["n"],
                         gpu_hours=x["hours"], profile_counts=x["counts"]) for u, x in acc.items()}

    def _decayed_usage(self, session: Session, now: float):
        intervals_user, intervals_group = [], []
        horizon = now - 8 * self.half_life_s  # older usage has decayed below 0.4%
        horizon_dt = datetime.fromtimestamp(horizon, timezone.utc).replace(tzinfo=None)
        rows = session.execute(select(Allocation.user, Allocation.accounting_group, Allocation.units_num,
                                      Allocation.units_den, Allocation.admitted_at, Allocation.released_at)
                               .where(Allocation.admitted_at.is_not(None),
                                      (Allocation.released_at.is_(None)) | (Allocation.released_at > horizon_dt))
                               ).all()
        for user, group, num, den, start, end in rows:
            end_ts = _ts(end)
            if end_ts is not None and end_ts < horizon:
                continue
            units = Fraction(num, den)
            intervals_user.append(fairshare.Interval(user, units, _ts(start), end_ts))
            intervals_group.append(fairshare.Interval(group, units, _ts(start), end_ts))
        return (fairshare.decayed_gpu_hours(intervals_group, now, self.half_life_s),
                fairshare.decayed_gpu_hours(intervals_user, now, self.half_life_s))


def _record(a: Allocation) -> AllocationRecord:
    return AllocationRecord(a.id, a.user, a.owner_kind, a.owner_id, a.slice, a.status, dict(a.placement or {}),
                            a.admitted_at, a.released_at)


def count_active(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Allocation).where(Allocation.status.in_(ACTIVE))) or 0


# --------------------------------------------------------------------------- the cycle (pure)

UNLIMITED = QuotaLimits()

#: what a cycle reads of each queued request (plain rows: loading 10,000 ORM objects costs more
#: than the cycle itself)
_QUEUED_COLUMNS = (Allocation.id, Allocation.user, Allocation.accounting_group, Allocation.created_at,
                   Allocation.priority, Allocation.slice, Allocation.units_num, Allocation.units_den,
                   Allocation.cpu, Allocation.memory_gib, Allocation.groups, Allocation.reason,
                   Allocation.owner_kind)

#: within one cycle, each admission counts against its group and user as this many hours of
#: its GPU units, so capacity freed at once is shared out rather than going to one group
ADMISSION_CHARGE_HOURS = 1.0


@dataclass(frozen=True, slots=True)
class Candidate:
    """A queued request as a scheduling cycle sees it."""

    id: str
    user: str
    group: str  # accounting group ("" when none)
    created: float
    priority: int
    slice: str
    units: Fraction
    cpu: Fraction = Fraction(0)
    memory_gib: Fraction = Fraction(0)
    kind: str = "workspace"  # workspace | job


@dataclass
class JobBounds:
    """Running jobs against their bounds: per user (`running_jobs` of the quota) and on the
    machine (the local executor's cores and memory). Updated as a cycle admits."""

    running: dict  # user -> admitted jobs
    caps: dict  # user -> running_jobs limit
    capacity: tuple | None  # (cores, GiB) all admitted jobs may hold; None: unbounded
    cpu: Fraction = Fraction(0)
    memory_gib: Fraction = Fraction(0)

    def refusal(self, user: str, cpu: Fraction, memory_gib: Fraction) -> str:
        """Why a job of `user` asking for cpu and memory cannot start now ('' : it can)."""
        from .limits import DEFAULT_RUNNING_JOBS

        n, cap = self.running.get(user, 0), self.caps.get(user, DEFAULT_RUNNING_JOBS)
        if n >= cap:
            return f"you have {n} running jobs, the limit is {cap}"
        if self.capacity is not None:
            cores, gib = self.capacity
            if self.cpu + cpu > cores and self.cpu > 0:
                return (f"the machine's {_fmt_amount(cores)} cores for jobs are taken "
                        f"({_fmt_amount(self.cpu)} held by running jobs)")
            if self.memory_gib + memory_gib > gib and self.memory_gib > 0:
                return (f"the machine's {_fmt_amount(gib)} GiB of memory for jobs is taken "
                        f"({_fmt_amount(self.memory_gib)} GiB held by running jobs)")
        return ""

    def add(self, user: str, cpu: Fraction, memory_gib: Fraction) -> None:
        self.running[user] = self.running.get(user, 0) + 1
        self.cpu += cpu
        self.memory_gib += memory_gib


def _fmt_amount(v: Fraction) -> str:
    return f"{float(v):.2f}".rstrip("0").rstrip(".")


@dataclass
class CycleState:
    candidates: list
    group_usage: dict
    user_usage: dict
    weights: dict
    limits: dict
    usage: dict


@dataclass
class CycleResult:
    admitted: list  # (candidate id, Placement), in admission order
    reasons: dict  # candidate id -> why it still waits
    considered: int = 0  # candidates looked at before the cycle could stop


def _candidate(a) -> Candidate:
    """A queued allocation (an ORM object or a `_QUEUED_COLUMNS` row) as a cycle sees it."""
    return Candidate(a.id, a.user, a.accounting_group, _ts(a.created_at), a.priority, a.slice,
                     _units(a.units_num, a.units_den), _amount(a.cpu), _amount(a.memory_gib),
                     getattr(a, "owner_kind", None) or "workspace")


@functools.lru_cache(maxsize=4096)
def _units(num: int, den: int) -> Fraction:
    return Fraction(num, den)


@functools.lru_cache(maxsize=4096)
def _amount(value: float) -> Fraction:
    return Fraction(value).limit_denominator(1000)


def iter_fair_order(candidates, group_usage: Mapping[str, float], user_usage: Mapping[str, float],
                    weights: Mapping[str, float], charge_hours: float = ADMISSION_CHARGE_HOURS,
                    charge_all: bool = True) -> Iterator[Candidate]:
    """The queue in the order it is served (pure, lazy).

    Hierarchical fair share by usage: the group furthest below its weighted share goes next,
    inside it the user with the least usage, inside a user the highest priority, then first
    come first served. A request taken charges its group and user `units x charge_hours`, so
    groups and users interleave instead of one taking everything freed at once. With
    `charge_all=False` only requests the consumer confirms (`generator.send(True)`) are charged:
    a group whose head does not fit keeps its turn. Lazy: a cycle that runs out of capacity
    stops pulling, and the rest is never ordered.
    """
    groups: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for c in candidates:
        groups[c.group][c.user].append(c)
    heap = []
    for group, users in groups.items():
        weight = weights.get(group, 1.0) or 1.0
        uheap = []
        for user, items in users.items():
            items.sort(key=_within_user)
            uheap.append((user_usage.get(user, 0.0), user, items, 0))
        heapq.heapify(uheap)
        heap.append((group_usage.get(group, 0.0) / weight, group, weight, uheap))
    heapq.heapify(heap)
    pop = heapq.heappop
    while heap:
        key, group, weight, uheap = heap[0]
        ukey, user, items, i = uheap[0]
        c = items[i]
        taken = yield c
        charge = float(c.units) * charge_hours if (charge_all or taken) else 0.0
        if i + 1 < len(items):
            heapq.heapreplace(uheap, (ukey + charge, user, items, i + 1))
        else:
            pop(uheap)
        if uheap:
            heapq.heapreplace(heap, (key + charge / weight, group, weight, uheap))
        else:
            pop(heap)


def committed_usage(decayed: Mapping[str, float], held_units: Mapping[str, float],
                    charge_hours: float = ADMISSION_CHARGE_HOURS) -> dict[str, float]:
    """Usage as the fair order sees it (pure): decayed GPU-hours so far, plus what is held now
    counted as `charge_hours` more of it, so a group that was just given much does not look
    idle until its jobs have run for a while."""
    out = dict(decayed)
    for subject, units in held_units.items():
        out[subject] = out.get(subject, 0.0) + units * charge_hours
    return out


def _within_user(c: Candidate):
    return (-c.priority, c.created, c.id)


def fair_order(candidates, group_usage, user_usage, weights,
               charge_hours: float = ADMISSION_CHARGE_HOURS) -> list[Candidate]:
    return list(iter_fair_order(candidates, group_usage, user_usage, weights, charge_hours))


class _Held:
    """What a user holds, updated as a cycle admits (exact, like `Usage`)."""

    __slots__ = ("units", "cpu", "memory_gib", "servers", "gpu_hours", "counts")

    def __init__(self, usage: Usage):
        self.units, self.cpu, self.memory_gib = usage.gpu_units, usage.cpu, usage.memory_gib
        self.servers, self.gpu_hours, self.counts = usage.servers, usage.gpu_hours, dict(usage.profile_counts)

    def usage(self) -> Usage:
        return Usage(gpu_units=self.units, cpu=self.cpu, memory_gib=self.memory_gib, servers=self.servers,
                     gpu_hours=self.gpu_hours, profile_counts=self.counts)

    def add(self, c: Candidate) -> None:
        self.units += c.units
        self.cpu += c.cpu
        self.memory_gib += c.memory_gib
        self.servers += 1
        self.counts[c.slice] = self.counts.get(c.slice, 0) + 1


def plan_admissions(candidates, placer: Placer, *, group_usage: Mapping[str, float],
                    user_usage: Mapping[str, float], weights: Mapping[str, float],
                    limits: Mapping[str, QuotaLimits], usage: Mapping[str, Usage],
                    charge_hours: float = ADMISSION_CHARGE_HOURS, jobs: JobBounds | None = None) -> CycleResult:
    """One scheduling cycle over in-memory state (pure but for `placer`, which it places on).

    Walks the fair order; a request that fits its owner's quota and the free capacity is
    placed, one that does not is passed over (backfilling: smaller requests behind a large
    head still go). Within a cycle capacity only shrinks and usage only grows, so a slice
    that could not be placed, or a (user, shape) over quota, is not tried again; once every
    slice in the queue is out of capacity the cycle stops early.
    """
    admitted: list = []
    reasons: dict[str, str] = {}
    full: dict[str, str] = {}  # slice -> why it cannot be placed this cycle
    over: dict[tuple, str] = {}  # (user, slice, cpu, memory) -> the quota sentence
    held: dict[str, _Held] = {}
    slices_waiting = {c.slice for c in candidates}
    considered = 0
    limited: dict[str, QuotaLimits | None] = {}  # user -> limits, None when unlimited
    order = iter_fair_order(candidates, group_usage, user_usage, weights, charge_hours, charge_all=False)
    c = next(order, None)
    while c is not None:
        considered += 1
        taken = False
        why = full.get(c.slice)
        if why is None:
            try:
                lim = limited[c.user]
            except KeyError:
                lim = limits.get(c.user)
                lim = limited[c.user] = None if lim is None or lim == UNLIMITED else lim
            if lim is not None:
                key = (c.user, c.slice, c.cpu, c.memory_gib)
                why = over.get(key)
                if why is None:
                    h = held.get(c.user)
                    if h is None:
                        h = held[c.user] = _Held(usage.get(c.user) or Usage())
                    exceeded = check(lim, h.usage(), Request(c.slice, c.units, c.cpu, c.memory_gib))
                    if exceeded:
                        why = over[key] = "over quota: " + " ".join(o.sentence() for o in exceeded)
            if why is None and jobs is not None and c.kind == "job":
                bound = jobs.refusal(c.user, c.cpu, c.memory_gib)
                if bound:
                    why = f"waiting: {bound}"
            if why is None:
                placement = placer.place(c.id, c.slice)
                if placement is None:
                    why = full[c.slice] = f"waiting: {placer.last_refusal or 'no capacity'}"
                else:
                    taken = True
                    admitted.append((c.id, placement))
                    if lim is not None:
                        held[c.user].add(c)
                    if jobs is not None and c.kind == "job":
                        jobs.add(c.user, c.cpu, c.memory_gib)
        if not taken:
            reasons[c.id] = why
            if len(full) == len(slices_waiting):
                break  # nothing in the queue can be placed any more this cycle
        try:
            c = order.send(taken)
        except StopIteration:
            break
    if len(full) == len(slices_waiting) and considered < len(candidates):
        done = {cid for cid, _ in admitted}
        for c in candidates:
            if c.id not in reasons and c.id not in done:
                reasons[c.id] = full[c.slice]
    return CycleResult(admitted, reasons, considered)
