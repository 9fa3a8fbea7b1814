"""The dashboards: fleet, users, queue, jobs, uploads and idle GPUs in the admin panel, and
"My usage" for every user. Server-rendered; time series drawn in the browser by uPlot (bundled
from npm into hub/static/monitor, served by the service — no CDN)."""
from __future__ import annotations

from pathlib import Path

from .. import scopes
from ..service.contract import Route
from ..service.interfaces import JobsReader
from ..service.pages import PageHandler
from .exposition import sample_values
from .reclaim import store
from .views import ago, clock, collectors_json, fleet_json, usage_json, user_rows

STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "monitor"

TABS = [("fleet", "Fleet"), ("users", "Users"), ("queue", "Queue"), ("jobs", "Jobs"), ("uploads", "Uploads"),
        ("reclaim", "Idle GPUs")]
UPLOAD_COUNTERS = [
    ("astrago_upload_bytes_received_total", "Bytes received", "bytes"),
    ("astrago_uploads_started_total", "Uploads started", "count"),
    ("astrago_uploads_finished_total", "Finished", "count"),
    ("astrago_uploads_failed_total", "Failed", "count"),
    ("astrago_uploads_expired_total", "Expired unfinished", "count"),
    ("astrago_uploads_terminated_total", "Deleted by owner or admin", "count"),
    ("astrago_upload_checksum_mismatches_total", "Checksum mismatches", "count"),
    ("astrago_upload_active_writes", "Being written now", "count"),
]


def _bytes(n) -> str:
    if n is None:
        return "-"
    n = float(n)
    for unit, size in (("TiB", 1024 ** 4), ("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def _short(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"


class MonitorPage(PageHandler):
    section = "fleet"

    @property
    def monitor(self):
        return self.area.monitor

    def skip(self) -> bool:
        return getattr(self, "_finished_early", False)

    async def page(self, template: str, **context):
        me = self.hub_user["name"]
        notices = await self.db.run(lambda s: store.notices(s, me))
        self.render_page(template, active="monitor/fleet" if self.section != "me" else "me", tab=self.section,
                         tabs=TABS, notices=notices, static=self.service.prefix + "monitor/static/",
                         ago=ago, clock=clock, fmt_bytes=_bytes, pct=_pct, **context)


class AdminMonitorPage(MonitorPage):
    async def get(self):
        if self.skip() or not await self.page_requires(scopes.READ):
            return
        await self.show()


class FleetPage(AdminMonitorPage):
    section = "fleet"

    async def show(self):
        view = await self.monitor.current_view()
        fleet = fleet_json(view, self.monitor)
        nodes: dict[str, list] = {}
        for g in fleet["gpus"]:
            nodes.setdefault(g["node"], []).append(g)
        keys = [f"gpu:{g['uuid']}" for g in fleet["gpus"]]
        device_collectors = [c for c in fleet["collectors"] if c["name"] != "hub"]
        await self.page("monitor_fleet.html", fleet=fleet, nodes=nodes,
                        device_collectors=device_collectors,
                        series=self.monitor.history.get("fleet:busy", "fleet:allocated", "fleet:capacity", *keys),
                        inventory_note=getattr(self.monitor.ledger, "inventory_note", ""))


class UsersPage(AdminMonitorPage):
    section = "users"

    async def show(self):
        view = await self.monitor.current_view()
        rows = user_rows(view, self.monitor)
        top = sorted(view.users.values(), key=lambda u: -u.gpu_units)[:6]
        keys = [f"user:{u.name}:units" for u in top if u.gpu_units > 0]
        await self.page("monitor_users.html", rows=rows, top=[k.split(":")[1] for k in keys],
                        series=self.monitor.history.get(*keys), keys=keys, period_days=30)


class QueuePage(AdminMonitorPage):
    section = "queue"

    async def show(self):
        view = await self.monitor.current_view()
        queue = sorted(view.queue.items(), key=lambda kv: -kv[1][0])
        await self.page("monitor_queue.html", queue=queue, waiting=sum(n for _, (n, _w) in queue),
                        series=self.monitor.history.get("fleet:queue", "fleet:allocated"))


class JobsPage(AdminMonitorPage):
    section = "jobs"

    async def show(self):
        await self.monitor.current_view()
        jobs = self.monitor.jobs_snapshot
        bounds = getattr(self.monitor.context.want(JobsReader), "duration_buckets", ())
        buckets = []
        if jobs is not None:
            previous, previous_bound = 0, 0.0
            for bound, count in zip(bounds, jobs.duration_buckets):
                label = f">{_short(previous_bound)}" if bound == float("inf") else f"≤{_short(bound)}"
                previous_bound = bound
                buckets.append((label, count - previous))
                previous = count
        await self.page("monitor_jobs.html", jobs=jobs, unavailable=self.monitor.jobs_unavailable, buckets=buckets,
                        series=self.monitor.history.get("jobs:running", "jobs:queued"))


class UploadsPage(AdminMonitorPage):
    section = "uploads"

    async def show(self):
        values, error = {}, ""
        sources = self.monitor.sources()
        try:
            values = sample_values(sources, [name for name, _label, _kind in UPLOAD_COUNTERS])
        except Exception as exc:  # a failing source: its panel says so
            error = f"The uploads area's metrics cannot be read: {exc}"
        if not sources:
            error = "The uploads area is not installed in this service."
        series = self.monitor.history.get("uploads:bytes", "uploads:active")
        rate = [None]
        t, b = series["t"], series["uploads:bytes"]
        for i in range(1, len(t)):
            rate.append(None if b[i] is None or b[i - 1] is None or t[i] <= t[i - 1]
                        else max(0.0, (b[i] - b[i - 1]) / (t[i] - t[i - 1])))
        series["uploads:rate"] = rate[:len(t)]
        await self.page("monitor_uploads.html", counters=UPLOAD_COUNTERS, values=values, error=error, series=series)


class ReclaimPage(AdminMonitorPage):
    section = "reclaim"

    async def show(self):
        view = await self.monitor.current_view()
        tracks = sorted(self.monitor.tracks.values(), key=lambda t: (-t.idle_for(view.at), t.user))
        recent = []
        if self.has_scope(scopes.AUDIT_READ):
            from sqlalchemy import select

            from ..db.models import AuditEntry

            def fetch(session):
                rows = session.scalars(select(AuditEntry).where(AuditEntry.action.like("reclaim.%"))
                                       .order_by(AuditEntry.id.desc()).limit(30)).all()
                return [{"at": r.at.isoformat(timespec="seconds") + "Z", "action": r.action, "target": r.target,
                         "outcome": r.outcome, "reason": r.reason, "actor": r.actor} for r in rows]

            recent = await self.db.run(fetch)
        await self.page("monitor_reclaim.html", policy=self.monitor.policy, meta=self.monitor.policy_meta,
                        tracks=tracks, now=view.at, utilisation=view.allocation_utilization,
                        can_edit=self.has_scope(scopes.FLEET_ADMIN), can_audit=self.has_scope(scopes.AUDIT_READ),
                        recent=recent)


class MyUsagePage(MonitorPage):
    """Every user's own usage; an admin may look at someone's with ?user=."""

    section = "me"

    async def get(self):
        if self.skip():
            return
        me = self.hub_user["name"]
        user = self.get_argument("user", None) or me
        if not await self.page_requires(scopes.READ, user=user):
            return
        view = await self.monitor.current_view()
        notices = await self.db.run(lambda s: store.notices(s, user))
        data = await usage_json(self.monitor, view, user, notices)
        await self.page("monitor_me.html", data=data, who=user, own=user == me,
                        collectors=collectors_json(self.monitor))


def page_routes() -> list[Route]:
    return [Route("admin/monitor", FleetPage, trailing_slash=True), Route("admin/monitor/fleet", FleetPage),
            Route("admin/monitor/users", UsersPage), Route("admin/monitor/queue", QueuePage),
            Route("admin/monitor/jobs", JobsPage), Route("admin/monitor/uploads", UploadsPage),
            Route("admin/monitor/reclaim", ReclaimPage), Route("me/usage", MyUsagePage)]
