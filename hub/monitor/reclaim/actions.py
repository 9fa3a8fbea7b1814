"""Carrying out what the idle-GPU rules decided: audit, notify, stop the server, release.

Every action lands in the audit log (actor `astrago-service`): `reclaim.warn`,
`reclaim.withdraw`, `reclaim.stop`, and in dry run `reclaim.would_warn`,
`reclaim.would_withdraw`, `reclaim.would_stop` (nothing else happens then). Real warnings,
withdrawals and stops are also sent to the notification hook (the policy's webhook URL, and
`MonitorConfig.notify_hook` when set).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import datetime, timezone
from urllib.parse import quote

from ...db import audit
from ...service.interfaces import AdmissionError
from .rules import Action

log = logging.getLogger("astrago.monitor.reclaim")

EVENTS = {"warn": "astrago.reclaim.warning", "withdraw": "astrago.reclaim.withdrawn", "reclaim": "astrago.reclaim.stopped"}
AUDIT = {"warn": "reclaim.warn", "withdraw": "reclaim.withdraw", "reclaim": "reclaim.stop"}


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def message(action: Action) -> str:
    """The sentence a user reads (banner, chat message)."""
    server = action.owner_id.partition("/")[2] or "default"
    where = f"Your server '{server}' on {action.slice}"
    if action.kind == "warn":
        return (f"{where} has been idle ({action.reason}). It will be stopped and its GPU released at "
                f"{_iso(action.reclaim_at)} unless it gets busy again.")
    if action.kind == "withdraw":
        return f"{where} is no longer going to be stopped: {action.reason}."
    return f"{where} was stopped and its GPU released: {action.reason}."


def event(action: Action) -> dict:
    return {"event": EVENTS[action.kind], "user": action.user, "server": action.owner_id.partition("/")[2],
            "slice": action.slice, "allocation_id": action.allocation_id, "idle_since": _iso(action.idle_since),
            "reclaim_at": _iso(action.reclaim_at), "at": _iso(action.at), "reason": action.reason,
            "message": message(action)}


def _detail(action: Action, **extra) -> dict:
    return {"allocation_id": action.allocation_id, "owner": action.owner_id, "slice": action.slice,
            "idle_since": _iso(action.idle_since), "reclaim_at": _iso(action.reclaim_at), "dry_run": action.dry_run,
            **extra}


async def carry_out(context, ledger, actions: list[Action], *, webhook_url: str = "", hook=None,
                    stop_wait_s: float = 60.0) -> list[dict]:
    """Do `actions` in order; returns what happened (for the caller's log and tests).

    `context`: the area's AreaContext (database, hub API); `ledger`: the AdmissionLedger that
    releases a stopped workspace's allocation (None: the spawner's stop releases it)."""
    done = []
    for action in actions:
        if action.dry_run:
            name = "reclaim.would_" + {"reclaim": "stop"}.get(action.kind, action.kind)
            await _audit(context, name, "allowed", action, f"dry run: {action.reason}")
            done.append({"action": name, "allocation_id": action.allocation_id})
            continue
        outcome, extra = "allowed", {}
        if action.kind == "reclaim":
            outcome, extra = await _stop_and_release(context, ledger, action, stop_wait_s)
        await _audit(context, AUDIT[action.kind], outcome, action, action.reason, **extra)
        if outcome == "allowed":
            await notify(context, action, webhook_url=webhook_url, hook=hook)
        done.append({"action": AUDIT[action.kind], "allocation_id": action.allocation_id, "outcome": outcome, **extra})
    return done


async def _stop_and_release(context, ledger, action: Action, wait_s: float) -> tuple[str, dict]:
    user, _, name = action.owner_id.partition("/")
    path = f"/users/{quote(user)}/servers/{quote(name)}" if name else f"/users/{quote(user)}/server"
    code, body = await context.hub_api("DELETE", path)
    if code not in (202, 204, 400, 404):  # 400/404: not running any more (stopped meanwhile)
        log.warning("reclaim: JupyterHub refused to stop %s: %s %s", action.owner_id, code, body)
        return "failed", {"hub_status": code}
    if code == 202:  # stopping: wait until it has, so the device is free before it is handed out again
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            c, model = await context.hub_api("GET", f"/users/{quote(user)}")
            if c != 200 or name not in (model or {}).get("servers", {}):
                break
            await asyncio.sleep(0.5)
    reason = f"reclaimed: idle GPU ({action.reason})"
    if ledger is not None:
        try:
            await context.db.run(ledger.release, action.allocation_id, reason)
        except AdmissionError:
            pass  # released meanwhile (the spawner releases on stop)
    return "allowed", {"hub_status": code}


async def _audit(context, name: str, outcome: str, action: Action, reason: str, **extra) -> None:
    await context.db.run(lambda s: audit.record(
        s, actor="astrago-service", actor_kind="service", action=name, outcome=outcome, target=action.user,
        reason=reason, detail=_detail(action, **extra)))


async def notify(context, action: Action, *, webhook_url: str = "", hook=None) -> None:
    """The notification hook: a JSON POST to the webhook, and the configured callable."""
    payload = event(action)
    if hook is not None:
        try:
            result = hook(payload)
            if asyncio.iscoroutine(result):
                await result
        except Exception as exc:  # a broken hook must not stop the reclaim
            log.warning("reclaim: notify hook failed: %s", exc)
    if not webhook_url:
        return
    from tornado.httpclient import AsyncHTTPClient, HTTPRequest

    try:
        resp = await AsyncHTTPClient().fetch(HTTPRequest(
            webhook_url, method="POST", body=json.dumps(payload), request_timeout=10,
            headers={"Content-Type": "application/json", "User-Agent": "AstraGo"}), raise_error=False)
        ok, status = 200 <= resp.code < 300, resp.code
    except Exception as exc:
        ok, status = False, str(exc)
    if not ok:
        log.warning("reclaim: webhook %s answered %s", webhook_url, status)
        await _audit(context, "reclaim.notify", "failed", action, f"webhook answered {status}")
