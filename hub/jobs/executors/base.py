"""The executor contract: what the scheduler hands an executor, what it gets back, and the
`Executor` base every executor implements.

An executor runs job attempts somewhere (processes on this machine, Kubernetes Jobs, ...).
The jobs area picks one class with `JobsArea.executor_class` (a traitlets `Type`, as
JupyterHub's `spawner_class`), so a new executor is one new module with an `Executor`
subclass, named in the service's config: `c.JobsArea.executor_class = "mypkg.SlurmExecutor"`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from traitlets.config import LoggingConfigurable

from ..logs import replica_log_path


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
    distributed: dict = field(default_factory=dict)  # {} or {"framework": "pytorch"|"mpi", "workers": N}

    @property
    def replicas(self) -> int:
        """Processes (pods) of the attempt, each on its own slice: 1 + workers."""
        return 1 + int((self.distributed or {}).get("workers", 0))

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
    """A job could not be started (or has no home here); the message is for people."""


def notebook_output_path(input_path: str, when: datetime) -> str:
    """Where the executed notebook goes: beside the input, with a UTC timestamp (pure).

    /home/u/train.ipynb started 2026-03-01 12:00:05 UTC -> /home/u/train-20260301T120005Z.ipynb
    """
    base, _ = os.path.splitext(input_path)
    return f"{base}-{when.strftime('%Y%m%dT%H%M%SZ')}.ipynb"


class Executor(LoggingConfigurable):
    """Runs job attempts. `settings` is the area's `JobsConfig` (any object with its fields).

    The scheduler calls `start` once per admitted attempt, `poll` while it runs, `stop` to end
    it early, and `reattach` after a restart of the service. Every method but `home_of`,
    `job_capacity`, `log_path` and `adopt_pid` is a coroutine on the event loop; blocking work
    goes to a thread. An executor keeps a job's log at `log_path(run)`, where the API reads it.
    """

    #: recorded on every job (Job.executor): a job is only ever re-attached by the executor that ran it
    name: ClassVar[str] = ""
    #: jobs run in containers: a job may name its image, and its replicas may be an MPIJob (JobSpec image, distributed)
    runs_in_containers: ClassVar[bool] = False

    def __init__(self, settings, **kwargs):
        super().__init__(**kwargs)
        self.settings = settings
        self.data_dir = Path(settings.data_dir)

    #: one sentence for administrators about what this executor cannot do here ("" : nothing)
    limits_note = ""

    def home_of(self, user: str) -> str:
        """The user's storage root as their jobs see it (the default working directory).
        ExecutorError when the user can have no jobs here (e.g. no valid account name)."""
        raise NotImplementedError

    def job_capacity(self) -> tuple[float, float] | None:
        """(cores, GiB) that CPU-only jobs may hold together, when this executor runs every job on
        one machine; None when a scheduler outside AstraGo places jobs by their requests."""
        return None

    def log_path(self, run: JobRun, replica: int = 0) -> Path:
        """Where the attempt's log is kept; of each replica but the first, beside it (`replica_log_path`)."""
        return Path(replica_log_path(str(self.data_dir / run.id / f"attempt-{run.attempt}.log"), replica))

    async def start(self, run: JobRun) -> Launch:
        """Start the attempt; ExecutorError (for people) when it cannot start."""
        raise NotImplementedError

    async def poll(self, run: JobRun) -> Exit | None:
        """None while the attempt runs; its Exit once it has ended."""
        raise NotImplementedError

    async def stop(self, run: JobRun) -> list:
        """End the attempt (graceful, then forced after `cancel_grace_seconds`); what is still
        there afterwards (empty: everything is gone)."""
        raise NotImplementedError

    async def reattach(self, run: JobRun) -> Exit | None:
        """After a restart: None when the attempt still runs (it is watched again), else how it ended."""
        raise NotImplementedError

    def adopt_pid(self, run: JobRun) -> dict | None:
        """For an attempt started but not recorded (the service stopped in between): the process
        record that finds it, when this executor can look for one; else None."""
        return None
