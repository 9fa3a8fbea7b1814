"""Undo of the desk's in-memory changes when their transaction rolls back.

The desk keeps the placer, the waiting queue and usage in memory beside the allocation
ledger and changes both in one transaction on the database thread. Each in-memory change
records its undo on the session; a rollback runs them newest first, a commit forgets them,
so memory never holds what the database does not.
"""
from __future__ import annotations

from typing import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session

_KEY = "astrago.quota.undo"


def record(session: Session, undo: Callable[[], None] | None) -> None:
    """Run `undo` if `session`'s transaction rolls back."""
    if undo is not None:
        session.info.setdefault(_KEY, []).append(undo)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    session.info.pop(_KEY, None)


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    undos = session.info.pop(_KEY, None)
    while undos:
        undos.pop()()
