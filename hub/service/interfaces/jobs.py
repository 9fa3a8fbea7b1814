"""Job counts and durations for metrics and dashboards. Provided by the jobs area; used by monitor."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass
class JobsSnapshot:
    by_status: dict[str, int]
    active_by_user: dict[tuple[str, str], int]  # (user, status) -> count, active statuses only
    running: list[tuple[str, str, str, float]]  # (job id, user, slice, seconds running)
    duration_buckets: list[int]  # cumulative counts per bucket bound of `JobsReader.duration_buckets`
    duration_sum: float
    duration_count: int
    recent: list[dict] = field(default_factory=list)  # the last finished jobs, for the dashboard


@runtime_checkable
class JobsReader(Protocol):
    #: upper bounds (seconds) of the duration histogram's buckets, the last one math.inf
    duration_buckets: tuple[float, ...]

    def jobs_snapshot(self, session, now: float | None = None) -> JobsSnapshot:
        """Counts now, and the durations of jobs finished since the service started."""
