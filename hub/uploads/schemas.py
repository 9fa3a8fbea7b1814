"""What the uploads operations declare: JSON schemas, tus headers and bodies (for the OpenAPI document)."""
from __future__ import annotations

from .store import FINISHED, RECEIVING, UNPLACED

#: tus answers in headers; their bodies are empty (the status and headers are the answer)
EMPTY_CONTENT = "text/plain"
EMPTY = {"type": "string", "maxLength": 0, "description": "empty: the answer is in the headers"}

#: a PATCH (or creation-with-upload) body: the upload's bytes from Upload-Offset on
TUS_BODY_CONTENT = "application/offset+octet-stream"
TUS_BODY = {"type": "string", "format": "binary"}

#: not required: a missing or other version gets 412 Precondition Failed with Tus-Version (tus 1.0.0)
TUS_RESUMABLE = ("Tus-Resumable", False, "the tus version, 1.0.0; missing or another one: 412 Precondition "
                 "Failed with Tus-Version")
SIZE = "a non-negative whole number"

CAPABILITY_HEADERS = (
    ("Tus-Resumable", "1.0.0"),
    ("Tus-Version", "the tus versions this server speaks: 1.0.0"),
    ("Tus-Extension", "the extensions it implements: creation, creation-with-upload, creation-defer-length, "
                      "expiration, checksum, termination, concatenation"),
    ("Tus-Checksum-Algorithm", "the Upload-Checksum algorithms it checks"),
)
TUS_RESUMABLE_HEADER = (("Tus-Resumable", "1.0.0"),)
EXPIRES_HEADER = ("Upload-Expires", "when the unfinished upload expires unless more bytes arrive (RFC 9110 date)")

#: errors every tus request (POST, HEAD, PATCH, DELETE) may get besides its own
TUS_ERRORS = (401, 403, 412)

UPLOAD_STATES = [RECEIVING, FINISHED, UNPLACED]

SCHEMAS = {
    "Upload": {
        "type": "object",
        "required": ["id", "state", "offset", "length", "concat", "path", "error", "expires"],
        "properties": {
            "id": {"type": "string"},
            "owner": {"type": "string"},
            "url": {"type": "string", "description": "the upload's tus URL"},
            "state": {"type": "string", "enum": UPLOAD_STATES},
            "offset": {"type": "integer", "minimum": 0},
            "length": {"type": ["integer", "null"], "description": "null while the length is deferred"},
            "filename": {"type": ["string", "null"]},
            "dir": {"type": "string"},
            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
            "concat": {"type": ["string", "null"], "enum": ["partial", "final", None]},
            "path": {"type": "string", "description": "where it landed, relative to the owner's storage root, "
                                                      "once finished (else empty)"},
            "storage_root": {"type": "string"},
            "error": {"type": "string", "description": "why placing it failed (state unplaced), else empty"},
            "created": {"type": "number"},
            "expires": {"type": "number", "description": "when it expires (seconds since the epoch)"},
            "writing": {"type": "boolean", "description": "a request is writing to it right now"},
        },
    },
    "UploadList": {
        "type": "object",
        "required": ["user", "storage", "limits", "uploads"],
        "properties": {
            "user": {"type": "string"},
            "storage": {"type": "object", "required": ["root", "quota_bytes", "stored_bytes", "pending_bytes",
                                                       "free_bytes"],
                        "properties": {"root": {"type": "string"}, "quota_bytes": {"type": "integer"},
                                       "stored_bytes": {"type": "integer"}, "pending_bytes": {"type": "integer"},
                                       "free_bytes": {"type": "integer"}}},
            "limits": {"type": "object", "required": ["max_upload_bytes", "expiry_hours"],
                       "properties": {"max_upload_bytes": {"type": "integer"}, "expiry_hours": {"type": "number"}}},
            "uploads": {"type": "array", "items": {"$ref": "#/components/schemas/Upload"}},
        },
    },
}
