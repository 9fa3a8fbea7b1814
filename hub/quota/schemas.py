"""JSON Schemas of the quota area's API (components/schemas of the generated OpenAPI)."""
from __future__ import annotations

_NULLABLE_STRING = {"type": ["string", "null"]}
_NULLABLE_NUMBER = {"type": ["number", "null"]}

_LIMIT_PROPERTIES = {
    "gpu_units": {"type": "number"}, "cpu": {"type": "number"}, "memory_gib": {"type": "number"},
    "storage_gib": {"type": "number"}, "servers": {"type": "integer"}, "gpu_hours": {"type": "number"},
    "gpu_hours_period_days": {"type": "integer"},
    "queued_jobs": {"type": "integer", "minimum": 0, "description": "jobs waiting at once (unset everywhere: 20)"},
    "running_jobs": {"type": "integer", "minimum": 0, "description": "jobs running at once (unset everywhere: 8)"},
    "profile_caps": {"type": "object", "additionalProperties": {"type": "integer"}},
    "allowed_slices": {"type": "array", "items": {"type": "string"}},
}

_SUBJECT = {"type": "object", "required": ["kind", "name"],
            "properties": {"kind": {"enum": ["user", "group", "default"]}, "name": {"type": "string"}}}

_USAGE_NOW = {"type": "object", "required": ["gpu_units", "cpu", "memory_gib", "servers", "gpu_hours"],
              "properties": {"gpu_units": {"type": "number"}, "cpu": {"type": "number"},
                             "memory_gib": {"type": "number"}, "servers": {"type": "integer"},
                             "gpu_hours": {"type": "number"}}}

_REMAINING = {"type": "object", "description": "what is left per dimension (null: unlimited)",
              "properties": {k: _NULLABLE_NUMBER for k in
                             ("gpu_units", "cpu", "memory_gib", "storage_gib", "servers", "gpu_hours")}}

_REF = "#/components/schemas/"

QUOTA_SCHEMAS = {
    "QuotaLimits": {"type": "object", "properties": _LIMIT_PROPERTIES, "additionalProperties": False},
    # limits as stored and shown (open: a row written before a dimension was renamed still reads)
    "QuotaLimitsView": {"type": "object", "properties": _LIMIT_PROPERTIES},
    "QuotaBody": {"type": "object", "properties": {"limits": {"$ref": _REF + "QuotaLimits"},
                                                   "weight": {"type": "number", "exclusiveMinimum": 0}}},
    "QuotaSet": {"type": "object", "required": ["subject", "limits", "weight"],
                 "properties": {"subject": _SUBJECT, "limits": {"$ref": _REF + "QuotaLimitsView"},
                                "weight": {"type": "number"}}},
    "Quota": {"type": "object", "required": ["subject", "limits", "weight", "updated_at", "updated_by"],
              "properties": {"subject": _SUBJECT, "limits": {"$ref": _REF + "QuotaLimitsView"},
                             "weight": {"type": "number"}, "updated_at": {"type": "string"},
                             "updated_by": {"type": "string"}}},
    "QuotaList": {"type": "object", "required": ["quotas"],
                  "properties": {"quotas": {"type": "array", "items": {"$ref": _REF + "Quota"}}}},
    "UserQuota": {"type": "object", "required": ["user", "groups", "limits", "usage", "remaining"],
                  "properties": {"user": {"type": "string"}, "groups": {"type": "array", "items": {"type": "string"}},
                                 "limits": {"$ref": _REF + "QuotaLimitsView"}, "usage": _USAGE_NOW,
                                 "remaining": _REMAINING}},
    "QuotaRequestBody": {"type": "object", "required": ["requested", "reason"],
                         "properties": {"requested": {"$ref": _REF + "QuotaLimits"}, "reason": {"type": "string"}}},
    "QuotaDecisionBody": {"type": "object", "required": ["approve"],
                          "properties": {"approve": {"type": "boolean"}, "note": {"type": "string"}}},
    "QuotaRequest": {
        "type": "object",
        "required": ["id", "user", "requested", "reason", "status", "decided_by", "decision_note", "created_at",
                     "decided_at"],
        "properties": {"id": {"type": "integer"}, "user": {"type": "string"},
                       "requested": {"$ref": _REF + "QuotaLimitsView"}, "reason": {"type": "string"},
                       "status": {"enum": ["pending", "approved", "denied"]}, "decided_by": {"type": "string"},
                       "decision_note": {"type": "string"}, "created_at": _NULLABLE_STRING,
                       "decided_at": _NULLABLE_STRING}},
    "QuotaRequestList": {"type": "object", "required": ["requests"],
                         "properties": {"requests": {"type": "array", "items": {"$ref": _REF + "QuotaRequest"}}}},
    "AdmissionRequest": {
        "type": "object", "required": ["owner", "user", "slice"],
        "properties": {
            "owner": {"type": "object", "required": ["kind", "id"],
                      "properties": {"kind": {"enum": ["workspace", "job"]}, "id": {"type": "string"}}},
            "user": {"type": "string"}, "groups": {"type": "array", "items": {"type": "string"}},
            "slice": {"type": "string", "examples": ["cpu", "1g.10gb", "mps-25", "gpu-2"]},
            "cpu": {"type": "number", "minimum": 0}, "memory_gib": {"type": "number", "minimum": 0},
            "client_key": {"type": "string", "description": "idempotency key: a retry never allocates twice"},
            "priority": {"type": "integer"},
            "replicas": {"type": "integer", "minimum": 1, "maximum": 65,
                         "description": "a gang: that many slices, each for one replica, admitted all or none"},
        },
    },
    "Allocation": {
        "type": "object",
        "required": ["id", "client_key", "status", "owner", "user", "groups", "slice", "gpu_units", "gpu_units_exact",
                     "cpu", "memory_gib", "replicas", "placement", "reason", "created_at", "admitted_at",
                     "released_at"],
        "properties": {
            "id": {"type": "string"}, "client_key": {"type": "string"},
            "status": {"enum": ["queued", "admitted", "released", "cancelled"]},
            "owner": {"type": "object", "required": ["kind", "id"],
                      "properties": {"kind": {"type": "string"}, "id": {"type": "string"}}},
            "user": {"type": "string"}, "groups": {"type": "array", "items": {"type": "string"}},
            "slice": {"type": "string"}, "gpu_units": {"type": "number"},
            "gpu_units_exact": {"type": "string", "examples": ["3/7"]},
            "cpu": {"type": "number"}, "memory_gib": {"type": "number"},
            "replicas": {"type": "integer", "minimum": 1, "description": "a gang's replicas, each on its own "
                         "slice (gpu_units, cpu and memory_gib are their sum)"},
            "placement": {"type": "object", "description": "node, model, gpu_uuids, mig_instance_uuids, "
                          "visible_devices, ... (empty until admitted); a gang's: each replica's under "
                          "`replicas`, the first's also at the top"},
            "reason": {"type": "string"}, "created_at": {"type": "string"},
            "admitted_at": _NULLABLE_STRING, "released_at": _NULLABLE_STRING,
            "position": {"type": ["integer", "null"], "description": "queued only: 1 = next"},
            "queue_length": {"type": "integer", "description": "queued only"},
        },
    },
    "AllocationList": {"type": "object", "required": ["allocations"],
                       "properties": {"allocations": {"type": "array", "items": {"$ref": _REF + "Allocation"}}}},
    "Queue": {
        "type": "object", "required": ["length", "entries"],
        "properties": {
            "length": {"type": "integer"},
            "entries": {"type": "array", "items": {
                "type": "object", "required": ["position", "id", "user", "slice", "group", "reason", "waiting_since"],
                "properties": {"position": {"type": "integer"}, "id": {"type": "string"}, "user": {"type": "string"},
                               "slice": {"type": "string"}, "group": {"type": "string"},
                               "reason": {"type": "string"}, "waiting_since": {"type": "string"}}}},
        },
    },
    "Offers": {
        "type": "object", "required": ["offers", "remaining", "inventory_note", "limits"],
        "properties": {
            "offers": {"type": "array", "items": {
                "type": "object",
                "required": ["slice", "kind", "gpu_units", "memory_gib", "free", "allowed", "within_quota",
                             "quota_note", "note"],
                "properties": {"slice": {"type": "string"}, "kind": {"enum": ["cpu", "mig", "mps", "gpu"]},
                               "gpu_units": {"type": "number"}, "gpu_units_exact": {"type": "string"},
                               "memory_gib": {"type": "number"}, "model": _NULLABLE_STRING,
                               "free": {"type": ["integer", "null"]}, "allowed": {"type": "boolean"},
                               "within_quota": {"type": "boolean"}, "quota_note": {"type": "string"},
                               "note": {"type": "string"}}}},
            "remaining": _REMAINING, "inventory_note": {"type": "string"},
            "limits": {"$ref": _REF + "QuotaLimitsView"},
        },
    },
    "UsageReport": {
        "type": "object", "required": ["from", "to", "rows"],
        "properties": {
            "from": {"type": "string", "format": "date"}, "to": {"type": "string", "format": "date"},
            "rows": {"type": "array", "items": {
                "type": "object", "required": ["day", "user", "group", "slice", "gpu_hours"],
                "properties": {"day": {"type": "string", "format": "date"}, "user": {"type": "string"},
                               "group": {"type": "string"}, "slice": {"type": "string"},
                               "gpu_hours": {"type": "number"}}}},
        },
    },
}
