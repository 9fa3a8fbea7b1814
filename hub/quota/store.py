"""The allocation ledger's rows: what the desk reads at start and writes as it decides.

The only module of the desk's that speaks SQL (besides the quota book). Reads are plain
columns, not ORM objects, where many rows come back (10,000 ORM objects cost more than a
scheduling cycle); writes of many rows are one executemany.
"""
from __future__ import annotations

import functools
import uuid
from datetime import datetime, timedelta, timezone
from fractions import Fraction

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from .cycle import Candidate
from .limits import QuotaLimits, effective_quota
from .models import AdmissionLock, Allocation, Quota
from .usage_ledger import Held

ACTIVE = ("queued", "admitted")
_EPOCH = datetime(1970, 1, 1)
_SECOND = timedelta(seconds=1)


def to_ts(dt: datetime | None) -> float | None:
    """A naive UTC datetime as the ledger stores it -> unix seconds."""
    return None if dt is None else (dt - _EPOCH) / _SECOND


def from_ts(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc).replace(tzinfo=None)


@functools.lru_cache(maxsize=4096)
def units_of(num: int, den: int) -> Fraction:
    return Fraction(num, den)


@functools.lru_cache(maxsize=4096)
def amount(value: float) -> Fraction:
    """CPU cores or GiB as an exact Fraction (floats from clients, to 1/1000)."""
    return Fraction(value or 0.0).limit_denominator(1000)


def lock(session: Session) -> None:
    """Serialise quota checks and allocations (with several service processes on one MariaDB too)."""
    session.execute(select(AdmissionLock.id).where(AdmissionLock.id == 1).with_for_update()).first()


def by_client_key(session: Session, client_key: str) -> Allocation | None:
    return session.scalars(select(Allocation).where(Allocation.client_key == client_key)).first()


def new_allocation(session: Session, *, owner_kind: str, owner_id: str, user: str, groups, accounting_group: str,
                   slice_name: str, units: Fraction, cpu: float, memory_gib: float, priority: int,
                   client_key: str, at: float, replicas: int = 1) -> Allocation:
    alloc = Allocation(
        id=str(uuid.uuid4()), client_key=client_key or str(uuid.uuid4()), owner_kind=owner_kind, owner_id=owner_id,
        user=user, groups=sorted(groups), accounting_group=accounting_group, slice=slice_name,
        units_num=units.numerator, units_den=units.denominator, cpu=cpu, memory_gib=memory_gib, priority=priority,
        replicas=replicas, status="queued", reason="", placement={}, created_at=from_ts(at))
    session.add(alloc)
    return alloc


def candidate_of(a) -> Candidate:
    """A queued allocation (an ORM object or a `_QUEUED_COLUMNS` row) as a cycle sees it."""
    return Candidate(a.id, a.user, a.accounting_group, to_ts(a.created_at), a.priority, a.slice,
                     units_of(a.units_num, a.units_den), amount(a.cpu), amount(a.memory_gib),
                     a.owner_kind or "workspace", tuple(a.groups or ()), a.replicas or 1)


def held_of(a) -> Held:
    """An admitted allocation (ORM object or row) as usage sees it."""
    return Held(a.id, a.user, a.accounting_group or "", a.slice, units_of(a.units_num, a.units_den),
                amount(a.cpu), amount(a.memory_gib), a.owner_kind or "workspace", to_ts(a.admitted_at),
                a.replicas or 1)


_QUEUED_COLUMNS = (Allocation.id, Allocation.user, Allocation.accounting_group, Allocation.created_at,
                   Allocation.priority, Allocation.slice, Allocation.units_num, Allocation.units_den,
                   Allocation.cpu, Allocation.memory_gib, Allocation.groups, Allocation.reason,
                   Allocation.owner_kind, Allocation.replicas)

_HELD_COLUMNS = (Allocation.id, Allocation.user, Allocation.accounting_group, Allocation.slice, Allocation.units_num,
                 Allocation.units_den, Allocation.cpu, Allocation.memory_gib, Allocation.owner_kind,
                 Allocation.admitted_at, Allocation.replicas)


def queued(session: Session) -> list[tuple[Candidate, str]]:
    """Every queued allocation (with its reason), to rebuild the waiting queue at start."""
    return [(candidate_of(row), row.reason or "") for row in
            session.execute(select(*_QUEUED_COLUMNS).where(Allocation.status == "queued"))]


def held(session: Session) -> list[Held]:
    return [held_of(row) for row in session.execute(select(*_HELD_COLUMNS).where(Allocation.status == "admitted"))]


def released_since(session: Session, since: float) -> list[tuple]:
    """(user, group, units, start, end) of allocations released after `since` that had been admitted."""
    rows = session.execute(select(Allocation.user, Allocation.accounting_group, Allocation.units_num,
                                  Allocation.units_den, Allocation.admitted_at, Allocation.released_at)
                           .where(Allocation.admitted_at.is_not(None), Allocation.released_at.is_not(None),
                                  Allocation.released_at > from_ts(since)))
    return [(user, group or "", num / den, to_ts(start), to_ts(end)) for user, group, num, den, start, end in rows]


def mark_admitted(session: Session, admitted: list[tuple[str, dict]], at: float) -> None:
    """The cycle's admissions: status, time and placement of each row, in one executemany."""
    if not admitted:
        return
    session.flush()
    table = Allocation.__table__
    session.execute(update(table).where(table.c.id == bindparam("aid"))
                    .values(status="admitted", admitted_at=from_ts(at), placement=bindparam("where"), reason=""),
                    [{"aid": aid, "where": placement} for aid, placement in admitted])


def limits_for(session: Session, user: str, groups) -> QuotaLimits:
    """The user's effective quota read from the table (for callers off the database thread too)."""
    rows = session.scalars(select(Quota).where(
        ((Quota.subject_kind == "user") & (Quota.subject_name == user))
        | ((Quota.subject_kind == "group") & (Quota.subject_name.in_(list(groups) or [""])))
        | (Quota.subject_kind == "default"))).all()
    own = next((QuotaLimits.from_dict(r.limits) for r in rows if r.subject_kind == "user"), None)
    default = next((QuotaLimits.from_dict(r.limits) for r in rows if r.subject_kind == "default"), None)
    group_limits = [QuotaLimits.from_dict(r.limits) for r in rows if r.subject_kind == "group"]
    return effective_quota(own, group_limits, default)


def describe(alloc: Allocation) -> dict:
    """The allocation as the API shows it (without its queue position)."""
    return {
        "id": alloc.id, "client_key": alloc.client_key, "status": alloc.status,
        "owner": {"kind": alloc.owner_kind, "id": alloc.owner_id}, "user": alloc.user, "groups": alloc.groups,
        "slice": alloc.slice, "gpu_units": float(Fraction(alloc.units_num, alloc.units_den)),
        "gpu_units_exact": f"{alloc.units_num}/{alloc.units_den}", "cpu": alloc.cpu,
        "memory_gib": alloc.memory_gib, "replicas": alloc.replicas or 1, "placement": alloc.placement,
        "reason": alloc.reason,
        "created_at": alloc.created_at.isoformat() + "Z",
        "admitted_at": alloc.admitted_at.isoformat() + "Z" if alloc.admitted_at else None,
        "released_at": alloc.released_at.isoformat() + "Z" if alloc.released_at else None,
    }
