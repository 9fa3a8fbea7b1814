"""The view as JSON (API) and as page data (dashboards); no I/O except `usage_json`'s ledger read."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from .snapshot import FleetView, GpuView, SliceView

MIB = 1024 * 1024


def slice_json(s: SliceView, idle: float | None = None) -> dict:
    return {"slice": s.slice_id, "kind": s.kind, "profile": s.profile, "node": s.node, "gpu": s.gpu_index,
            "start": s.start, "size": s.size, "allocation_id": s.allocation_id, "user": s.user,
            "owner_kind": s.owner_kind, "owner": s.owner, "utilization": s.utilization,
            "memory_used_bytes": s.memory_used_bytes, "memory_total_bytes": s.memory_total_bytes,
            "idle_seconds": idle}


def _memory_slots(model: str) -> int:
    from astrago.spawners import slices

    m = slices.GPU_MODELS.get(model)
    return getattr(m, "memory_slices", 8) or 8


def gpu_json(g: GpuView, idle: dict) -> dict:
    return {"node": g.node, "index": g.index, "uuid": g.uuid, "model": g.model, "mode": g.mode, "up": g.up,
            "slots": _memory_slots(g.model),
            "utilization": g.utilization, "memory_used_bytes": g.memory_used_bytes,
            "memory_total_bytes": g.memory_total_bytes,
            "processes": [{"pid": p.pid, "user": p.user, "memory_used_bytes": p.memory_used_bytes,
                           "sm_utilization": p.sm_utilization} for p in g.processes],
            "slices": [slice_json(s, idle.get(s.allocation_id)) for s in g.slices]}


def collectors_json(monitor) -> list[dict]:
    return [{"name": r.name, "ok": r.ok, "error": r.error, "at": r.at or None, "duration_s": round(r.duration_s, 4),
             "last_success": monitor.last_success.get(r.name), "note": r.note} for r in monitor.results.values()]


def fleet_json(view: FleetView, monitor) -> dict:
    idle = monitor.idle_seconds(view.at)
    return {
        "at": view.at, "capacity_gpu_units": view.capacity_units, "allocated_gpu_units": view.allocated_units,
        "collectors": collectors_json(monitor), "notes": view.notes,
        "nodes": sorted({g.node for g in view.gpus}),
        "gpus": [gpu_json(g, idle) for g in view.gpus],
        "queue": {k: {"waiting": n, "oldest_wait_seconds": w} for k, (n, w) in view.queue.items()},
        "servers": view.servers,
    }


def user_rows(view: FleetView, monitor) -> list[dict]:
    """One row per user for the users dashboard, most GPU-hours first."""
    now = view.at
    idle_by_user: dict[str, list] = {}
    for aid, t in monitor.tracks.items():
        if t.state != "exempt" and t.idle_since is not None and t.idle_for(now) > 0:
            idle_by_user.setdefault(t.user, []).append(t)
    rows = []
    for u in view.users.values():
        idle = idle_by_user.get(u.name, [])
        share = None if not u.measured_units else (u.busy_units or 0.0) / u.measured_units
        quota_pct = max((100.0 * {"gpu_units": u.gpu_units, "cpu": u.cpu, "memory_gib": u.memory_gib,
                                  "servers": u.servers, "gpu_hours": u.gpu_hours}[d] / lim
                         for d, lim in u.limits.items() if lim), default=None)
        rows.append({"user": u.name, "gpu_units": round(u.gpu_units, 4), "servers": u.servers,
                     "gpu_hours": round(u.gpu_hours, 3), "busy": share, "idle_allocations": len(idle),
                     "longest_idle_s": max((t.idle_for(now) for t in idle), default=0.0),
                     "warned": sum(1 for t in idle if t.state == "warned" and not t.dry_run),
                     "quota_pct": quota_pct})
    rows.sort(key=lambda r: (-r["gpu_hours"], r["user"]))
    return rows


async def usage_json(monitor, view: FleetView, user: str, notices: list[dict]) -> dict:
    """A user's slices now, their GPU-hours per day (14 days) and their utilisation history."""
    idle = monitor.idle_seconds(view.at)
    mine = [slice_json(s, idle.get(s.allocation_id)) for s in view.slices if s.user == user]
    end = datetime.now(timezone.utc).date()
    start = end - timedelta(days=13)
    usage = monitor.usage  # UsageReader (the quota area); none: no GPU-hours to show
    rows = await monitor.db.run(lambda s: usage.daily_gpu_hours(s, start, end, user=user)) if usage else []
    days = [(start + timedelta(days=i)).isoformat() for i in range(14)]
    per_day = {d: 0.0 for d in days}
    for r in rows:
        per_day[r["day"]] = per_day.get(r["day"], 0.0) + r["gpu_hours"]
    u = view.users.get(user)
    history = monitor.history.get(f"user:{user}:units", f"user:{user}:busy")
    return {
        "user": user, "at": view.at,
        "gpu_units": u.gpu_units if u else 0.0, "gpu_hours_period": u.gpu_hours if u else 0.0,
        "busy_gpu_units": u.busy_units if u else None, "limits": u.limits if u else {},
        "slices": mine, "notices": notices,
        "daily_gpu_hours": {"days": days, "gpu_hours": [round(per_day[d], 4) for d in days]},
        "history": {"t": history["t"], "gpu_units": history[f"user:{user}:units"],
                    "busy_gpu_units": history[f"user:{user}:busy"]},
    }


def ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def clock(ts: float | None) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
