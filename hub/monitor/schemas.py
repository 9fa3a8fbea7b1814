"""JSON Schemas of the monitoring area's API (`components/schemas` of the service's OpenAPI document)."""
from __future__ import annotations

_NUMBER_OR_NULL = {"type": ["number", "null"]}
_STRING_OR_NULL = {"type": ["string", "null"]}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: list[str], properties: dict, **more) -> dict:
    return {"type": "object", "required": required, "properties": properties, **more}


_POLICY_FIELDS = {
    "enabled": {"type": "boolean"},
    "dry_run": {"type": "boolean", "description": "Only audit what would happen"},
    "idle_threshold_percent": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
    "idle_hours": {"type": "number", "exclusiveMinimum": 0},
    "grace_hours": {"type": "number", "minimum": 0},
    "exempt_groups": {"type": "array", "items": {"type": "string"}},
    "max_gap_seconds": {"type": "number", "exclusiveMinimum": 0},
    "webhook_url": {"type": "string", "description": "http(s) URL POSTed a JSON event; empty for none"},
}

_TRACK = {
    "allocation_id": {"type": "string"},
    "user": {"type": "string"},
    "owner": {"type": "string", "description": "The workspace (\"user/server\")"},
    "slice": {"type": "string"},
    "state": {"type": "string", "enum": ["watching", "warned", "reclaimed", "exempt"]},
    "idle_since": _NUMBER_OR_NULL,
    "last_utilization": _NUMBER_OR_NULL,
    "warned_at": _NUMBER_OR_NULL,
    "reclaim_at": _NUMBER_OR_NULL,
    "dry_run": {"type": "boolean"},
}

_COLLECTOR_RUN = {"name": {"type": "string"}, "ok": {"type": "boolean"}, "error": {"type": "string"}}

MONITOR_SCHEMAS = {
    "ReclaimPolicy": {"type": "object", "description": "Only the settings given change.",
                      "properties": _POLICY_FIELDS, "additionalProperties": False},
    "ReclaimPolicySettings": _object(list(_POLICY_FIELDS), _POLICY_FIELDS,
                                     description="The whole reclaim policy in force."),
    "ReclaimPolicyState": _object(["policy", "updated_at", "updated_by"], {
        "policy": _ref("ReclaimPolicySettings"),
        "updated_at": {**_STRING_OR_NULL, "description": "When an administrator last set it (null: the defaults)"},
        "updated_by": {"type": "string"},
    }),
    "ReclaimTrack": _object(list(_TRACK), _TRACK),
    "Reclaim": _object(["policy", "updated_at", "updated_by", "tracks"], {
        "policy": _ref("ReclaimPolicySettings"),
        "updated_at": _STRING_OR_NULL,
        "updated_by": {"type": "string"},
        "tracks": {"type": "array", "items": {"allOf": [_ref("ReclaimTrack"), _object(
            ["idle_seconds"], {"idle_seconds": {"type": "number"}})]}},
    }),
    "ReclaimNotice": _object(
        ["allocation_id", "user", "server", "owner", "slice", "state", "idle_since", "warned_at", "reclaim_at",
         "stopped_at"], {
            "allocation_id": {"type": "string"}, "user": {"type": "string"}, "server": {"type": "string"},
            "owner": {"type": "string"}, "slice": {"type": "string"},
            "state": {"type": "string", "enum": ["warned", "reclaimed"]}, "idle_since": _NUMBER_OR_NULL,
            "warned_at": _NUMBER_OR_NULL, "reclaim_at": _NUMBER_OR_NULL, "stopped_at": _NUMBER_OR_NULL}),
    "ReclaimNotices": _object(["user", "notices"], {
        "user": {"type": "string"}, "notices": {"type": "array", "items": _ref("ReclaimNotice")}}),
    "MonitorRound": _object(["at", "round", "collectors", "tracks"], {
        "at": {"type": "number"}, "round": {"type": "integer"},
        "collectors": {"type": "array", "items": _object(list(_COLLECTOR_RUN), _COLLECTOR_RUN)},
        "tracks": {"type": "array", "items": _ref("ReclaimTrack")},
    }),
    "CollectorStatus": _object(["name", "ok", "error", "at", "duration_s", "last_success", "note"], {
        **_COLLECTOR_RUN, "at": _NUMBER_OR_NULL, "duration_s": {"type": "number"}, "last_success": _NUMBER_OR_NULL,
        "note": {"type": "string"}}),
    "MonitorSlice": _object(
        ["slice", "kind", "profile", "node", "gpu", "start", "size", "allocation_id", "user", "owner_kind", "owner",
         "utilization", "memory_used_bytes", "memory_total_bytes", "idle_seconds"], {
            "slice": {"type": "string", "description": "MIG UUID, GPU UUID or \"<GPU UUID>#mps<n>\""},
            "kind": {"type": "string", "enum": ["mig", "gpu", "mps"]}, "profile": {"type": "string"},
            "node": {"type": "string"}, "gpu": {"type": "integer"}, "start": {"type": ["integer", "null"]},
            "size": {"type": "integer"}, "allocation_id": _STRING_OR_NULL, "user": {"type": "string"},
            "owner_kind": {"type": "string"}, "owner": {"type": "string"},
            "utilization": {**_NUMBER_OR_NULL, "description": "0-1; null: not measured"},
            "memory_used_bytes": _NUMBER_OR_NULL, "memory_total_bytes": _NUMBER_OR_NULL,
            "idle_seconds": _NUMBER_OR_NULL}),
    "MonitorGpu": _object(
        ["node", "index", "uuid", "model", "mode", "up", "slots", "utilization", "memory_used_bytes",
         "memory_total_bytes", "processes", "slices"], {
            "node": {"type": "string"}, "index": {"type": "integer"}, "uuid": {"type": "string"},
            "model": {"type": "string"}, "mode": {"type": "string"},
            "up": {"type": ["boolean", "null"], "description": "null: no collector covers the node"},
            "slots": {"type": "integer"}, "utilization": _NUMBER_OR_NULL, "memory_used_bytes": _NUMBER_OR_NULL,
            "memory_total_bytes": _NUMBER_OR_NULL,
            "processes": {"type": "array", "items": _object(["pid", "user", "memory_used_bytes", "sm_utilization"], {
                "pid": {"type": "integer"}, "user": _STRING_OR_NULL, "memory_used_bytes": _NUMBER_OR_NULL,
                "sm_utilization": _NUMBER_OR_NULL})},
            "slices": {"type": "array", "items": _ref("MonitorSlice")}}),
    "MonitorFleet": _object(
        ["at", "capacity_gpu_units", "allocated_gpu_units", "collectors", "notes", "nodes", "gpus", "queue",
         "servers"], {
            "at": {"type": "number"}, "capacity_gpu_units": {"type": "number"},
            "allocated_gpu_units": {"type": "number"},
            "collectors": {"type": "array", "items": _ref("CollectorStatus")},
            "notes": {"type": "array", "items": {"type": "string"}},
            "nodes": {"type": "array", "items": {"type": "string"}},
            "gpus": {"type": "array", "items": _ref("MonitorGpu")},
            "queue": {"type": "object", "description": "slice -> what waits for it", "additionalProperties": _object(
                ["waiting", "oldest_wait_seconds"], {"waiting": {"type": "integer"},
                                                     "oldest_wait_seconds": {"type": "number"}})},
            "servers": _object(["ready", "pending"], {"ready": {"type": "integer"}, "pending": {"type": "integer"}}),
        }),
    "MonitorUsage": _object(
        ["user", "at", "gpu_units", "gpu_hours_period", "busy_gpu_units", "limits", "slices", "notices",
         "daily_gpu_hours", "history"], {
            "user": {"type": "string"}, "at": {"type": "number"}, "gpu_units": {"type": "number"},
            "gpu_hours_period": {"type": "number"}, "busy_gpu_units": _NUMBER_OR_NULL,
            "limits": {"type": "object", "additionalProperties": {"type": "number"}},
            "slices": {"type": "array", "items": _ref("MonitorSlice")},
            "notices": {"type": "array", "items": _ref("ReclaimNotice")},
            "daily_gpu_hours": _object(["days", "gpu_hours"], {
                "days": {"type": "array", "items": {"type": "string", "format": "date"}},
                "gpu_hours": {"type": "array", "items": {"type": "number"}}}),
            "history": _object(["t", "gpu_units", "busy_gpu_units"], {
                "t": {"type": "array", "items": {"type": "number"}},
                "gpu_units": {"type": "array", "items": _NUMBER_OR_NULL},
                "busy_gpu_units": {"type": "array", "items": _NUMBER_OR_NULL}}),
        }),
}
