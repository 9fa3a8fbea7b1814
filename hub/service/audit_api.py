"""`GET api/audit`: the audit log, for holders of custom:astrago:audit:read."""
from __future__ import annotations

from .. import scopes
from ..db import audit
from .base import APIHandler
from .problems import Problem


class AuditLogHandler(APIHandler):
    async def get(self):
        await self.require(scopes.AUDIT_READ, action="audit.read")
        try:
            limit = min(int(self.get_argument("limit", "100")), 1000)
        except ValueError:
            raise Problem("invalid-request", "limit must be a whole number.") from None
        actor = self.get_argument("actor", None)
        outcome = self.get_argument("outcome", None)
        if outcome not in (None, "allowed", "denied", "failed"):
            raise Problem("invalid-request", "outcome must be one of allowed, denied, failed.")
        entries = await self.db.run(lambda s: audit.recent(s, limit=limit, actor=actor, outcome=outcome))
        self.write_json({"entries": entries})


PATHS = {
    "/api/audit": {
        "get": {
            "summary": "Recent audit log entries (privileged actions and denials), newest first",
            "operationId": "listAuditLog",
            "parameters": [
                {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 1000}},
                {"name": "actor", "in": "query", "schema": {"type": "string"}},
                {"name": "outcome", "in": "query", "schema": {"type": "string", "enum": ["allowed", "denied", "failed"]}},
            ],
            "responses": {
                "200": {"description": "Entries"},
                "400": {"$ref": "#/components/responses/Problem"},
                "401": {"$ref": "#/components/responses/Problem"},
                "403": {"$ref": "#/components/responses/Problem"},
            },
        }
    }
}


def handlers(prefix: str) -> list:
    return [(prefix + "api/audit", AuditLogHandler)]
