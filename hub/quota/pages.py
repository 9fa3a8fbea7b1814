"""Quota pages: "My AstraGo" for every user, and the admin panel's quota sections."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from markupsafe import Markup
from sqlalchemy import select

from .. import scopes
from ..service.pages import PageHandler
from . import usage as usage_report
from .charts import daily_bars
from .limits import remaining
from .models import Allocation, Quota, QuotaRequest


def _today():
    return datetime.now(timezone.utc).date()


class QuotaPage(PageHandler):
    @property
    def desk(self):
        return self.area.desk

    def skip(self) -> bool:
        return getattr(self, "_finished_early", False)


class MyPage(QuotaPage):
    """The user's quota, what is left, their allocations, queue positions, usage and requests."""

    async def get(self):
        if self.skip():
            return
        me = self.hub_user["name"]
        if not await self.page_requires(scopes.READ, user=me):  # as GET api/users/<me>/quota
            return
        groups = sorted(self.hub_user.get("groups", []))
        end = _today()
        start = end - timedelta(days=13)

        def fetch(session):
            limits = self.desk.limits_for(session, me, groups)
            used = self.desk.usage_of(session, me)
            mine = session.scalars(select(Allocation).where(Allocation.user == me,
                                                            Allocation.status.in_(("admitted", "queued")))).all()
            allocations = [self.desk.describe(session, a) for a in mine]
            rows = usage_report.daily_gpu_hours(session, start, end, user=me)
            requests = session.scalars(select(QuotaRequest).where(QuotaRequest.user == me)
                                       .order_by(QuotaRequest.id.desc()).limit(10)).all()
            return limits, used, allocations, rows, requests

        limits, used, allocations, rows, requests = await self.db.run(fetch)
        self.render_page("me.html", active="me", limits=limits.to_dict(), used=used, left=remaining(limits, used),
                         allocations=allocations, requests=requests, groups=groups,
                         chart=Markup(daily_bars(rows, start, end, title="Your GPU-hours per day, last 14 days")),
                         total_hours=sum(r["gpu_hours"] for r in rows))


class AdminQuotasPage(QuotaPage):
    async def get(self):
        if self.skip() or not await self.page_requires(scopes.QUOTA_ADMIN):
            return

        def fetch(session):
            return session.scalars(select(Quota).order_by(Quota.subject_kind, Quota.subject_name)).all()

        self.render_page("admin_quotas.html", active="quotas", quotas=await self.db.run(fetch))


class AdminRequestsPage(QuotaPage):
    async def get(self):
        if self.skip() or not await self.page_requires(scopes.QUOTA_ADMIN):
            return

        def fetch(session):
            return session.scalars(select(QuotaRequest).order_by(QuotaRequest.status != "pending",
                                                                 QuotaRequest.id.desc()).limit(200)).all()

        self.render_page("admin_requests.html", active="requests", requests=await self.db.run(fetch))


class AdminAllocationsPage(QuotaPage):
    async def get(self):
        if self.skip() or not await self.page_requires(scopes.READ):
            return

        def fetch(session):
            rows = session.scalars(select(Allocation).where(Allocation.status == "admitted")
                                   .order_by(Allocation.admitted_at)).all()
            return [self.desk.describe(session, a) for a in rows]

        allocations = await self.db.run(fetch)
        gpus = self.desk.device_layout()  # holders named by allocation (a gang's replicas too)
        self.render_page("admin_allocations.html", active="allocations", allocations=allocations, gpus=gpus,
                         inventory_note=self.area.inventory_note)


class AdminQueuePage(QuotaPage):
    async def get(self):
        if self.skip() or not await self.page_requires(scopes.READ):
            return
        queue = await self.db.run(self.desk.describe_queue)
        self.render_page("admin_queue.html", active="queue", queue=queue)


class AdminUsagePage(QuotaPage):
    async def get(self):
        if self.skip() or not await self.page_requires(scopes.QUOTA_ADMIN):
            return
        end = _today()
        start = end - timedelta(days=29)
        rows = await self.db.run(lambda s: usage_report.daily_gpu_hours(s, start, end))
        by_user: dict[str, float] = {}
        by_group: dict[str, float] = {}
        by_slice: dict[str, float] = {}
        for r in rows:
            by_user[r["user"]] = by_user.get(r["user"], 0) + r["gpu_hours"]
            by_group[r["group"] or "(none)"] = by_group.get(r["group"] or "(none)", 0) + r["gpu_hours"]
            by_slice[r["slice"]] = by_slice.get(r["slice"], 0) + r["gpu_hours"]
        top = lambda d: sorted(d.items(), key=lambda kv: -kv[1])[:20]  # noqa: E731
        self.render_page("admin_usage.html", active="usage", by_user=top(by_user), by_group=top(by_group),
                         by_slice=top(by_slice), start=start, end=end,
                         chart=Markup(daily_bars(rows, start, end, title="GPU-hours per day, everyone, last 30 days")))
