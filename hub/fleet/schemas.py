"""JSON Schemas of the fleet API (components/schemas of the service's OpenAPI document)."""
from __future__ import annotations

_COUNTS = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}
_NULLABLE_STRING = {"type": ["string", "null"]}

FLEET_SCHEMAS = {
    "MigRecutRequest": {
        "type": "object",
        "description": "Either a demand (the planner chooses layouts for idle MIG GPUs) or explicit layouts.",
        "properties": {
            "demand": {**_COUNTS, "examples": [{"1g.10gb": 4, "3g.40gb": 1}]},
            "gpus": {"type": "array", "items": {
                "type": "object", "required": ["node", "index", "geometry"],
                "properties": {"node": {"type": "string"}, "index": {"type": "integer"},
                               "geometry": {"type": "object", "additionalProperties": {"type": "integer"}}}}},
            "busy_node_ok": {"type": "boolean", "description": "re-cut even though other GPUs of the node are in use"},
        },
    },
    "FleetInstance": {
        "type": "object",
        "required": ["profile", "start", "uuid", "holder"],
        "properties": {"profile": {"type": "string"}, "start": {"type": ["integer", "null"]},
                       "uuid": {"type": "string"},
                       "holder": {**_NULLABLE_STRING, "description": "who holds it, in words; null: free"}},
    },
    "FleetGpu": {
        "type": "object",
        "required": ["index", "uuid", "model", "product", "mode", "mps_replicas", "instances", "holders"],
        "properties": {
            "index": {"type": "integer"},
            "uuid": {"type": "string"},
            "model": {**_NULLABLE_STRING, "description": "the catalogue's name; null: a model AstraGo does not know"},
            "product": {"type": "string"},
            "mode": {"type": "string", "enum": ["full", "mig", "mps"]},
            "mps_replicas": {"type": "integer"},
            "instances": {"type": "array", "items": {"$ref": "#/components/schemas/FleetInstance"}},
            "holders": {"type": "array", "items": {"type": "string"},
                        "description": "the whole GPU's holder, or its MPS clients"},
        },
    },
    "FleetNode": {
        "type": "object",
        "required": ["name", "source", "simulated", "mig_strategy", "mig_config", "mig_config_state", "draining",
                     "gpus"],
        "properties": {
            "name": {"type": "string"},
            "source": {"type": "string"},
            "simulated": {"type": "boolean"},
            "mig_strategy": _NULLABLE_STRING,
            "mig_config": _NULLABLE_STRING,
            "mig_config_state": _NULLABLE_STRING,
            "draining": {"type": "array", "items": {"type": "integer"},
                         "description": "GPU indices kept out of placement while they are re-cut"},
            "gpus": {"type": "array", "items": {"$ref": "#/components/schemas/FleetGpu"}},
        },
    },
    "Fleet": {
        "type": "object",
        "required": ["mode", "can_recut", "note", "nodes", "recuts"],
        "properties": {
            "mode": {"type": "string", "enum": ["embedded", "cluster"]},
            "can_recut": {"type": "boolean"},
            "note": {"type": "string", "description": "where the inventory comes from, for people"},
            "nodes": {"type": "array", "items": {"$ref": "#/components/schemas/FleetNode"}},
            "recuts": {"type": "array", "items": {"$ref": "#/components/schemas/MigRecut"}},
        },
    },
    "MigPlanGpu": {
        "type": "object",
        "required": ["node", "index", "model", "current", "proposed", "recut", "busy", "layout"],
        "properties": {
            "node": {"type": "string"},
            "index": {"type": "integer"},
            "model": {"type": "string"},
            "current": _COUNTS,
            "proposed": _COUNTS,
            "recut": {"type": "boolean"},
            "busy": {"type": "boolean"},
            "layout": {"type": "array", "items": {
                "type": "object", "required": ["profile", "start"],
                "properties": {"profile": {"type": "string"}, "start": {"type": ["integer", "null"]}}}},
        },
    },
    "MigPlan": {
        "type": "object",
        "required": ["gpus", "demand", "served_gpu_units", "served_gpu_units_exact", "mig_configs", "node_labels"],
        "properties": {
            "gpus": {"type": "array", "items": {"$ref": "#/components/schemas/MigPlanGpu"}},
            "demand": _COUNTS,
            "served_gpu_units": {"type": "number"},
            "served_gpu_units_exact": {"type": "string", "description": "the same as a fraction, e.g. 3/7"},
            "mig_configs": {"type": "object", "description": "mig-parted configs the plan would add"},
            "node_labels": {"type": "object", "additionalProperties": {
                "type": "object", "additionalProperties": {"type": "string"}}},
        },
    },
    "MigRecut": {
        "type": "object",
        "required": ["id", "created_by", "created_at", "status", "detail", "gpus", "nodes"],
        "properties": {
            "id": {"type": "string"},
            "created_by": {"type": "string"},
            "created_at": {"type": "string"},
            "status": {"type": "string", "enum": ["applying", "done", "failed", "superseded", "error"]},
            "detail": {"type": "string"},
            "gpus": {"type": "array", "items": {"$ref": "#/components/schemas/MigPlanGpu"},
                     "description": "the GPUs re-cut"},
            "nodes": {"type": "object", "additionalProperties": {
                "type": "object", "required": ["config", "state"],
                "properties": {"config": {"type": "string"},
                               "state": {"type": "string", "description": "nvidia.com/mig.config.state as "
                                         "mig-manager reports it (pending, rebooting, success, failed), or "
                                         "superseded / node gone"}}}},
        },
    },
    "MigRecutList": {
        "type": "object",
        "required": ["recuts"],
        "properties": {"recuts": {"type": "array", "items": {"$ref": "#/components/schemas/MigRecut"}}},
    },
}
