"""The admin panel's Environments page (`admin/environments`): the catalogue, builds in progress, and
forms to create and delete environments."""
from __future__ import annotations

from pathlib import Path

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape

from .. import scopes
from ..service import display
from ..service.interfaces.environments import BASE
from ..service.pages import PageHandler

HERE = Path(__file__).resolve().parent
TEMPLATES = Environment(loader=ChoiceLoader([FileSystemLoader(str(HERE / "templates")),
                                             FileSystemLoader(str(HERE.parent / "templates" / "astrago"))]),
                        autoescape=select_autoescape(["html"]))
display.install(TEMPLATES)


class EnvironmentsPage(PageHandler):
    async def get(self):
        if getattr(self, "_finished_early", False) or not await self.page_requires(
                scopes.ENVIRONMENTS_ADMIN, why="The catalogue of environments is for AstraGo's administrators."):
            return
        area = self.area
        shown = [area.catalog.describe(n, area.builder.queue_position(n)) for n in [BASE] + area.catalog.names()]
        prefix = self.service.prefix
        html = TEMPLATES.get_template("environments.html").render(
            prefix=prefix, api=prefix + "api/", user=self.hub_user, xsrf=self.xsrf_value,
            admin_sections=self.admin_sections(), active="environments", environments=shown, mode=area.mode,
            building=any(e["status"] in ("queued", "building") for e in shown), root=area.root,
            base_prefix=area.base_prefix, limit=area.max_environments,
            **getattr(self, "_shared_context", {}))
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(html)
