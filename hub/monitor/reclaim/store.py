"""The reclaim policy and the idle tracks in the service database (runs on the database thread)."""
from __future__ import annotations

import time
from dataclasses import asdict

from sqlalchemy import delete, select

from ..models import IdleTrack, MonitorSetting
from .rules import RECLAIMED, WARNED, Policy, Track

POLICY_KEY = "reclaim_policy"
#: how long notices of stopped workspaces stay on their users' pages, and tracks in the table
NOTICE_DAYS = 7
_TRACK_FIELDS = ("allocation_id", "user", "owner_id", "slice", "state", "idle_since", "last_reading_at",
                 "last_utilization", "warned_at", "reclaim_at", "acted_at", "dry_run")


def load_policy(session, defaults: Policy) -> tuple[Policy, dict]:
    """(the policy, {updated_at, updated_by}); the defaults until an administrator sets one."""
    row = session.get(MonitorSetting, POLICY_KEY)
    if row is None:
        return defaults, {"updated_at": None, "updated_by": ""}
    try:
        policy = Policy.from_dict(row.value, base=defaults)
    except ValueError:
        policy = defaults  # a row from a newer or older version: fall back, the admin page shows it
    return policy, {"updated_at": row.updated_at.isoformat() + "Z", "updated_by": row.updated_by}


def save_policy(session, policy: Policy, actor: str) -> None:
    row = session.get(MonitorSetting, POLICY_KEY)
    if row is None:
        row = MonitorSetting(key=POLICY_KEY)
        session.add(row)
    row.value = policy.to_dict()
    row.updated_by = actor


def _track(row: IdleTrack) -> Track:
    return Track(**{f: getattr(row, f) for f in _TRACK_FIELDS})


def load_tracks(session) -> dict[str, Track]:
    return {r.allocation_id: _track(r) for r in session.scalars(select(IdleTrack).where(IdleTrack.active.is_(True)))}


def save_tracks(session, tracks: dict[str, Track], previous: dict[str, Track]) -> None:
    """Write what changed; tracks whose allocation is gone become inactive (kept as history)."""
    changed = [t for aid, t in tracks.items() if previous.get(aid) != t]
    gone = [aid for aid in previous if aid not in tracks]
    if changed:
        rows = {r.allocation_id: r for r in session.scalars(
            select(IdleTrack).where(IdleTrack.allocation_id.in_([t.allocation_id for t in changed])))}
        for t in changed:
            row = rows.get(t.allocation_id)
            if row is None:
                row = IdleTrack(allocation_id=t.allocation_id)
                session.add(row)
            for f, v in asdict(t).items():
                setattr(row, f, v)
            row.active = True
    if gone:
        for row in session.scalars(select(IdleTrack).where(IdleTrack.allocation_id.in_(gone))):
            row.active = False
    cutoff = time.time() - NOTICE_DAYS * 86400
    session.execute(delete(IdleTrack).where(IdleTrack.active.is_(False),
                                            (IdleTrack.acted_at.is_(None)) | (IdleTrack.acted_at < cutoff),
                                            (IdleTrack.warned_at.is_(None)) | (IdleTrack.warned_at < cutoff)))


def notices(session, user: str | None = None, now: float | None = None) -> list[dict]:
    """Real (not dry-run) warnings still pending, and stops of the last NOTICE_DAYS, newest first."""
    now = time.time() if now is None else now
    q = select(IdleTrack).where(IdleTrack.dry_run.is_(False), IdleTrack.state.in_((WARNED, RECLAIMED)))
    if user is not None:
        q = q.where(IdleTrack.user == user)
    out = []
    for r in session.scalars(q):
        if r.state == WARNED and not r.active:
            continue  # the allocation went away before the stop: nothing to tell
        if r.state == RECLAIMED and (r.acted_at or 0) < now - NOTICE_DAYS * 86400:
            continue
        out.append({"allocation_id": r.allocation_id, "user": r.user, "server": r.owner_id.partition("/")[2],
                    "owner": r.owner_id, "slice": r.slice, "state": r.state, "idle_since": r.idle_since,
                    "warned_at": r.warned_at, "reclaim_at": r.reclaim_at, "stopped_at": r.acted_at
                    if r.state == RECLAIMED else None})
    out.sort(key=lambda n: -(n["stopped_at"] or n["warned_at"] or 0))
    return out
