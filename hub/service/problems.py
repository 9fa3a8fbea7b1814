"""API errors as RFC 9457 problem details (`application/problem+json`).

Each problem has a stable `type` slug that clients branch on; the CLI and the
magics print `detail`, which is written for people and says what to do next.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://astrago.dev/problems/"

#: the stable problem types and their HTTP status
PROBLEM_STATUS = {
    "unauthenticated": 401,
    "forbidden": 403,
    "not-found": 404,
    "method-not-allowed": 405,
    "conflict": 409,
    "invalid-request": 400,
    "invalid-slice": 422,
    "quota-exceeded": 403,
    "capacity-unavailable": 409,
    "payload-too-large": 413,
    "unsupported-media-type": 415,
    "internal-error": 500,
    "unavailable": 503,
    # resumable uploads (tus 1.0.0 fixes these statuses)
    "gone": 410,
    "precondition-failed": 412,
    "locked": 423,
    "checksum-mismatch": 460,
    "insufficient-storage": 507,
}


@dataclass
class Problem(Exception):
    """Raise from a handler to answer with a problem document."""

    type: str
    detail: str
    status: int | None = None
    title: str | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.type not in PROBLEM_STATUS:
            raise ValueError(f"unknown problem type {self.type!r}")
        if self.status is None:
            self.status = PROBLEM_STATUS[self.type]
        if self.title is None:
            self.title = HTTPStatus(self.status).phrase

    def to_dict(self, instance: str | None = None) -> dict:
        doc = {
            "type": PROBLEM_TYPE_BASE + self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            doc["instance"] = instance
        doc.update(self.extra)
        return doc


def problem_for_status(status: int, detail: str | None = None) -> Problem:
    """A problem for a bare HTTP status raised by tornado or a library."""
    by_status = {
        401: "unauthenticated",
        403: "forbidden",
        404: "not-found",
        405: "method-not-allowed",
        409: "conflict",
        413: "payload-too-large",
        415: "unsupported-media-type",
    }
    kind = by_status.get(status)
    if kind is None:
        kind = "invalid-request" if 400 <= status < 500 else "internal-error"
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    return Problem(kind, detail or phrase, status=status)
