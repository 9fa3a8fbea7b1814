"""The admin panel's fleet page (`admin/fleet`): GPUs, MIG layouts, and re-cutting them."""
from __future__ import annotations

from pathlib import Path

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape

from .. import scopes
from ..service import display
from ..service.pages import PageHandler

HERE = Path(__file__).resolve().parent
TEMPLATES = Environment(loader=ChoiceLoader([FileSystemLoader(str(HERE / "templates")),
                                             FileSystemLoader(str(HERE.parent / "templates" / "astrago"))]),
                        autoescape=select_autoescape(["html"]))
display.install(TEMPLATES)


class FleetPage(PageHandler):
    async def get(self):
        if getattr(self, "_finished_early", False) or not await self.page_requires(scopes.READ):
            return
        overview = await self.db.run(lambda s: self.area.overview(self.area.holder_words(s)))
        prefix = self.service.prefix
        html = TEMPLATES.get_template("fleet.html").render(
            prefix=prefix, api=prefix + "api/", user=self.hub_user, xsrf=self.xsrf_value,
            admin_sections=self.admin_sections(), active="fleet", fleet=overview,
            can_edit=self.has_scope(scopes.FLEET_ADMIN))
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(html)
