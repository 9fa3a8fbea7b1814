"""Job counts and durations for the monitor area (interfaces.jobs.JobsReader).

Durations of finished jobs form a cumulative histogram counted from the service's start
(a Prometheus counter resets with its process): each read takes only the jobs that finished
after the last one it saw, so a scrape never re-reads the whole history.
"""
from __future__ import annotations

import math
import time
from datetime import datetime, timezone

from sqlalchemy import func, select

from ..service.interfaces.jobs import JobsSnapshot
from . import states
from .model import Job

#: seconds: 1 min, 5 min, 15 min, 30 min, 1 h, 2 h, 4 h, 12 h, 1 d, 3 d
DURATION_BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0, 259200.0, math.inf)
ACTIVE_STATUSES = tuple(s for s in states.STATUSES if s in states.ACTIVE)
RECENT = 20  # finished jobs the dashboard lists


def _ts(dt: datetime | None) -> float | None:
    return None if dt is None else dt.replace(tzinfo=timezone.utc).timestamp()


class JobMetricsView:
    """The jobs area's JobsReader. `jobs_snapshot` runs on the database thread (one reader at a time)."""

    duration_buckets = DURATION_BUCKETS

    def __init__(self, since: float | None = None):
        self.since = time.time() if since is None else since
        self._watermark = datetime.fromtimestamp(self.since, timezone.utc).replace(tzinfo=None)
        self._at_watermark: set[str] = set()
        self._buckets = [0] * len(DURATION_BUCKETS)
        self._sum = 0.0
        self._count = 0

    def jobs_snapshot(self, session, now: float | None = None) -> JobsSnapshot:
        now = time.time() if now is None else now
        by_status = {s: n for s, n in session.execute(select(Job.status, func.count()).group_by(Job.status))}
        active = {(u, s): n for u, s, n in session.execute(
            select(Job.owner, Job.status, func.count()).where(Job.status.in_(ACTIVE_STATUSES))
            .group_by(Job.owner, Job.status))}
        running = [(jid, owner, slc, max(0.0, now - (_ts(started) or now))) for jid, owner, slc, started in
                   session.execute(select(Job.id, Job.owner, Job.slice, Job.started_at)
                                   .where(Job.status == states.RUNNING))]
        finished = session.execute(
            select(Job.id, Job.started_at, Job.finished_at).where(
                Job.finished_at.is_not(None), Job.finished_at >= self._watermark)
            .order_by(Job.finished_at)).all()
        recent = [{"id": j.id, "user": j.owner, "name": j.name, "status": j.status, "slice": j.slice,
                   "duration_s": (_ts(j.finished_at) - _ts(j.started_at)) if j.started_at and j.finished_at
                   else None, "finished_at": _ts(j.finished_at)}
                  for j in session.scalars(select(Job).where(Job.finished_at.is_not(None))
                                           .order_by(Job.finished_at.desc()).limit(RECENT))]
        self._count_finished(finished)
        return JobsSnapshot(by_status, active, running, list(self._buckets), self._sum, self._count, recent)

    def _count_finished(self, finished) -> None:
        """Add the durations of jobs finished since the last read (each job once, even when
        several finished in the same instant as the watermark)."""
        for jid, started, ended in finished:
            if ended == self._watermark and jid in self._at_watermark:
                continue
            if ended > self._watermark:
                self._watermark, self._at_watermark = ended, set()
            self._at_watermark.add(jid)
            if started is None:
                continue
            seconds = max(0.0, _ts(ended) - _ts(started))
            for i, bound in enumerate(DURATION_BUCKETS):
                if seconds <= bound:
                    self._buckets[i] += 1
            self._sum += seconds
            self._count += 1
