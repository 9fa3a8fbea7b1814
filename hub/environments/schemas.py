"""JSON Schemas of the environments API (components/schemas of the service's OpenAPI document)."""
from __future__ import annotations

from . import names

_STRINGS = {"type": "array", "items": {"type": "string"}}
_NULLABLE_STRING = {"type": ["string", "null"]}
_REF = {"$ref": "#/components/schemas/Environment"}

SCHEMAS = {
    "EnvironmentCreate": {
        "type": "object",
        "required": ["name"],
        "description": "Embedded mode: `packages` (a Python environment built here). Cluster mode: `image`.",
        "properties": {
            "name": {"type": "string", "pattern": names.NAME.pattern},
            "packages": {"oneOf": [_STRINGS, {"type": "string"}],
                         "description": "PEP 508 requirements or absolute paths to .whl files; a string is split "
                                        "at spaces"},
            "teams": {"oneOf": [_STRINGS, {"type": "string"}],
                      "description": "the teams that may use it (a string: comma-separated); none: everyone"},
            "description": {"type": "string"},
            "image": {"type": "string", "description": "cluster mode: the container image"},
            "pull_policy": {"type": "string", "enum": list(names.PULL_POLICIES)},
        },
    },
    "Environment": {
        "type": "object",
        "required": ["name", "kind", "status", "builtin", "teams", "description", "packages", "prefix", "image",
                     "pull_policy", "size_bytes", "step", "steps", "step_title", "error", "created_by",
                     "created_at", "updated_at", "queue_position"],
        "properties": {
            "name": {"type": "string"},
            "kind": {"type": "string", "enum": ["python", "image"]},
            "status": {"type": "string", "enum": ["queued", "building", "ready", "failed"]},
            "builtin": {"type": "boolean", "description": "true for base, the shared user environment"},
            "teams": {**_STRINGS, "description": "the teams that may use it; empty: everyone"},
            "description": {"type": "string"},
            "packages": _STRINGS,
            "prefix": {**_NULLABLE_STRING, "description": "kind python: its sys.prefix"},
            "image": {**_NULLABLE_STRING, "description": "kind image: what pods pull (the registry prefix "
                                                          "applied); null for base: the deployment's image"},
            "pull_policy": _NULLABLE_STRING,
            "size_bytes": {"type": ["integer", "null"], "description": "on disk, once built"},
            "step": {"type": "integer", "description": "the build step running or last run, from 1"},
            "steps": {"type": "integer"},
            "step_title": {"type": "string"},
            "error": {"type": "string", "description": "why the build failed"},
            "created_by": {"type": "string"},
            "created_at": _NULLABLE_STRING,
            "updated_at": _NULLABLE_STRING,
            "queue_position": {"type": ["integer", "null"], "description": "queued: its place among the builds "
                                                                             "waiting"},
        },
    },
    "EnvironmentDetail": {
        "allOf": [_REF, {"type": "object", "required": ["log_tail"],
                         "properties": {"log_tail": {"type": "string", "description": "the end of the build log "
                                                     "(administrators; empty for others)"}}}],
    },
    "EnvironmentList": {
        "type": "object",
        "required": ["environments", "default"],
        "properties": {"environments": {"type": "array", "items": _REF},
                       "default": {"type": "string", "description": "the environment a server runs in when none "
                                   "is chosen"}},
    },
    "UserEnvironments": {
        "type": "object",
        "required": ["user", "groups", "environments", "default"],
        "properties": {"user": {"type": "string"}, "groups": _STRINGS,
                       "environments": {"type": "array", "items": _REF,
                                        "description": "the ready environments the user's teams allow, base first"},
                       "default": {"type": "string"}},
    },
    "EnvironmentLog": {
        "type": "object",
        "required": ["name", "text", "offset", "next_offset", "size", "complete"],
        "properties": {"name": {"type": "string"}, "text": {"type": "string"},
                       "offset": {"type": "integer"}, "next_offset": {"type": "integer"},
                       "size": {"type": "integer"},
                       "complete": {"type": "boolean", "description": "the build has ended (ready or failed)"}},
    },
}
