"""The ledger read for dashboards and metrics (the AccountingReader and UsageReader interfaces).

One read of the allocation ledger, the queue, the quotas and the GPU-hours, as plain values,
cheap enough for every monitoring round: Core queries over the columns needed, no ORM
objects (a scrape reads thousands of rows).
"""
from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta

from sqlalchemy import Text, select, type_coerce

from ..service.interfaces.accounting import AccountingSnapshot, HeldAllocation
from . import usage as usage_report
from .limits import QuotaLimits, effective_quota
from .models import Allocation, Quota

QUOTA_DIMENSIONS = ("gpu_units", "cpu", "memory_gib", "servers", "gpu_hours")

_EPOCH = datetime(1970, 1, 1)
_SECOND = timedelta(seconds=1)


def _ts(dt) -> float | None:
    """A naive UTC datetime as the ledger stores it -> unix seconds. The queries below read
    datetime columns as their raw value (sqlite: ISO text, parsed here by the C `fromisoformat`,
    much faster than SQLAlchemy's per-row processor); MariaDB drivers hand datetimes already."""
    if dt is None:
        return None
    if isinstance(dt, str):
        dt = datetime.fromisoformat(dt)
    return (dt - _EPOCH) / _SECOND


def _raw(column):
    return type_coerce(column, Text)


def _limits_dict(limits: QuotaLimits) -> dict[str, float]:
    out = {}
    for dim in QUOTA_DIMENSIONS:
        value = getattr(limits, dim)
        if value is not None:
            out[dim] = float(value)
    return out


class LedgerReader:
    """AccountingReader and UsageReader over the quota area's tables and the desk's usage."""

    def __init__(self, desk):
        self.desk = desk

    def accounting(self, session, users=None, *, now: float | None = None) -> AccountingSnapshot:
        return gather_accounting(session, self.desk.usage_ledger(session, now), now=now,
                                 period_days=self.desk.gpu_hours_period_days, users=users)

    def daily_gpu_hours(self, session, start: date, end: date, user: str | None = None, *,
                        group: str | None = None) -> list[dict]:
        return usage_report.daily_gpu_hours(session, start, end, user=user, group=group)


def gather_accounting(session, usage, *, now: float | None = None, period_days: int = 30,
                      users=None) -> AccountingSnapshot:
    """The ledger as the metrics need it (runs on the database thread); GPU-hours from `usage`
    (the desk's usage_ledger.UsageLedger); the limits of `users` too, when given (users holding
    nothing: their groups are not known here, so their own and the default quota)."""
    now = time.time() if now is None else now
    c = Allocation.__table__.c
    conn = session.connection()
    held: dict[str, HeldAllocation] = {}
    queued = []
    last_groups: dict[str, tuple] = {}
    parsed: dict[str, tuple] = {}  # the groups column as stored -> tuple (few distinct values: parse each once)
    for (aid, user, raw, acc_group, okind, oid, slc, num, den, cpu, mem, status, created, admitted) in conn.execute(
            select(c.id, c.user, type_coerce(c.groups, Text), c.accounting_group, c.owner_kind, c.owner_id, c.slice,
                   c.units_num, c.units_den, c.cpu, c.memory_gib, c.status, _raw(c.created_at), _raw(c.admitted_at))
            .where(c.status.in_(("admitted", "queued")))).all():
        if status == "queued":
            queued.append((slc, user, _ts(created)))
            continue
        groups = parsed.get(raw)
        if groups is None:
            groups = parsed[raw] = tuple(json.loads(raw) or ()) if raw else ()
        held[aid] = HeldAllocation(aid, user, groups, acc_group or "", okind, oid, slc, num / den,
                                   cpu or 0.0, mem or 0.0, _ts(admitted) or now)
        last_groups[user] = groups
    hours = usage.all_gpu_hours(now)
    quotas = session.scalars(select(Quota)).all()
    own = {q.subject_name: QuotaLimits.from_dict(q.limits) for q in quotas if q.subject_kind == "user"}
    group_quota = {q.subject_name: QuotaLimits.from_dict(q.limits) for q in quotas if q.subject_kind == "group"}
    default = next((QuotaLimits.from_dict(q.limits) for q in quotas if q.subject_kind == "default"), None)
    user_limits = {}
    if quotas:
        by_groups: dict[tuple, dict] = {}  # most users share their groups' quota: work it out once per set
        for user in set(last_groups) | set(hours) | set(users or ()):
            user_groups = last_groups.get(user, ())
            mine = own.get(user)
            if mine is None:
                limits = by_groups.get(user_groups)
                if limits is None:
                    limits = by_groups[user_groups] = _limits_dict(effective_quota(
                        None, [group_quota[g] for g in user_groups if g in group_quota], default))
            else:
                limits = _limits_dict(effective_quota(
                    mine, [group_quota[g] for g in user_groups if g in group_quota], default))
            if limits:
                user_limits[user] = limits
    group_limits = {name: d for name, q in group_quota.items() if (d := _limits_dict(q))}
    return AccountingSnapshot(now, held, queued, hours, user_limits, group_limits, period_days)
