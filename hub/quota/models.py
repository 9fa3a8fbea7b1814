"""Tables of the quota area: quotas, the allocation ledger, quota change requests."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db.models import Base, utcnow


class Quota(Base):
    """Limits of one subject: a user, a group, or the default ("default", "*")."""

    __tablename__ = "quotas"
    __table_args__ = (UniqueConstraint("subject_kind", "subject_name", name="uq_quota_subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject_kind: Mapped[str] = mapped_column(String(16))  # user | group | default
    subject_name: Mapped[str] = mapped_column(String(255))
    limits: Mapped[dict] = mapped_column(JSON, default=dict)
    weight: Mapped[float] = mapped_column(Float, default=1.0)  # fair-share weight (groups)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str] = mapped_column(String(255), default="")


class Allocation(Base):
    """One admission: queued, then admitted (holding a placement), then released."""

    __tablename__ = "allocations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    client_key: Mapped[str] = mapped_column(String(255), unique=True)
    owner_kind: Mapped[str] = mapped_column(String(16))  # workspace | job
    owner_id: Mapped[str] = mapped_column(String(255), index=True)
    user: Mapped[str] = mapped_column(String(255), index=True)
    groups: Mapped[list] = mapped_column(JSON, default=list)
    accounting_group: Mapped[str] = mapped_column(String(255), default="")
    slice: Mapped[str] = mapped_column(String(64))
    units_num: Mapped[int] = mapped_column(Integer)  # GPU units as an exact fraction
    units_den: Mapped[int] = mapped_column(Integer)
    cpu: Mapped[float] = mapped_column(Float, default=0.0)
    memory_gib: Mapped[float] = mapped_column(Float, default=0.0)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    # a gang: this many replicas, each on its own `slice`, admitted all or none; units, cpu and
    # memory are their sum, and `placement["replicas"]` lists each replica's devices
    replicas: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    status: Mapped[str] = mapped_column(String(16), index=True)  # queued | admitted | released | cancelled
    reason: Mapped[str] = mapped_column(Text, default="")
    placement: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    admitted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    released_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class QuotaRequest(Base):
    """A user's request for more quota, decided by an admin."""

    __tablename__ = "quota_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user: Mapped[str] = mapped_column(String(255), index=True)
    requested: Mapped[dict] = mapped_column(JSON, default=dict)
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | approved | denied
    decided_by: Mapped[str] = mapped_column(String(255), default="")
    decision_note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class AdmissionLock(Base):
    """One row, locked FOR UPDATE by every admission: quota check and allocation are one
    serialised transaction even with several service processes on one MariaDB."""

    __tablename__ = "admission_lock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
