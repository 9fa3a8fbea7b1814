"""The monitoring area: `/metrics` for Prometheus, JSON for pages and scripts, the dashboards.

Routes (under the service prefix):
- `metrics`: Prometheus text, for holders of `custom:astrago:metrics:read` (as JupyterHub's own
  `/hub/metrics` needs `read:metrics`);
- `api/monitor/...`: the fleet, a user's usage and notices, the reclaim policy and its state;
- `admin/monitor/...` and `me/usage`: the dashboards (monitor.pages).
"""
from __future__ import annotations

import gc
import time

from tornado import web

from .. import scopes
from ..service.base import APIHandler
from ..service.problems import Problem
from .config import MonitorConfig
from .exposition import CONTENT_TYPE
from .monitor import Monitor
from .openapi_paths import PATHS, SCHEMAS  # noqa: F401 (the area's contract)
from .reclaim import store
from .reclaim.rules import Policy
from .views import fleet_json, usage_json


def setup(service) -> None:
    if not hasattr(service, "desk"):
        raise RuntimeError("the monitor area needs the quota area (its ledger and inventory): enable both")
    config = MonitorConfig(parent=service)
    service.monitor = Monitor(service, config)
    service.monitor.load()
    from ..service.pages import PAGE_CONTEXT
    from .reclaim import store
    from .views import clock

    async def idle_notices(handler) -> dict:
        me = handler.hub_user["name"]
        return {"notices": await handler.db.run(lambda s: store.notices(s, me)), "clock": clock}

    PAGE_CONTEXT.append(idle_notices)


async def background(service) -> None:
    # Everything built at start-up (the inventory, the placer, imported modules) lives as long
    # as the process: moved out of the collector's reach, a scrape's short-lived objects no
    # longer trigger full collections over it (50+ ms pauses at 2,000 slices; bench/metrics.py).
    gc.freeze()
    try:
        await service.monitor.run()
    finally:
        service.monitor.close()


class MonitorHandler(APIHandler):
    @property
    def monitor(self) -> Monitor:
        return self.service.monitor


class MetricsHandler(MonitorHandler):
    """`GET metrics`: the Prometheus document."""

    async def get(self):
        await self.require(scopes.METRICS_READ, action="metrics.read")
        text = await self.monitor.metrics_text()
        self.set_header("Content-Type", CONTENT_TYPE)
        self.set_header("Cache-Control", "no-store")
        self.finish(text)


class FleetHandler(MonitorHandler):
    async def get(self):
        await self.require(scopes.READ, action="monitor.fleet")
        view = await self.monitor.current_view()
        self.write_json(fleet_json(view, self.monitor))


class UsageHandler(MonitorHandler):
    """A user's own usage; another user's needs the unfiltered read scope."""

    async def get(self):
        user = self.get_argument("user", None) or (self.hub_user or {}).get("name")
        await self.require(scopes.READ, user=user, action="monitor.usage")
        view = await self.monitor.current_view()
        notices = await self.db.run(lambda s: store.notices(s, user))
        self.write_json(await usage_json(self.service, view, user, notices))


class NoticesHandler(MonitorHandler):
    async def get(self):
        user = self.get_argument("user", None) or (self.hub_user or {}).get("name")
        await self.require(scopes.READ, user=user, action="monitor.notices")
        self.write_json({"user": user, "notices": await self.db.run(lambda s: store.notices(s, user))})


class ReclaimHandler(MonitorHandler):
    """The policy, and what the rules think of every watched workspace."""

    async def get(self):
        await self.require(scopes.READ, action="monitor.reclaim")
        now = time.time()
        self.write_json({
            "policy": self.monitor.policy.to_dict(), **self.monitor.policy_meta,
            "tracks": [{**_track(t), "idle_seconds": round(t.idle_for(now), 3)}
                       for t in sorted(self.monitor.tracks.values(), key=lambda t: t.allocation_id)],
        })


def _track(t) -> dict:
    return {"allocation_id": t.allocation_id, "user": t.user, "owner": t.owner_id, "slice": t.slice,
            "state": t.state, "idle_since": t.idle_since, "last_utilization": t.last_utilization,
            "warned_at": t.warned_at, "reclaim_at": t.reclaim_at, "dry_run": t.dry_run}


class ReclaimPolicyHandler(MonitorHandler):
    async def put(self):
        await self.require(scopes.FLEET_ADMIN, action="reclaim.policy")
        body = self.json_body()
        before = self.monitor.policy
        try:
            after = Policy.from_dict(body, base=before)
        except ValueError as exc:
            await self.audit("reclaim.policy", "denied", reason=str(exc), detail={"requested": body})
            raise Problem("invalid-request", f"{exc}.") from None
        await self.db.run(store.save_policy, after, self.caller_name)
        self.monitor.policy = after
        self.monitor.policy_meta = {"updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                    "updated_by": self.caller_name}
        await self.audit("reclaim.policy", "allowed", detail={"before": before.to_dict(), "after": after.to_dict()})
        self.monitor.wake()
        self.write_json({"policy": after.to_dict(), **self.monitor.policy_meta})


class RoundsHandler(MonitorHandler):
    """`POST api/monitor/rounds`: sample now and run the idle-GPU rules (instead of waiting)."""

    async def post(self):
        await self.require(scopes.FLEET_ADMIN, action="monitor.round")
        view = await self.monitor.round()
        self.write_json({"at": view.at, "round": self.monitor.rounds,
                         "collectors": [{"name": r.name, "ok": r.ok, "error": r.error}
                                        for r in self.monitor.results.values()],
                         "tracks": [_track(t) for t in self.monitor.tracks.values()]})


class MonitorStaticHandler(web.StaticFileHandler):
    """The dashboards' chart bundle (uPlot, built from npm by `make`; public: no user data)."""

    def validate_absolute_path(self, root, absolute_path):
        from pathlib import Path

        if not Path(root).is_dir():
            raise web.HTTPError(404, "the dashboards' chart bundle is not built: run `npm run build`")
        return super().validate_absolute_path(root, absolute_path)


def handlers(prefix: str) -> list:
    from .pages import STATIC_DIR, page_handlers

    api = prefix + "api/monitor/"
    return page_handlers(prefix) + [
        (prefix + "metrics", MetricsHandler),
        (prefix + "monitor/static/(.*)", MonitorStaticHandler, {"path": str(STATIC_DIR)}),
        (api + "fleet", FleetHandler),
        (api + "usage", UsageHandler),
        (api + "notices", NoticesHandler),
        (api + "reclaim", ReclaimHandler),
        (api + "reclaim/policy", ReclaimPolicyHandler),
        (api + "rounds", RoundsHandler),
    ]
