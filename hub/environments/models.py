"""The table of the environments area: one row per environment of the catalogue (not `base`)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..db.models import Base, utcnow


class Environment(Base):
    __tablename__ = "environments"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # python | image
    status: Mapped[str] = mapped_column(String(16))  # queued | building | ready | failed
    packages: Mapped[list] = mapped_column(JSON, default=list)  # requirements as given (kind python)
    teams: Mapped[list] = mapped_column(JSON, default=list)  # empty: everyone
    description: Mapped[str] = mapped_column(Text, default="")
    prefix: Mapped[str | None] = mapped_column(String(1024), nullable=True)  # kind python
    image: Mapped[str | None] = mapped_column(String(512), nullable=True)  # kind image, as registered
    pull_policy: Mapped[str | None] = mapped_column(String(16), nullable=True)
    step: Mapped[int] = mapped_column(Integer, default=0)  # the build step running or last run (1-based)
    steps: Mapped[int] = mapped_column(Integer, default=0)
    step_title: Mapped[str] = mapped_column(String(255), default="")
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
