"""The service's core area: what it is, who is asking, and its API description."""
from __future__ import annotations

from .. import scopes
from .base import APIHandler
from .contract import Area, Route
from .declare import LOGGED_IN, PUBLIC, needs_scope, operation


class RootHandler(APIHandler):
    @operation("getServiceInfo", "Service version, mode and enabled areas", response="ServiceInfo")
    @needs_scope(LOGGED_IN)
    async def get(self):
        svc = self.service
        self.write_json({"name": "astrago", "version": svc.version, "mode": svc.mode,
                         "areas": sorted(svc.enabled_areas)})


class WhoAmIHandler(APIHandler):
    @operation("whoAmI", "The caller as JupyterHub knows them, with their AstraGo scopes", response="WhoAmI")
    @needs_scope(LOGGED_IN)
    async def get(self):
        user = self.hub_user
        own = self.caller_scopes()
        self.write_json({
            "name": user["name"],
            "kind": user.get("kind", "user"),
            "admin": bool(user.get("admin", False)),
            "groups": sorted(user.get("groups", [])),
            "scopes": sorted(s for s in own if s.startswith("custom:astrago:") or s.startswith("access:services")),
            "astrago_admin": self.has_scope(scopes.ADMIN),
        })


class OpenAPIHandler(APIHandler):
    """Public, as API descriptions usually are."""

    @operation("getOpenAPI", "This document", response={"type": "object", "required": ["openapi", "paths"]},
               errors=())
    @needs_scope(PUBLIC)
    async def get(self):
        self.write_json(self.service.openapi())


class CoreArea(Area):
    name = "core"

    def routes(self) -> list[Route]:
        return [Route("api", RootHandler, trailing_slash=True), Route("api/whoami", WhoAmIHandler), Route("api/openapi.json", OpenAPIHandler)]
