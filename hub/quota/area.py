"""The quota area: who may use how much, and who waits in which order.

It owns the allocation ledger (the admission desk) and provides it to the other areas as
`AdmissionLedger` (jobs admit through it, fleet moves it onto a new inventory, monitor reads
its device layout), with `StorageLimits` (uploads), `AccountingReader` and `UsageReader`
(monitor). Its API: admissions, allocations, the queue, quotas, usage, quota requests; its
pages: "My AstraGo" and the admin panel's quota sections.
"""
from __future__ import annotations

import asyncio
import re
from datetime import datetime, timezone

from traitlets import Float, Integer, default

from .. import scopes
from ..service.contract import AdminSection, Area, AreaContext, Route
from ..service.interfaces.accounting import AccountingReader, UsageReader
from ..service.interfaces.admission import AdmissionLedger
from ..service.interfaces.storage import StorageLimits
from ..service.interfaces.teams import TeamStorageLimits
from ..service.pages import ServiceRootPage
from ..service.problems import Problem
from . import admissions_api as admissions, pages, quotas_api as quotas
from .accounting import LedgerReader
from .desk import AdmissionDesk
from .inventory_source import load_inventory
from .schemas import QUOTA_SCHEMAS
from .storage_limit import QuotaStorageLimits

_ALLOCATION_ID = "[0-9a-f-]{36}"


class _PrefixRoute(Route):
    """The service's root: the prefix itself, with or without its final slash."""

    def regex(self, prefix: str) -> str:
        return re.escape(prefix) + "?"


class QuotaArea(Area):
    name = "quota"
    provides = (AdmissionLedger, StorageLimits, TeamStorageLimits, AccountingReader, UsageReader)

    fair_share_half_life_hours = Float(config=True, help="Half-life of past usage in the fair-share queue order "
                                       "(hours). Default: AstraGoService.fair_share_half_life_hours (7 days).")

    @default("fair_share_half_life_hours")
    def _default_half_life(self):
        return float(getattr(self.parent, "fair_share_half_life_hours", 7 * 24.0))

    gpu_hours_period_days = Integer(30, config=True, help="The rolling period (days) of the gpu_hours quota "
                                    "dimension where a quota does not set gpu_hours_period_days.")

    ledger_ready_timeout = Float(60.0, config=True, help="Seconds an admission waits for the reconciliation "
                                 "at start before it is answered 503 (try again).")

    def setup(self, context: AreaContext) -> None:
        """Build the desk over this deployment's inventory, restore the ledger, provide it."""
        self.context = context
        inventory, self.inventory_note = load_inventory(context.settings)
        self.desk = AdmissionDesk(inventory, half_life_s=self.fair_share_half_life_hours * 3600,
                                  gpu_hours_period_days=self.gpu_hours_period_days)
        self.desk.inventory_note = self.inventory_note
        self.reader = LedgerReader(self.desk)
        self.storage = QuotaStorageLimits(context.db, context.hub_user, self.desk)
        self.started_at = datetime.now(timezone.utc).replace(tzinfo=None)
        self._ready = asyncio.Event()  # set once the round at start has run (see background)
        lost = context.db.run_sync(self.desk.restore)
        if lost:
            context.log.warning("released %d allocation(s) whose devices are gone: %s", len(lost), ", ".join(lost))
        context.provide(AdmissionLedger, self.desk)
        context.provide(StorageLimits, self.storage)
        context.provide(TeamStorageLimits, self.storage)
        context.provide(AccountingReader, self.reader)
        context.provide(UsageReader, self.reader)

    async def ledger_ready(self) -> None:
        """Wait for the round at start (nothing from before is still held); 503 if it takes too long."""
        if self._ready.is_set():
            return
        try:
            await asyncio.wait_for(self._ready.wait(), self.ledger_ready_timeout)
        except asyncio.TimeoutError:
            raise Problem("unavailable", "AstraGo is still checking what was allocated before it restarted; "
                          "try again in a moment.") from None

    def background(self, context: AreaContext) -> list:
        return [self._reconcile_forever(context)]

    async def _reconcile_forever(self, context: AreaContext) -> None:
        """Reconcile allocations with JupyterHub's servers now and every `reconcile_interval`."""
        from .reconcile import reconcile_at_start, reconcile_once

        settings = context.settings
        self.storage.loop = asyncio.get_running_loop()  # storage limits ask the hub through it
        try:  # before the first admission: what the service's previous life left held is released
            todo = await reconcile_at_start(context, self.desk, self.started_at, grace_s=settings.reconcile_grace)
            if todo is None:
                context.log.warning("reconcile at start: JupyterHub's API did not answer; admitting anyway")
        except Exception:
            context.log.exception("reconcile at start failed")
        finally:
            self._ready.set()
        while True:
            await asyncio.sleep(settings.reconcile_interval)
            try:
                await reconcile_once(context, self.desk, grace_s=settings.reconcile_grace)
            except Exception:  # a failing round must not end the loop
                context.log.exception("reconcile failed")

    def routes(self) -> list[Route]:
        return [
            Route("api/admissions", admissions.AdmissionsHandler),
            Route("api/admissions/{allocation_id}", admissions.AdmissionHandler,
                  patterns={"allocation_id": _ALLOCATION_ID}),
            Route("api/allocations", admissions.AllocationsHandler),
            Route("api/queue", admissions.QueueHandler),
            Route("api/quotas", quotas.QuotasHandler),
            Route("api/quotas/{kind}/{name}", quotas.QuotaHandlerOne, patterns={"kind": "user|group|default"}),
            Route("api/users/{name}/quota", quotas.UserQuotaHandler),
            Route("api/users/{name}/offers", quotas.OffersHandler),
            Route("api/usage", quotas.UsageHandler),
            Route("api/quota-requests", quotas.QuotaRequestsHandler),
            Route("api/quota-requests/{request_id}/decision", quotas.QuotaDecisionHandler,
                  patterns={"request_id": r"\d+"}),
            _PrefixRoute("", ServiceRootPage),
            Route("me", pages.MyPage),
            Route("admin", pages.AdminQuotasPage, trailing_slash=True),
            Route("admin/quotas", pages.AdminQuotasPage),
            Route("admin/requests", pages.AdminRequestsPage),
            Route("admin/allocations", pages.AdminAllocationsPage),
            Route("admin/queue", pages.AdminQueuePage),
            Route("admin/usage", pages.AdminUsagePage),
        ]

    def schemas(self) -> dict:
        return QUOTA_SCHEMAS

    def admin_sections(self) -> list[AdminSection]:
        return [AdminSection("quotas", "Quotas", scopes.QUOTA_ADMIN, order=10),
                AdminSection("requests", "Quota requests", scopes.QUOTA_ADMIN, order=20),
                AdminSection("allocations", "Allocations", scopes.READ, order=30),
                AdminSection("queue", "Queue", scopes.READ, order=40),
                AdminSection("usage", "Usage", scopes.QUOTA_ADMIN, order=50)]
