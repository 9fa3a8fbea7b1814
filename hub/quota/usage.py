"""Usage accounting: GPU-hours allocated per user, group and slice per day."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from fractions import Fraction

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Allocation
from .usage_ledger import gpu_hours


def split_by_day(start: datetime, end: datetime) -> list[tuple[date, float]]:
    """Seconds of [start, end) falling on each UTC day (pure)."""
    out = []
    cursor = start
    while cursor < end:
        next_midnight = datetime.combine(cursor.date() + timedelta(days=1), time())
        stop = min(end, next_midnight)
        out.append((cursor.date(), (stop - cursor).total_seconds()))
        cursor = stop
    return out


def daily_gpu_hours(session: Session, start: date, end: date, *, user: str | None = None,
                    group: str | None = None, now: datetime | None = None) -> list[dict]:
    """Rows {day, user, group, slice, gpu_hours} for days in [start, end], sorted."""
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    window_start = datetime.combine(start, time())
    window_end = min(datetime.combine(end + timedelta(days=1), time()), now)
    q = select(Allocation).where(Allocation.admitted_at.is_not(None), Allocation.admitted_at < window_end,
                                 (Allocation.released_at.is_(None)) | (Allocation.released_at > window_start))
    if user:
        q = q.where(Allocation.user == user)
    if group:
        q = q.where(Allocation.accounting_group == group)
    totals: dict[tuple, float] = {}
    for a in session.scalars(q):
        units = Fraction(a.units_num, a.units_den)
        if units == 0:
            continue
        s = max(a.admitted_at, window_start)
        e = min(a.released_at or now, window_end)
        for day, seconds in split_by_day(s, e):
            key = (day.isoformat(), a.user, a.accounting_group, a.slice)
            totals[key] = totals.get(key, 0.0) + gpu_hours(float(units), 0.0, seconds)
    return [{"day": k[0], "user": k[1], "group": k[2], "slice": k[3], "gpu_hours": round(v, 6)}
            for k, v in sorted(totals.items())]
