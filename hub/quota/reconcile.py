"""Keep the allocation ledger and JupyterHub's servers in agreement.

Runs at service start and then periodically: a crash (of the hub, the service or
a spawner) leaves nothing allocated to a server that is gone, and nothing running
without an allocation.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from .models import Allocation


@dataclass(frozen=True)
class ServerState:
    owner_id: str  # "<user>/<server name>"
    ready: bool
    pending: str | None


@dataclass
class Plan:
    release: list  # (allocation id, reason)
    stop: list  # owner ids of servers running without an allocation


def plan(allocations: list[dict], servers: dict[str, ServerState], now: datetime, grace: timedelta,
         started_at: datetime | None = None) -> Plan:
    """What to fix (pure). `allocations`: active workspace allocations as dicts with id, owner_id,
    status, created_at, admitted_at. With `started_at` (this service process's start), an
    allocation made before it is never "young": the spawn that asked for it belongs to the
    service's previous life, so only a server the hub still lists keeps it (the round at start)."""
    release, covered = [], set()
    for a in allocations:
        server = servers.get(a["owner_id"])
        covered.add(a["owner_id"])
        made = a["admitted_at"] or a["created_at"]
        young = now - made < grace and not (started_at is not None and made < started_at)
        if server is None and not young:
            release.append((a["id"], "its server is not running"))
        elif server is not None and a["status"] == "queued" and not server.pending and not young:
            release.append((a["id"], "its spawn is no longer waiting"))
    stop = [owner for owner, s in servers.items() if s.ready and owner not in covered]
    return Plan(release=release, stop=sorted(stop))


def active_workspace_allocations(session) -> list[dict]:
    rows = session.scalars(select(Allocation).where(Allocation.owner_kind == "workspace",
                                                    Allocation.status.in_(("queued", "admitted")))).all()
    return [{"id": a.id, "owner_id": a.owner_id, "status": a.status, "created_at": a.created_at,
             "admitted_at": a.admitted_at} for a in rows]


async def hub_servers(context) -> dict[str, ServerState] | None:
    """Every running or pending server, from JupyterHub's API (None if the hub cannot be asked)."""
    code, users = await context.hub_api("GET", "/users?state=active&limit=10000")
    if code != 200 or not isinstance(users, list):
        return None
    out = {}
    for user in users:
        for name, server in (user.get("servers") or {}).items():
            out[f"{user['name']}/{name}"] = ServerState(f"{user['name']}/{name}", bool(server.get("ready")),
                                                        server.get("pending"))
    return out


async def reconcile_once(context, ledger, grace_s: float = 120.0,
                         started_at: datetime | None = None) -> Plan | None:
    """One round: release what no server holds, stop servers that hold nothing. `context`: the
    area's (db, hub_api, log); `ledger`: the admission ledger."""
    try:
        servers = await hub_servers(context)
    except (OSError, ValueError) as exc:
        context.log.warning("reconcile: JupyterHub's API did not answer (%s); nothing changed", exc)
        return None
    if servers is None:
        context.log.warning("reconcile: JupyterHub's API did not answer; nothing changed")
        return None
    allocations = await context.db.run(active_workspace_allocations)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    todo = plan(allocations, servers, now, timedelta(seconds=grace_s), started_at=started_at)
    for allocation_id, reason in todo.release:
        outcome = await context.db.run(ledger.release, allocation_id, reason)
        await context.db.run(lambda s, a=outcome.allocation: _audit(s, "reconcile.release", a["user"],
                                                                     {"id": a["id"], "reason": reason}))
    for owner in todo.stop:
        user, _, name = owner.partition("/")
        path = f"/users/{user}/servers/{name}" if name else f"/users/{user}/server"
        code, _ = await context.hub_api("DELETE", path)
        await context.db.run(lambda s, u=user, c=code: _audit(s, "reconcile.stop_server", u,
                                                               {"owner": owner, "hub_status": c}))
    if todo.release or todo.stop:
        context.log.info("reconcile: released %d allocation(s), stopped %d server(s)", len(todo.release),
                         len(todo.stop))
    return todo


async def reconcile_at_start(context, ledger, started_at: datetime, *, grace_s: float = 120.0,
                             timeout_s: float = 60.0, retry_s: float = 0.5) -> Plan | None:
    """The first round, before the service admits anything: allocations of servers that are not
    running (their releases failed while the service was down, e.g. the hub stops the service
    before users' servers) are released, so nothing dead stays held or charged. Retries while the
    hub's API is not up yet; gives up (admissions go on, the periodic rounds catch up) after
    `timeout_s`."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        todo = await reconcile_once(context, ledger, grace_s=grace_s, started_at=started_at)
        if todo is not None or time.monotonic() >= deadline:
            return todo
        await asyncio.sleep(retry_s)


def _audit(session, action, target, detail):
    from ..db import audit

    audit.record(session, actor="astrago-service", actor_kind="service", action=action, outcome="allowed",
                 target=target, detail=detail)
