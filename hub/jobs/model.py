"""Tables of the jobs area: jobs, their status history, and job definitions (recurring runs).

Shaped after jupyter-scheduler's Job and JobDefinition. Every status change is a row in
`job_events` written in the same transaction as the change, so a restart finds each job
exactly where it was.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db.models import Base, utcnow


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("owner", "client_key", name="uq_jobs_owner_client_key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    groups: Mapped[list] = mapped_column(JSON, default=list)
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))  # notebook | script | command
    input: Mapped[str] = mapped_column(Text, default="")
    code: Mapped[str] = mapped_column(Text, default="")
    command: Mapped[str] = mapped_column(Text, default="")
    parameters: Mapped[dict] = mapped_column(JSON, default=dict)
    workdir: Mapped[str] = mapped_column(Text, default="")
    slice: Mapped[str] = mapped_column(String(64))
    cpu: Mapped[float] = mapped_column(Float)
    memory_gib: Mapped[float] = mapped_column(Float)
    image: Mapped[str] = mapped_column(String(512), default="")
    env: Mapped[dict] = mapped_column(JSON, default=dict)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    max_runtime_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    # {} or {"framework": "pytorch", "workers": N}: a PyTorchJob of 1 master + N workers (cluster mode)
    distributed: Mapped[dict | None] = mapped_column(JSON, default=dict, nullable=True)
    retries: Mapped[int] = mapped_column(Integer, default=0)  # budget of re-runs after a failure
    attempt: Mapped[int] = mapped_column(Integer, default=0)  # runs started so far
    status: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    executor: Mapped[str] = mapped_column(String(16), default="local")  # local | kubernetes
    process: Mapped[dict] = mapped_column(JSON, default=dict)  # pid + start ticks, or namespace + name
    allocation_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    log_path: Mapped[str] = mapped_column(Text, default="")
    outputs: Mapped[list] = mapped_column(JSON, default=list)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    definition_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    # the submitter's idempotency key: a retried submission with the same key returns this job
    client_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    queued_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class JobEvent(Base):
    """One status change of a job (its history, and what status events replay)."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(Text, default="")


class JobDefinition(Base):
    """A recurring job: a cron schedule in a time zone, a job spec, and an active flag."""

    __tablename__ = "job_definitions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    groups: Mapped[list] = mapped_column(JSON, default=list)
    name: Mapped[str] = mapped_column(String(255))
    schedule: Mapped[str] = mapped_column(String(255))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    spec: Mapped[dict] = mapped_column(JSON, default=dict)
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True, index=True)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
