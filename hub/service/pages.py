"""Pages of the AstraGo service for people (admin panel, "my AstraGo"), rendered server-side.

Browsers are identified by the service's HubOAuth cookie; without one they are
sent to the hub's login. Data changes go through the JSON API from the page's
script, with the xsrf token HubOAuth checks on cookie-authenticated writes.
"""
from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from .. import scopes
from tornado.log import app_log

from . import display
from .base import ACCESS_SCOPE, APIHandler

TEMPLATES = Environment(loader=FileSystemLoader(str(Path(__file__).resolve().parent.parent / "templates" / "astrago")),
                        autoescape=select_autoescape(["html"]))
display.install(TEMPLATES)

def admin_sections_of(handler) -> list[tuple[str, str]]:
    """The admin panel's sections this caller may see (the areas declare them: Area.admin_sections)."""
    return [(s.path, s.title) for s in handler.service.admin_sections() if handler.has_scope(s.scope)]


def nav_html(handler) -> str:
    """The one navigation bar, for a page not rendered from layout.html (e.g. the upload page)."""
    sections = admin_sections_of(handler) if handler.hub_user and handler.has_scope(ACCESS_SCOPE) else []
    prefix = handler.service.prefix
    first = sections[0][0] if sections else ""
    return TEMPLATES.get_template("nav.html").render(
        user=handler.hub_user, ag_prefix=prefix, ag_admin=bool(sections),
        ag_admin_url=prefix + "admin/" + ("" if first == "quotas" else first))


class PageHandler(APIHandler):
    """A page: log in through the hub when needed, render with the shared layout."""

    async def prepare(self):
        await super().prepare()
        if not self.hub_user and self.request.method == "GET":
            self.redirect(self.get_login_url())
            self._finished_early = True
            return
        # what every page shows beside its own content (e.g. idle-GPU notices) needs access too
        allowed = self.hub_user and self.has_scope(ACCESS_SCOPE)
        self._shared_context = await self.shared_context() if allowed else {}

    @property
    def xsrf_value(self) -> str:
        token = self.xsrf_token
        return token.decode() if isinstance(token, bytes) else token

    def admin_sections(self) -> list[tuple[str, str]]:
        return admin_sections_of(self)

    async def shared_context(self) -> dict:
        extra = {}
        for provide in self.service.page_context():
            try:
                extra.update(await provide(self))
            except Exception:  # a failing area must not take every page down
                app_log.exception("page context from %s failed", getattr(provide, "__name__", provide))
        return extra

    def render_page(self, template: str, **context):
        prefix = self.service.prefix
        html = TEMPLATES.get_template(template).render(
            prefix=prefix, api=prefix + "api/", user=self.hub_user, xsrf=self.xsrf_value,
            admin_sections=self.admin_sections(), **{**getattr(self, "_shared_context", {}), **context})
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(html)

    async def page_requires(self, scope: str, *, user: str | None = None, also: str | None = None,
                            why: str = "") -> bool:
        """True if allowed; otherwise audit, answer a 403 page and return False.

        A page shows what an API shows, so it checks what that API checks: the caller's token
        (or the service's OAuth cookie) must carry access to the service and `scope` (or `also`),
        filtered to `user` when given. A token made with no scopes sees no page. `why`: the
        refusal in plain words for the 403 page (the missing permission is shown below it)."""
        allowed = self.has_scope(ACCESS_SCOPE) and (
            self.has_scope(scope, user=user) or (also is not None and self.has_scope(also, user=user)))
        if allowed:
            return True
        needed = f"{scope}!user={user}" if user else scope
        if not self.has_scope(ACCESS_SCOPE):
            needed = ACCESS_SCOPE
        await self.audit(f"page {self.request.path}", "denied", target=user or "", reason=f"missing scope {needed}")
        self.set_status(403)
        self.render_page("forbidden.html", needed=needed, why=why)
        return False


class ServiceRootPage(PageHandler):
    async def get(self):
        if getattr(self, "_finished_early", False):
            return
        self.redirect(self.service.prefix + "me")
