"""The monitoring area's API: `/metrics` for Prometheus, JSON for pages and scripts.

- `metrics`: Prometheus text, for holders of `custom:astrago:metrics:read` (as JupyterHub's own
  `/hub/metrics` needs `read:metrics`);
- `api/monitor/...`: the fleet, a user's usage and notices, the reclaim policy and its state, a round now.
"""
from __future__ import annotations

import time

from tornado import web

from .. import scopes
from ..service.base import APIHandler
from ..service.declare import needs_scope, operation
from ..service.problems import Problem
from .exposition import CONTENT_TYPE
from .monitor import Monitor
from .reclaim import store
from .reclaim.rules import Policy
from .views import fleet_json, usage_json


class MonitorHandler(APIHandler):
    @property
    def monitor(self) -> Monitor:
        return self.area.monitor


class MetricsHandler(MonitorHandler):
    @operation("getMetrics", "Prometheus metrics (text format 0.0.4): GPUs, slices and who holds them, utilisation, "
               "quota use, the queue, jobs, uploads, idle-GPU reclaim, as of the last monitoring round",
               content="text/plain", response={"type": "string"})
    @needs_scope(scopes.METRICS_READ, action="metrics.read")
    async def get(self):
        await self.require(scopes.METRICS_READ, action="metrics.read")
        document = await self.monitor.metrics_document()
        self.set_header("Content-Type", CONTENT_TYPE)
        self.set_header("Cache-Control", "no-store")
        self.finish(document)


class FleetHandler(MonitorHandler):
    @operation("getMonitorFleet", "Nodes, GPUs, MIG layouts with holders and utilisation, collector status",
               response="MonitorFleet")
    @needs_scope(scopes.READ, action="monitor.fleet")
    async def get(self):
        await self.require(scopes.READ, action="monitor.fleet")
        view = await self.monitor.current_view()
        self.write_json(fleet_json(view, self.monitor))


def _user_of(handler) -> str:
    return handler.get_argument("user", None) or (handler.hub_user or {}).get("name")


class UsageHandler(MonitorHandler):
    """A user's own usage; another user's needs the unfiltered read scope."""

    @operation("getMonitorUsage", "A user's slices, GPU-hours per day and utilisation history (one's own; "
               "others' with custom:astrago:read)", response="MonitorUsage", query=[("user", "string")])
    @needs_scope(scopes.READ, action="monitor.usage")
    async def get(self):
        user = _user_of(self)
        await self.require(scopes.READ, user=user, action="monitor.usage")
        view = await self.monitor.current_view()
        notices = await self.db.run(lambda s: store.notices(s, user))
        self.write_json(await usage_json(self.monitor, view, user, notices))


class NoticesHandler(MonitorHandler):
    @operation("getReclaimNotices", "Idle-GPU warnings and stops of a user (one's own)", response="ReclaimNotices",
               query=[("user", "string")])
    @needs_scope(scopes.READ, action="monitor.notices")
    async def get(self):
        user = _user_of(self)
        await self.require(scopes.READ, user=user, action="monitor.notices")
        self.write_json({"user": user, "notices": await self.db.run(lambda s: store.notices(s, user))})


def _track(t) -> dict:
    return {"allocation_id": t.allocation_id, "user": t.user, "owner": t.owner_id, "slice": t.slice,
            "state": t.state, "idle_since": t.idle_since, "last_utilization": t.last_utilization,
            "warned_at": t.warned_at, "reclaim_at": t.reclaim_at, "dry_run": t.dry_run}


class ReclaimHandler(MonitorHandler):
    """The policy, and what the rules think of every watched workspace."""

    @operation("getReclaim", "The idle-GPU reclaim policy and every watched workspace", response="Reclaim")
    @needs_scope(scopes.READ, action="monitor.reclaim")
    async def get(self):
        await self.require(scopes.READ, action="monitor.reclaim")
        now = time.time()
        self.write_json({
            "policy": self.monitor.policy.to_dict(), **self.monitor.policy_meta,
            "tracks": [{**_track(t), "idle_seconds": round(t.idle_for(now), 3)}
                       for t in sorted(self.monitor.tracks.values(), key=lambda t: t.allocation_id)],
        })


class ReclaimPolicyHandler(MonitorHandler):
    @operation("setReclaimPolicy", "Change the idle-GPU reclaim policy (custom:astrago:fleet:admin); audited",
               body="ReclaimPolicy", response="ReclaimPolicyState", errors=(400, 401, 403))
    @needs_scope(scopes.FLEET_ADMIN, action="reclaim.policy")
    async def put(self):
        await self.require(scopes.FLEET_ADMIN, action="reclaim.policy")
        body = self.json_body()
        monitor = self.monitor
        before = monitor.policy
        try:
            after = Policy.from_dict(body, base=before)
        except ValueError as exc:
            await self.audit("reclaim.policy", "denied", reason=str(exc), detail={"requested": body})
            raise Problem("invalid-request", f"{exc}.") from None
        await self.db.run(store.save_policy, after, self.caller_name)
        monitor.policy = after
        monitor.policy_meta = {"updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "updated_by": self.caller_name}
        await self.audit("reclaim.policy", "allowed", detail={"before": before.to_dict(), "after": after.to_dict()})
        monitor.wake()
        self.write_json({"policy": after.to_dict(), **monitor.policy_meta})


class RoundsHandler(MonitorHandler):
    """`POST api/monitor/rounds`: sample now and run the idle-GPU rules (instead of waiting)."""

    @operation("runMonitorRound", "Sample the collectors and run the idle-GPU rules now "
               "(custom:astrago:fleet:admin)", response="MonitorRound")
    @needs_scope(scopes.FLEET_ADMIN, action="monitor.round")
    async def post(self):
        await self.require(scopes.FLEET_ADMIN, action="monitor.round")
        monitor = self.monitor
        view = await monitor.round()
        self.write_json({"at": view.at, "round": monitor.rounds,
                         "collectors": [{"name": r.name, "ok": r.ok, "error": r.error}
                                        for r in monitor.results.values()],
                         "tracks": [_track(t) for t in monitor.tracks.values()]})


class MonitorStaticHandler(web.StaticFileHandler):
    """The dashboards' chart bundle (uPlot, built from npm by `make`; public: no user data)."""

    def initialize(self, path: str, area=None, default_filename: str | None = None):
        super().initialize(path, default_filename)

    def validate_absolute_path(self, root, absolute_path):
        from pathlib import Path

        if not Path(root).is_dir():
            raise web.HTTPError(404, "the dashboards' chart bundle is not built: run `npm run build`")
        return super().validate_absolute_path(root, absolute_path)
