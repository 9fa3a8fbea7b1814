"""The service's root: what it is, who is asking, and its API description."""
from __future__ import annotations

from .. import scopes
from .base import APIHandler
from .openapi import ROOT_PATHS as PATHS, openapi_document


class RootHandler(APIHandler):
    """`GET api/`: version, mode and enabled areas. Needs a logged-in caller."""

    async def get(self):
        await self.require()
        svc = self.service
        self.write_json({"name": "astrago", "version": svc.version, "mode": svc.mode, "areas": sorted(svc.enabled_areas)})


class WhoAmIHandler(APIHandler):
    """`GET api/whoami`: the caller as JupyterHub knows them, with their AstraGo powers."""

    async def get(self):
        user = await self.require()
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
    """`GET api/openapi.json`: the contract. Public, as API descriptions usually are."""

    async def get(self):
        self.write_json(openapi_document(self.service.version, self.service.prefix))


def handlers(prefix: str) -> list:
    return [
        (prefix + "api/?", RootHandler),
        (prefix + "api/whoami", WhoAmIHandler),
        (prefix + "api/openapi.json", OpenAPIHandler),
    ]
