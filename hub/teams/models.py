"""Tables of the teams area: which hub groups are teams, and the dataset versions."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db.models import Base, utcnow


class Team(Base):
    """A JupyterHub group an admin marked as a team."""

    __tablename__ = "teams"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)  # the hub group
    admins: Mapped[list] = mapped_column(JSON, default=list)  # hub users who manage the team
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    synced_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Dataset(Base):
    """One immutable version of a dataset; a deleted version keeps its row so its number is never reused."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("scope", "name", "version", name="uq_datasets_scope_name_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(128), index=True)  # team-<team> | user-<user>
    team: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    owner: Mapped[str] = mapped_column(String(255))  # the creator (the owner of a personal dataset)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))  # creating | ready | deleted | failed
    path: Mapped[str] = mapped_column(String(1024))
    source_path: Mapped[str] = mapped_column(String(1024))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    file_count: Mapped[int] = mapped_column(Integer, default=0)
    manifest_sha256: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    deleted_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
