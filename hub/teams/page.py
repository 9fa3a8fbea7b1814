"""The teams page (`teams`): each of the caller's teams with its members, storage used and datasets."""
from __future__ import annotations

from pathlib import Path

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape

from .. import scopes
from ..service import display
from ..service.pages import PageHandler
from . import names

HERE = Path(__file__).resolve().parent
TEMPLATES = Environment(loader=ChoiceLoader([FileSystemLoader(str(HERE / "templates")),
                                             FileSystemLoader(str(HERE.parent / "templates" / "astrago"))]),
                        autoescape=select_autoescape(["html"]))
display.install(TEMPLATES)


class TeamsPage(PageHandler):
    async def get(self):
        if getattr(self, "_finished_early", False) or not await self.page_requires(scopes.READ,
                                                                                   user=self.caller_name):
            return
        spaces, datasets = self.area.spaces, self.area.datasets
        admin = self.has_scope(scopes.ADMIN)
        mine = {t.name for t in await spaces.teams_of(self.caller_name)}
        shown = [t for t in await spaces.teams() if admin or t.name in mine or self.caller_name in t.admins]
        visible = await datasets.visible_to(self.caller_name, [t.name for t in shown])
        teams = []
        for t in shown:
            teams.append({"name": t.name, "admins": t.admins, "members": await spaces.hub_members(t.name) or [],
                          "member": t.name in mine, "folder": spaces.folder(t.name),
                          "posix_group": names.posix_group(t.name), "storage": await spaces.storage(t.name),
                          "datasets": [d for d in visible if d["team"] == t.name],
                          "can_manage": admin or self.caller_name in t.admins})
        personal = [d for d in visible if not d["team"]]
        prefix = self.service.prefix
        html = TEMPLATES.get_template("teams.html").render(
            prefix=prefix, api=prefix + "api/", user=self.hub_user, xsrf=self.xsrf_value,
            admin_sections=self.admin_sections(), active="teams", teams=teams, personal=personal, admin=admin,
            **getattr(self, "_shared_context", {}))
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(html)
