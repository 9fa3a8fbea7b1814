"""In-memory books the admission desk keeps beside the database, for fast decisions.

The service is the single writer of quotas and allocations, so it can hold them in
memory and check a quota without a query per dimension. `QuotaBook` re-reads the
quotas table whenever a cheap fingerprint of it changes (so edits made elsewhere,
or by another process, are still seen); `HeldBook` sums what each user holds now,
updated as the desk admits and releases and rebuilt from the database at start.
(The desk reads what users hold with one narrow query instead; `HeldBook` is kept for a
future multi-process deployment that needs to avoid even that.)
"""
from __future__ import annotations

from fractions import Fraction

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .limits import QuotaLimits, Usage, effective_quota
from .models import Allocation, Quota


class QuotaBook:
    def __init__(self):
        self._fingerprint = None
        self.own: dict[str, QuotaLimits] = {}
        self.groups: dict[str, QuotaLimits] = {}
        self.default: QuotaLimits | None = None
        self.weights: dict[str, float] = {}
        self._memo: dict[tuple, QuotaLimits] = {}

    def invalidate(self) -> None:
        """The quotas changed (the API calls this on every set, delete and approved request)."""
        self._fingerprint = None

    def refresh(self, session: Session) -> None:
        # max(id) is read from the primary key's end (O(1)): it catches rows added behind the
        # service's back; changes through the service invalidate explicitly
        fingerprint = session.execute(select(func.max(Quota.id))).scalar()
        if fingerprint == self._fingerprint and fingerprint is not None:
            return
        own, groups, default, weights = {}, {}, None, {}
        for kind, name, limits, weight in session.execute(
                select(Quota.subject_kind, Quota.subject_name, Quota.limits, Quota.weight)):
            parsed = QuotaLimits.from_dict(limits)
            if kind == "user":
                own[name] = parsed
            elif kind == "group":
                groups[name] = parsed
                weights[name] = weight
            else:
                default = parsed
        self.own, self.groups, self.default, self.weights = own, groups, default, weights
        self._memo = {}
        self._fingerprint = fingerprint

    def limits(self, user: str, groups) -> QuotaLimits:
        key = (user, tuple(sorted(groups)))
        found = self._memo.get(key)
        if found is None:
            found = effective_quota(self.own.get(user), [self.groups[g] for g in key[1] if g in self.groups],
                                    self.default)
            if len(self._memo) > 100_000:
                self._memo.clear()
            self._memo[key] = found
        return found


class HeldBook:
    """What each user holds right now (admitted allocations)."""

    def __init__(self):
        self._by_user: dict[str, dict] = {}

    def rebuild(self, session: Session) -> None:
        self._by_user = {}
        for alloc in session.scalars(select(Allocation).where(Allocation.status == "admitted")):
            self.add(alloc)

    def _entry(self, user: str) -> dict:
        return self._by_user.setdefault(user, {"units": Fraction(0), "cpu": Fraction(0), "mem": Fraction(0),
                                               "n": 0, "counts": {}})

    def add(self, alloc: Allocation) -> None:
        self._change(alloc, +1)

    def remove(self, alloc: Allocation) -> None:
        self._change(alloc, -1)

    def _change(self, alloc: Allocation, sign: int) -> None:
        e = self._entry(alloc.user)
        e["units"] += sign * Fraction(alloc.units_num, alloc.units_den)
        e["cpu"] += sign * Fraction(alloc.cpu).limit_denominator(1000)
        e["mem"] += sign * Fraction(alloc.memory_gib).limit_denominator(1000)
        e["n"] += sign
        e["counts"][alloc.slice] = e["counts"].get(alloc.slice, 0) + sign
        if e["n"] <= 0:
            self._by_user.pop(alloc.user, None)

    def usage(self, user: str, gpu_hours: Fraction = Fraction(0)) -> Usage:
        e = self._by_user.get(user)
        if e is None:
            return Usage(gpu_hours=gpu_hours)
        return Usage(gpu_units=e["units"], cpu=e["cpu"], memory_gib=e["mem"], servers=e["n"], gpu_hours=gpu_hours,
                     profile_counts={k: v for k, v in e["counts"].items() if v})
