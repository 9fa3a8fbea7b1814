"""Writing and reading the audit log."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import AuditEntry


def record(session: Session, *, actor: str, actor_kind: str, action: str, outcome: str,
           target: str = "", reason: str = "", remote_ip: str = "", detail: dict | None = None) -> AuditEntry:
    entry = AuditEntry(actor=actor, actor_kind=actor_kind, action=action, outcome=outcome,
                       target=target, reason=reason, remote_ip=remote_ip, detail=detail or {})
    session.add(entry)
    return entry


def recent(session: Session, *, limit: int = 100, actor: str | None = None, outcome: str | None = None) -> list[dict]:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if outcome:
        query = query.where(AuditEntry.outcome == outcome)
    return [
        {
            "id": e.id, "at": e.at.isoformat() + "Z", "actor": e.actor, "actor_kind": e.actor_kind,
            "action": e.action, "target": e.target, "outcome": e.outcome, "reason": e.reason,
            "remote_ip": e.remote_ip, "detail": e.detail,
        }
        for e in session.scalars(query)
    ]
