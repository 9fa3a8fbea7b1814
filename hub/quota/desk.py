"""The admission desk: quota check, placement and the queue, in one transaction.

It is the single writer of the allocation ledger (DESIGN.md: the service owns the
state). Every call runs on the service's database thread, so the in-memory
`Placer` and the `allocations` table change together; a failed transaction undoes
its placement. With several service processes on one MariaDB the row lock on
`admission_lock` still serialises quota checks (placement state is per process:
run one service process, as DESIGN.md says).
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from astrago.spawners import slices
from astrago.spawners.inventory import ClusterInventory
from astrago.spawners.placement import Placement, Placer

from . import fairshare
from .limits import QuotaLimits, Request, Usage, check, effective_quota
from .models import AdmissionLock, Allocation, Quota

ACTIVE = ("queued", "admitted")


@dataclass
class AdmissionRequest:
    owner_kind: str  # workspace | job
    owner_id: str  # e.g. "alice/" (user/server name) or a job id
    user: str
    groups: list[str]
    slice: str
    cpu: float = 0.0
    memory_gib: float = 0.0
    client_key: str = ""
    priority: int = 0


class AdmissionError(Exception):
    """A refusal the API turns into problem+json."""

    def __init__(self, kind: str, detail: str, extra: dict | None = None):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.extra = extra or {}


@dataclass
class Outcome:
    allocation: dict
    created: bool = True
    admitted_now: list = field(default_factory=list)  # other queued requests admitted by this change


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _ts(dt: datetime | None) -> float | None:
    return None if dt is None else dt.replace(tzinfo=timezone.utc).timestamp()


def placement_to_dict(p: Placement | None) -> dict:
    if p is None:
        return {}
    return {
        "node": p.node, "model": p.model, "gpu_uuids": list(p.gpu_uuids), "gpu_indices": list(p.gpu_indices),
        "mig_instance_uuids": list(p.mig_instance_uuids), "mps_percent": p.mps_percent,
        "mps_memory_limit_mib": p.mps_memory_limit_mib,
        "visible_devices": list(p.mig_instance_uuids or p.gpu_uuids),
    }


class AdmissionDesk:
    def __init__(self, inventory: ClusterInventory, *, half_life_s: float = fairshare.DEFAULT_HALF_LIFE_S,
                 gpu_hours_period_days: int = 30):
        self.inventory = inventory
        self.half_life_s = half_life_s
        self.gpu_hours_period_days = gpu_hours_period_days
        self.placer = Placer(inventory)

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

    def units_and_fit(self, slice_name: str) -> Fraction:
        """GPU units of a slice here; raises AdmissionError when invalid or never placeable."""
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

    def admit(self, session: Session, req: AdmissionRequest) -> Outcome:
        session.execute(select(AdmissionLock).where(AdmissionLock.id == 1).with_for_update()).first()
        if req.client_key:
            existing = session.scalars(select(Allocation).where(Allocation.client_key == req.client_key)).first()
            if existing is not None:
                return Outcome(self.describe(session, existing), created=False)
        units = self.units_and_fit(req.slice)
        limits = self.limits_for(session, req.user, req.groups)
        usage = self.usage_of(session, req.user)
        over = check(limits, usage, Request(req.slice, units, Fraction(req.cpu).limit_denominator(1000),
                                            Fraction(req.memory_gib).limit_denominator(1000)))
        if over:
            first = over[0]
            if first.dimension.startswith("slice:") and first.limit == 0:
                raise AdmissionError("quota-exceeded", f"Your groups do not allow {req.slice} slices.",
                                     {"dimension": first.dimension, "exceeded": [o.to_dict() for o in over]})
            raise AdmissionError("quota-exceeded", " ".join(o.sentence() for o in over),
                                 {"dimension": first.dimension, "left": first.to_dict()["left"],
                                  "exceeded": [o.to_dict() for o in over]})
        weights = self._weights(session)
        alloc = Allocation(
            id=str(uuid.uuid4()), client_key=req.client_key or str(uuid.uuid4()), owner_kind=req.owner_kind,
            owner_id=req.owner_id, user=req.user, groups=sorted(req.groups),
            accounting_group=fairshare.accounting_group(req.groups, weights), slice=req.slice,
            units_num=units.numerator, units_den=units.denominator, cpu=req.cpu, memory_gib=req.memory_gib,
            priority=req.priority, status="queued", reason="", placement={}, created_at=_now(),
        )
        session.add(alloc)
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
        return Outcome(self.describe(session, alloc))

    def release(self, session: Session, allocation_id: str, reason: str = "released") -> Outcome:
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
        return Outcome(self.describe(session, alloc), created=False, admitted_now=admitted)

    def schedule(self, session: Session) -> list[dict]:
        """Admit queued requests that fit now, in fair-share order (backfilling smaller ones)."""
        queued = session.scalars(select(Allocation).where(Allocation.status == "queued")).all()
        if not queued:
            return []
        now = time.time()
        group_usage, user_usage = self._decayed_usage(session, now)
        weights = self._weights(session)
        order = fairshare.fair_order(
            [fairshare.Waiting(a.id, a.user, a.accounting_group, _ts(a.created_at), a.priority) for a in queued],
            group_usage, user_usage, weights)
        by_id = {a.id: a for a in queued}
        admitted = []
        for waiting in order:
            alloc = by_id[waiting.id]
            limits = self.limits_for(session, alloc.user, alloc.groups)
            units = Fraction(alloc.units_num, alloc.units_den)
            if check(limits, self.usage_of(session, alloc.user), Request(alloc.slice, units,
                                                                          Fraction(alloc.cpu).limit_denominator(1000),
                                                                          Fraction(alloc.memory_gib).limit_denominator(1000))):
                continue  # became over quota while waiting (e.g. the quota was lowered): stays queued
            placement = self.placer.place(alloc.id, alloc.slice)
            if placement is None:
                continue
            alloc.status = "admitted"
            alloc.admitted_at = _now()
            alloc.placement = placement_to_dict(placement)
            alloc.reason = ""
            session.flush()
            admitted.append(alloc.id)
        return admitted

    # -- views -----------------------------------------------------------

    def queue(self, session: Session) -> list[Allocation]:
        queued = session.scalars(select(Allocation).where(Allocation.status == "queued")).all()
        group_usage, user_usage = self._decayed_usage(session, time.time())
        order = fairshare.fair_order(
            [fairshare.Waiting(a.id, a.user, a.accounting_group, _ts(a.created_at), a.priority) for a in queued],
            group_usage, user_usage, self._weights(session))
        by_id = {a.id: a for a in queued}
        return [by_id[w.id] for w in order]

    def describe(self, session: Session, alloc: Allocation) -> dict:
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
            q = self.queue(session)
            ids = [a.id for a in q]
            out["position"] = ids.index(alloc.id) + 1 if alloc.id in ids else None
            out["queue_length"] = len(ids)
        return out

    # -- internals ---------------------------------------------------------

    def _weights(self, session: Session) -> dict[str, float]:
        return {r.subject_name: r.weight for r in session.scalars(select(Quota).where(Quota.subject_kind == "group"))}

    def _decayed_usage(self, session: Session, now: float):
        intervals_user, intervals_group = [], []
        horizon = now - 8 * self.half_life_s  # older usage has decayed below 0.4%
        rows = session.execute(select(Allocation.user, Allocation.accounting_group, Allocation.units_num,
                                      Allocation.units_den, Allocation.admitted_at, Allocation.released_at)
                               .where(Allocation.admitted_at.is_not(None))).all()
        for user, group, num, den, start, end in rows:
            end_ts = _ts(end)
            if end_ts is not None and end_ts < horizon:
                continue
            units = Fraction(num, den)
            intervals_user.append(fairshare.Interval(user, units, _ts(start), end_ts))
            intervals_group.append(fairshare.Interval(group, units, _ts(start), end_ts))
        return (fairshare.decayed_gpu_hours(intervals_group, now, self.half_life_s),
                fairshare.decayed_gpu_hours(intervals_user, now, self.half_life_s))


def count_active(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Allocation).where(Allocation.status.in_(ACTIVE))) or 0
