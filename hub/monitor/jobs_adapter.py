"""Job metrics, read from the jobs area's table when that area is there (optional).

The jobs area is written beside this one; monitoring must not depend on it. If its model
cannot be imported or its table does not exist, `gather` answers None and the jobs panel
says the area is not installed; nothing else changes.

Durations of finished jobs form a cumulative histogram counted from the service's start
(a Prometheus counter resets with its process): each scrape reads only jobs that finished
after the last one it saw.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

log = logging.getLogger("astrago.monitor")

#: seconds: 1 min, 5 min, 15 min, 30 min, 1 h, 2 h, 4 h, 12 h, 1 d, 3 d
DURATION_BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0, 259200.0, math.inf)
ACTIVE_STATUSES = ("CREATED", "QUEUED", "RUNNING")


@dataclass
class JobsSnapshot:
    by_status: dict[str, int]
    active_by_user: dict[tuple[str, str], int]  # (user, status) -> count, active statuses only
    running: list[tuple[str, str, str, float]]  # (job id, user, slice, seconds running)
    duration_buckets: list[int]  # cumulative counts per DURATION_BUCKETS
    duration_sum: float
    duration_count: int
    recent: list[dict] = field(default_factory=list)  # the last finished jobs, for the dashboard


def _job_model():
    try:
        from ..jobs.model import Job
    except Exception:  # the area is absent or half-written
        return None
    return Job


def _ts(dt):
    return None if dt is None else dt.replace(tzinfo=timezone.utc).timestamp()


class JobMetrics:
    def __init__(self, since: float | None = None):
        self.since = time.time() if since is None else since
        self._watermark = datetime.fromtimestamp(self.since, timezone.utc).replace(tzinfo=None)
        self._at_watermark: set[str] = set()
        self._buckets = [0] * len(DURATION_BUCKETS)
        self._sum = 0.0
        self._count = 0
        self.unavailable = ""

    def gather(self, session, now: float | None = None) -> JobsSnapshot | None:
        Job = _job_model()
        if Job is None:
            self.unavailable = "The jobs area is not installed in this service."
            return None
        from sqlalchemy import func, select
        from sqlalchemy.exc import SQLAlchemyError

        now = time.time() if now is None else now
        try:
            by_status = {s: n for s, n in session.execute(select(Job.status, func.count()).group_by(Job.status))}
            active = {(u, s): n for u, s, n in session.execute(
                select(Job.owner, Job.status, func.count()).where(Job.status.in_(ACTIVE_STATUSES))
                .group_by(Job.owner, Job.status))}
            running = [(jid, owner, slc, max(0.0, now - (_ts(started) or now))) for jid, owner, slc, started in
                       session.execute(select(Job.id, Job.owner, Job.slice, Job.started_at)
                                       .where(Job.status == "RUNNING"))]
            finished = session.execute(
                select(Job.id, Job.started_at, Job.finished_at).where(
                    Job.finished_at.is_not(None), Job.finished_at >= self._watermark)
                .order_by(Job.finished_at)).all()
            recent = [{"id": j.id, "user": j.owner, "name": j.name, "status": j.status, "slice": j.slice,
                       "duration_s": (_ts(j.finished_at) - _ts(j.started_at)) if j.started_at and j.finished_at
                       else None, "finished_at": _ts(j.finished_at)}
                      for j in session.scalars(select(Job).where(Job.finished_at.is_not(None))
                                               .order_by(Job.finished_at.desc()).limit(20))]
        except SQLAlchemyError as exc:  # the table is not migrated yet
            self.unavailable = f"The jobs table cannot be read: {type(exc).__name__}."
            session.rollback()
            return None
        self.unavailable = ""
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
        return JobsSnapshot(by_status, active, running, list(self._buckets), self._sum, self._count, recent)
