"""Job pages: `jobs` (your own jobs) and the admin panel's `admin/jobs` (everyone's; filter by
user and status; cancel). Data changes go through the JSON API from the page's script."""
from __future__ import annotations

from pathlib import Path

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select

from .. import scopes
from ..service.pages import PageHandler
from . import states, store
from .model import Job

HERE = Path(__file__).resolve().parent
TEMPLATES = Environment(loader=ChoiceLoader([FileSystemLoader(str(HERE / "templates")),
                                             FileSystemLoader(str(HERE.parent / "templates" / "astrago"))]),
                        autoescape=select_autoescape(["html"]))


class JobsPage(PageHandler):
    admin = False

    def render_jobs(self, **context):
        prefix = self.service.prefix
        html = TEMPLATES.get_template("jobs.html").render(
            prefix=prefix, api=prefix + "api/", user=self.hub_user, xsrf=self.xsrf_value,
            admin_sections=self.admin_sections(), statuses=states.STATUSES, **context)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(html)

    async def get(self):
        if getattr(self, "_finished_early", False):
            return
        me = self.hub_user["name"]
        if self.admin:
            if not await self.page_requires(scopes.READ):
                return
            user = self.get_argument("user", "") or None
        else:
            user = me
            if not await self.page_requires(scopes.READ, user=me, also=scopes.JOBS):  # as GET api/jobs
                return
        status = self.get_argument("status", "") or None
        if status not in (None, *states.STATUSES):
            status = None

        def fetch(session):
            q = select(Job).order_by(Job.created_at.desc()).limit(500)
            if user:
                q = q.where(Job.owner == user)
            if status:
                q = q.where(Job.status == status)
            return store.describe_jobs(session, self.service.desk, session.scalars(q).all())

        jobs = await self.db.run(fetch)
        self.render_jobs(active="jobs" if self.admin else "me", jobs=jobs, admin=self.admin, filter_user=user or "",
                         filter_status=status or "", terminal=states.TERMINAL)


class AdminJobsPage(JobsPage):
    admin = True


def page_handlers(prefix: str) -> list:
    return [(prefix + "jobs", JobsPage), (prefix + "admin/jobs", AdminJobsPage)]
