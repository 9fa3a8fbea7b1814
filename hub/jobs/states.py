"""The life of a job (pure): its statuses and the transitions allowed between them.

CREATED -> QUEUED -> RUNNING -> COMPLETED | FAILED | CANCELLED | TIMED_OUT, as in
jupyter-scheduler. A job with retries left goes from RUNNING (failed) back to QUEUED.
"""
from __future__ import annotations

CREATED = "CREATED"
QUEUED = "QUEUED"
RUNNING = "RUNNING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
TIMED_OUT = "TIMED_OUT"

STATUSES = (CREATED, QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED, TIMED_OUT)
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED, TIMED_OUT})
ACTIVE = frozenset({CREATED, QUEUED, RUNNING})

ALLOWED = {
    CREATED: {QUEUED, FAILED, CANCELLED},
    QUEUED: {RUNNING, FAILED, CANCELLED},
    RUNNING: {COMPLETED, FAILED, CANCELLED, TIMED_OUT, QUEUED},  # QUEUED: a retry
    COMPLETED: set(),
    FAILED: set(),
    CANCELLED: set(),
    TIMED_OUT: set(),
}


class IllegalTransition(ValueError):
    pass


def check_transition(current: str, new: str) -> None:
    if new not in ALLOWED.get(current, ()):
        raise IllegalTransition(f"a {current} job cannot become {new}")


def outcome_of_exit(exit_code: int | None) -> str:
    """COMPLETED for exit code 0, FAILED otherwise (None: no exit status at all)."""
    return COMPLETED if exit_code == 0 else FAILED
