"""What the scheduler hands an executor and what it gets back."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class JobRun:
    """One attempt of a job, detached from the database (executors run outside the DB thread)."""

    id: str
    owner: str
    attempt: int
    kind: str
    name: str
    input: str
    code: str
    command: str
    parameters: dict
    workdir: str
    slice: str
    cpu: float
    memory_gib: float
    image: str
    env: dict
    placement: dict
    max_runtime_s: float | None
    started_at: datetime | None
    process: dict = field(default_factory=dict)
    log_path: str = ""
    outputs: tuple = ()
    distributed: dict = field(default_factory=dict)  # {} or {"framework": "pytorch", "workers": N}

    @property
    def marker(self) -> str:
        """Set in every process of this attempt's environment (ASTRAGO_JOB_MARKER)."""
        return f"{self.id}.{self.attempt}"


@dataclass(frozen=True)
class Launch:
    process: dict  # what finds the attempt again after a restart
    log_path: str
    outputs: list
    note: str = ""  # e.g. "cpu and memory limits are not enforced here"


@dataclass(frozen=True)
class Exit:
    """How an attempt ended. `exit_code` None: no exit status could be had (`reason` says why)."""

    exit_code: int | None
    reason: str = ""
    lost: bool = False  # the process vanished without a status (e.g. while the service was down)


class ExecutorError(Exception):
    """A job could not be started; the message is for people."""
