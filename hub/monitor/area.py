"""The monitoring area on the service's contract: metrics, dashboards and idle-GPU reclaim.

It reads what other areas offer through interfaces only, each optional (`wants`): the quota
area's ledger (inventory, device layout, releases), accounting and usage; the jobs area's job
figures; every area's `MetricsSource`, registered in the service's one prometheus_client
registry beside the monitor's own families. A missing provider leaves its panel empty and
says so; nothing else changes.
"""
from __future__ import annotations

import gc

from .. import scopes
from ..service.contract import AdminSection, Area, AreaContext, Route
from ..service.interfaces import AccountingReader, AdmissionLedger, JobsReader, MetricsSource, UsageReader
from .api import (FleetHandler, MetricsHandler, MonitorStaticHandler, NoticesHandler, ReclaimHandler,
                  ReclaimPolicyHandler, RoundsHandler, UsageHandler)
from .config import MonitorConfig
from .monitor import Monitor
from .pages import STATIC_DIR, page_routes
from .reclaim import store
from .schemas import MONITOR_SCHEMAS
from .views import clock


class MonitorArea(Area):
    name = "monitor"
    wants = (AdmissionLedger, AccountingReader, UsageReader, JobsReader, MetricsSource)

    def setup(self, context: AreaContext) -> None:
        self.context = context
        self.monitor_config = MonitorConfig(parent=self)  # (`config` is traitlets' own)
        self.monitor = Monitor(context, self.monitor_config)
        self.monitor.load()

    def routes(self) -> list[Route]:
        api = "api/monitor/"
        return page_routes() + [
            Route("metrics", MetricsHandler),
            Route("monitor/static/{path}", MonitorStaticHandler, patterns={"path": ".*"},
                  kwargs={"path": str(STATIC_DIR)}),
            Route(api + "fleet", FleetHandler),
            Route(api + "usage", UsageHandler),
            Route(api + "notices", NoticesHandler),
            Route(api + "reclaim", ReclaimHandler),
            Route(api + "reclaim/policy", ReclaimPolicyHandler),
            Route(api + "rounds", RoundsHandler),
        ]

    def schemas(self) -> dict:
        return MONITOR_SCHEMAS

    def admin_sections(self) -> list[AdminSection]:
        return [AdminSection("monitor/fleet", "Monitoring", scopes.READ, order=60),
                AdminSection("monitor/reclaim", "Idle GPUs", scopes.READ, order=70)]

    def page_context(self) -> list:
        async def idle_notices(handler) -> dict:
            """The caller's idle-GPU warnings and stops: a banner on every page."""
            me = handler.hub_user["name"]
            return {"notices": await self.context.db.run(lambda s: store.notices(s, me)), "clock": clock}

        return [idle_notices]

    def background(self, context: AreaContext) -> list:
        return [self._run()]

    async def _run(self) -> None:
        # Everything built at start-up (the inventory, the placer, imported modules) lives as long
        # as the process: moved out of the collector's reach, a round's short-lived objects no
        # longer trigger full collections over it (50+ ms pauses at 2,000 slices; bench/metrics.py).
        gc.freeze()
        await self.monitor.run()

    async def stop(self) -> None:
        self.monitor.close()
