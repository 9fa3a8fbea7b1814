"""Tables of the monitoring area: its settings (the reclaim policy) and the idle-GPU tracks.

A track is what the reclaim rules remember about one allocation; kept in the database so a
service restart keeps idle clocks and warnings (a short restart is within the rules'
`max_gap_seconds`). Tracks of warned and reclaimed workspaces are the users' notices.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, String
from sqlalchemy.orm import Mapped, mapped_column

from ..db.models import Base, utcnow


class MonitorSetting(Base):
    __tablename__ = "monitor_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str] = mapped_column(String(255), default="")


class IdleTrack(Base):
    __tablename__ = "idle_tracks"

    allocation_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user: Mapped[str] = mapped_column(String(255), index=True)
    owner_id: Mapped[str] = mapped_column(String(255))
    slice: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), index=True)  # watching | warned | reclaimed | exempt
    idle_since: Mapped[float | None] = mapped_column(Float, nullable=True)  # unix seconds
    last_reading_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_utilization: Mapped[float | None] = mapped_column(Float, nullable=True)
    warned_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    reclaim_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    acted_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True, index=True)  # False: allocation gone (history)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
