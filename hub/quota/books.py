"""In-memory books the admission desk keeps beside the database, for fast decisions.

The service is the single writer of quotas and allocations, so it can hold them in
memory and check a quota without a query per dimension. `QuotaBook` re-reads the
quotas table whenever a cheap fingerprint of it changes (so edits made elsewhere,
or by another process, are still seen); what users hold is the desk's usage ledger
(usage_ledger.py).
"""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .limits import QuotaLimits, effective_quota
from .models import Quota


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
