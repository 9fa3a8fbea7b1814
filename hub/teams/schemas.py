"""JSON Schemas of the teams API (components/schemas of the service's OpenAPI document)."""
from __future__ import annotations

from . import names

_STRINGS = {"type": "array", "items": {"type": "string"}}
_NULLABLE_STRING = {"type": ["string", "null"]}

SCHEMAS = {
    "TeamMark": {"type": "object", "properties": {"admins": _STRINGS}},
    "TeamSync": {"type": "object", "properties": {"user": {"type": "string"}}},
    "TeamSummary": {
        "type": "object",
        "required": ["name", "admins", "member", "folder", "link", "posix_group"],
        "properties": {
            "name": {"type": "string"},
            "admins": _STRINGS,
            "member": {"type": "boolean", "description": "the caller is a member"},
            "folder": {"type": "string"},
            "link": {"type": "string", "description": "where members see the folder, ~/teams/<team>"},
            "posix_group": {"type": "string"},
        },
    },
    "TeamList": {
        "type": "object",
        "required": ["teams"],
        "properties": {"teams": {"type": "array", "items": {"$ref": "#/components/schemas/TeamSummary"}}},
    },
    "TeamStorage": {
        "type": "object",
        "required": ["used_bytes", "limit_bytes"],
        "properties": {"used_bytes": {"type": "integer"}, "limit_bytes": {"type": ["integer", "null"]}},
    },
    "Team": {
        "type": "object",
        "required": ["name", "admins", "members", "folder", "link", "posix_group", "storage", "synced_at",
                     "can_manage"],
        "properties": {
            "name": {"type": "string"},
            "admins": _STRINGS,
            "members": _STRINGS,
            "folder": {"type": "string"},
            "link": {"type": "string"},
            "posix_group": {"type": "string"},
            "storage": {"$ref": "#/components/schemas/TeamStorage"},
            "synced_at": _NULLABLE_STRING,
            "can_manage": {"type": "boolean"},
        },
    },
    "TeamMarked": {
        "type": "object",
        "required": ["name", "admins", "folder", "posix_group"],
        "properties": {"name": {"type": "string"}, "admins": _STRINGS, "folder": {"type": "string"},
                       "posix_group": {"type": "string"}},
    },
    "TeamSyncReport": {
        "type": "object",
        "required": ["team"],
        "description": "One team's reconciliation; `error` alone when it failed",
        "properties": {
            "team": {"type": "string"},
            "folder": {"type": "string"},
            "posix_group": {"type": "string"},
            "members": _STRINGS,
            "added": _STRINGS,
            "removed": _STRINGS,
            "linked": _STRINGS,
            "was": _STRINGS,
            "error": {"type": "string"},
        },
    },
    "TeamSyncResult": {
        "type": "object",
        "required": ["teams"],
        "properties": {"teams": {"type": "array", "items": {"$ref": "#/components/schemas/TeamSyncReport"}}},
    },
    "DatasetCreate": {
        "type": "object", "required": ["name", "source_path"],
        "properties": {"name": {"type": "string", "pattern": names.DATASET_NAME.pattern},
                       "team": {"type": ["string", "null"]},
                       "source_path": {"type": "string", "description": "a folder in the team's space (absolute, "
                                       "relative to it, or under ~/teams/<team>) or in the caller's home"}},
    },
    "Dataset": {
        "type": "object",
        "required": ["name", "version", "team", "owner", "state", "path", "source_path", "size_bytes",
                     "file_count", "manifest_sha256", "env", "created_by", "created_at", "ref"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "integer", "minimum": 1},
            "team": {"type": ["string", "null"], "description": "null: a personal dataset"},
            "owner": {"type": "string"},
            "state": {"type": "string", "enum": ["creating", "ready", "deleted", "failed"]},
            "path": {"type": "string"},
            "source_path": {"type": "string"},
            "size_bytes": {"type": ["integer", "null"]},
            "file_count": {"type": ["integer", "null"]},
            "manifest_sha256": _NULLABLE_STRING,
            "env": {"type": "string", "description": "the variable a job sees the dataset's path in"},
            "created_by": {"type": "string"},
            "created_at": _NULLABLE_STRING,
            "ref": {"type": "string", "description": "name:version, team/name:version for a team's"},
        },
    },
    "DatasetCreated": {
        "allOf": [{"$ref": "#/components/schemas/Dataset"},
                  {"type": "object", "required": ["skipped"],
                   "properties": {"skipped": {**_STRINGS, "description": "what was not copied (links, special "
                                              "files, what the caller cannot read)"}}}],
    },
    "DatasetList": {
        "type": "object",
        "required": ["datasets"],
        "properties": {"datasets": {"type": "array", "items": {"$ref": "#/components/schemas/Dataset"}}},
    },
}
