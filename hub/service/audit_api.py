"""`GET api/audit`: the audit log, for holders of custom:astrago:audit:read."""
from __future__ import annotations

from .. import scopes
from ..db import audit
from .base import APIHandler
from .contract import Area, Route
from .declare import needs_scope, operation
from .problems import Problem

AUDIT_SCHEMAS = {
    "AuditEntry": {
        "type": "object",
        "required": ["id", "at", "actor", "action", "outcome"],
        "properties": {
            "id": {"type": "integer"},
            "at": {"type": "string"},
            "actor": {"type": "string"},
            "actor_kind": {"type": "string"},
            "action": {"type": "string"},
            "outcome": {"type": "string", "enum": ["allowed", "denied", "failed"]},
            "target": {"type": "string"},
            "reason": {"type": "string"},
            "remote_ip": {"type": "string"},
            "detail": {"type": ["object", "null"]},
        },
    },
    "AuditLog": {
        "type": "object",
        "required": ["entries"],
        "properties": {"entries": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEntry"}}},
    },
}


class AuditLogHandler(APIHandler):
    @operation("listAuditLog", "Recent audit log entries (privileged actions and denials), newest first",
               response="AuditLog", errors=(400, 401, 403),
               query=[("limit", {"type": "integer", "minimum": 1, "maximum": 1000}), ("actor", "string"),
                      ("outcome", {"type": "string", "enum": ["allowed", "denied", "failed"]})])
    @needs_scope(scopes.AUDIT_READ, action="audit.read")
    async def get(self):
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


class AuditArea(Area):
    name = "audit"

    def routes(self) -> list[Route]:
        return [Route("api/audit", AuditLogHandler)]

    def schemas(self) -> dict:
        return AUDIT_SCHEMAS
