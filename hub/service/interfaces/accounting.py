"""Accounting for dashboards and metrics. Provided by the quota area; used by monitor.

One read of the ledger, the queue, the quotas and the GPU-hours, in plain values, cheap
enough to run at every monitoring round.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol, runtime_checkable


@dataclass(slots=True)
class HeldAllocation:
    id: str
    user: str
    groups: tuple
    accounting_group: str
    owner_kind: str
    owner_id: str
    slice: str
    units: float
    cpu: float
    memory_gib: float
    admitted_at: float


@dataclass
class AccountingSnapshot:
    at: float
    held: dict[str, HeldAllocation]  # admitted allocations by id
    queued: list[tuple[str, str, float]]  # (slice, user, created_at)
    gpu_hours: dict[str, float]  # user -> GPU-hours in the rolling quota period
    user_limits: dict[str, dict[str, float]]  # user -> dimension -> limit (only dimensions set)
    group_limits: dict[str, dict[str, float]]
    period_days: int = 30


@runtime_checkable
class AccountingReader(Protocol):
    def accounting(self, session, users=None) -> AccountingSnapshot:
        """The snapshot (limits of `users` too, when given: users holding nothing)."""


@runtime_checkable
class UsageReader(Protocol):
    def daily_gpu_hours(self, session, start: date, end: date, user: str | None = None) -> list[dict]:
        """GPU-hours per day (and user) between `start` and `end` inclusive."""
