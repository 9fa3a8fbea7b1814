"""OpenAPI description of the quota area."""

from ..service.openapi import operation as _op


PATHS = {
    "/api/admissions": {"post": {
        **_op("createAdmission", "Ask to run a workspace or job on a slice: admitted (201) with a placement, "
              "queued (202) with a position, or refused (quota-exceeded, invalid-slice, capacity-unavailable)",
              ok="201", errors=(400, 401, 403, 409, 422), body="#/components/schemas/AdmissionRequest"),
        "x-also-returns": {"202": "queued"},
    }},
    "/api/admissions/{allocation_id}": {
        "get": _op("getAdmission", "An admission's status and queue position", errors=(401, 403, 404),
                   params=[("allocation_id", "path")]),
        "delete": _op("releaseAdmission", "Release an allocation (or leave the queue)", errors=(401, 403, 404),
                      params=[("allocation_id", "path"), ("reason", "query")]),
    },
    "/api/allocations": {"get": _op("listAllocations", "Live allocations and queued requests",
                                    params=[("user", "query"), ("status", "query")])},
    "/api/queue": {"get": _op("getQueue", "The queue in fair-share order (one's own entries unless admin)")},
    "/api/quotas": {"get": _op("listQuotas", "All quotas (quota admins)")},
    "/api/quotas/{kind}/{name}": {
        "put": _op("setQuota", "Set a user's, group's or the default quota", errors=(400, 401, 403),
                   params=[("kind", "path"), ("name", "path")], body="#/components/schemas/QuotaBody"),
        "delete": _op("deleteQuota", "Remove a quota", ok="204", errors=(401, 403, 404),
                      params=[("kind", "path"), ("name", "path")]),
    },
    "/api/users/{name}/quota": {"get": _op("getUserQuota", "A user's effective quota, usage and what is left",
                                           params=[("name", "path"), ("group", "query")])},
    "/api/users/{name}/offers": {"get": _op("getUserOffers", "Slices a user may choose, their cost and availability",
                                            params=[("name", "path"), ("group", "query")])},
    "/api/usage": {"get": _op("getUsage", "GPU-hours per user, group and slice per day (JSON or ?format=csv)",
                              errors=(400, 401, 403),
                              params=[("user", "query"), ("group", "query"), ("from", "query"), ("to", "query"),
                                      ("format", "query")])},
    "/api/quota-requests": {
        "get": _op("listQuotaRequests", "Quota change requests (one's own unless quota admin)",
                   params=[("status", "query")]),
        "post": _op("createQuotaRequest", "Ask for more quota, with a reason", ok="201", errors=(400, 401, 403),
                    body="#/components/schemas/QuotaRequestBody"),
    },
    "/api/quota-requests/{request_id}/decision": {"post": _op(
        "decideQuotaRequest", "Approve or deny a quota request (quota admins)", errors=(400, 401, 403, 404, 409),
        params=[("request_id", "path")])},
}

_LIMITS = {
    "type": "object",
    "properties": {
        "gpu_units": {"type": "number"}, "cpu": {"type": "number"}, "memory_gib": {"type": "number"},
        "storage_gib": {"type": "number"}, "servers": {"type": "integer"}, "gpu_hours": {"type": "number"},
        "gpu_hours_period_days": {"type": "integer"},
        "queued_jobs": {"type": "integer", "minimum": 0,
                        "description": "jobs waiting at once (unset everywhere: 20)"},
        "running_jobs": {"type": "integer", "minimum": 0,
                         "description": "jobs running at once (unset everywhere: 8)"},
        "profile_caps": {"type": "object", "additionalProperties": {"type": "integer"}},
        "allowed_slices": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": False,
}

SCHEMAS = {
    "QuotaLimits": _LIMITS,
    "QuotaBody": {"type": "object", "properties": {"limits": {"$ref": "#/components/schemas/QuotaLimits"},
                                                   "weight": {"type": "number", "exclusiveMinimum": 0}}},
    "QuotaRequestBody": {"type": "object", "required": ["requested", "reason"],
                         "properties": {"requested": {"$ref": "#/components/schemas/QuotaLimits"},
                                        "reason": {"type": "string"}}},
    "AdmissionRequest": {
        "type": "object", "required": ["owner", "user", "slice"],
        "properties": {
            "owner": {"type": "object", "required": ["kind", "id"],
                      "properties": {"kind": {"enum": ["workspace", "job"]}, "id": {"type": "string"}}},
            "user": {"type": "string"}, "groups": {"type": "array", "items": {"type": "string"}},
            "slice": {"type": "string", "examples": ["cpu", "1g.10gb", "mps-25", "gpu-2"]},
            "cpu": {"type": "number"}, "memory_gib": {"type": "number"},
            "client_key": {"type": "string", "description": "idempotency key: a retry never allocates twice"},
            "priority": {"type": "integer"},
        },
    },
}
