"""The one scheduling loop of the jobs area (a background task of the service).

Each cycle: start the runs of due job definitions, run the admission ledger's fair-share
cycle (jobs and workspaces share it), start every job whose admission came through, and
watch running jobs (exit, max runtime, admissions released behind their back). A
submission, a cancellation or an ended job wakes the loop at once; otherwise it looks every
`cycle_interval` seconds and checks processes every `poll_interval`.

At start it first reconciles: every job the database says is RUNNING is looked for (by pid
and start time, or in the cluster by its Job object). A live one is watched again; one that
ended while the service was down gets its real exit status when it left one, otherwise it
is FAILED with the reason. Nothing is started again unless the job has retries left.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from datetime import datetime, timezone

from . import states, store
from .cron import next_run
from .executors.base import ExecutorError, Exit, JobRun
from .model import Job
from .spec import SpecError, parse_job_spec

log = logging.getLogger("astrago.jobs")


class JobConflict(Exception):
    """A request that does not fit the job's state (e.g. cancelling a finished job)."""


class JobScheduler:
    """`db`: the service's database; `ledger`: the AdmissionLedger; `home_of(user)`: a user's
    storage root (SpecError when they can have none)."""

    def __init__(self, db, ledger, config, executor, home_of):
        self.db = db
        self.ledger = ledger
        self.config = config
        self.executor = executor
        self.home_of = home_of
        self.running: dict[str, JobRun] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._wake: asyncio.Event | None = None
        self._changed: asyncio.Event | None = None
        self.version = 0  # bumped on every status change (server-sent events watch it)
        self.cycles = 0
        self.ready = False

    # -- signalling ----------------------------------------------------------

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def changed(self) -> None:
        self.version += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    async def wait_changed(self, timeout: float) -> None:
        if self._changed is None:
            self._changed = asyncio.Event()
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def lock(self, job_id: str) -> asyncio.Lock:
        return self._locks.setdefault(job_id, asyncio.Lock())

    # -- the loop -------------------------------------------------------------------

    async def run(self) -> None:
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        try:
            await self.reconcile()
        except Exception:
            log.exception("reconciling running jobs failed")
        self.ready = True
        last_cycle = 0.0
        while True:
            try:
                if self._wake.is_set() or time.monotonic() - last_cycle >= self.config.cycle_interval:
                    self._wake.clear()
                    last_cycle = time.monotonic()
                    await self.cycle()
                await self.watch()
            except asyncio.CancelledError:
                raise
            except Exception:  # one failing cycle must not end the loop
                log.exception("job scheduling cycle failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self.config.poll_interval)
            except asyncio.TimeoutError:
                pass

    async def cycle(self) -> None:
        self.cycles += 1
        await self.run_due_definitions()
        claimed = await self.db.run(store.schedule_and_claim, self.ledger)
        if claimed:
            self.changed()
        for run in claimed:
            await self.start(run)
        to_stop = await self.db.run(store.orphans, self.ledger)
        for job_id, attempt, why in to_stop:
            run = self.running.get(job_id)
            if run is not None and run.attempt == attempt:
                async with self.lock(job_id):
                    await self.executor.stop(run)
                    await self._finish(run, states.FAILED, why, None, retry=False)

    async def start(self, run: JobRun) -> None:
        async with self.lock(run.id):
            if not await self.db.run(store.still_claimed, self.ledger, run.id, run.attempt):
                return  # cancelled (or its admission released) between the claim and now: never started
            try:
                launch = await self.executor.start(run)
            except ExecutorError as exc:
                log.warning("job %s could not start: %s", run.id, exc)
                await self._finish(run, states.FAILED, f"could not start: {exc}", None, retry=False)
                return
            except Exception as exc:
                log.exception("job %s could not start", run.id)
                await self._finish(run, states.FAILED, f"could not start: {type(exc).__name__}: {exc}", None,
                                   retry=False)
                return
            run = replace(run, process=launch.process, log_path=launch.log_path, outputs=tuple(launch.outputs))
            self.running[run.id] = run
            await self.db.run(store.record_launch, run.id, run.attempt, launch.process, launch.log_path,
                              launch.outputs, launch.note)
            self.changed()

    async def watch(self) -> None:
        """Check every running job once: ended? over its max runtime?"""
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        for job_id, run in list(self.running.items()):
            lock = self.lock(job_id)
            if lock.locked():
                continue  # being cancelled or started right now
            async with lock:
                if self.running.get(job_id) is not run:
                    continue
                if run.max_runtime_s and run.started_at and \
                        (now - run.started_at).total_seconds() > run.max_runtime_s:
                    await self.executor.stop(run)
                    await self._finish(run, states.TIMED_OUT,
                                       f"ran longer than its max_runtime of {_duration(run.max_runtime_s)}", None)
                    continue
                try:
                    ended = await self.executor.poll(run)
                except Exception:
                    log.exception("checking job %s failed", job_id)
                    continue
                if ended is not None:
                    await self._finish_exit(run, ended)

    async def _finish_exit(self, run: JobRun, ended: Exit) -> None:
        if ended.exit_code is None:
            await self._finish(run, states.FAILED, ended.reason, None)
        else:
            await self._finish(run, states.outcome_of_exit(ended.exit_code), ended.reason, ended.exit_code)

    async def _finish(self, run: JobRun, status: str, reason: str, exit_code, retry: bool = True) -> dict | None:
        self.running.pop(run.id, None)
        result = await self.db.run(store.finish, self.ledger, run.id, run.attempt, status, reason, exit_code, retry)
        if result is not None:
            log.info("job %s attempt %d: %s (%s)", run.id, run.attempt, result["status"], reason)
        self.changed()
        self.wake()  # its allocation is free: someone may be admitted
        return result

    # -- requests from the API -----------------------------------------------------

    async def cancel(self, job_id: str, actor: str) -> dict:
        async with self.lock(job_id):
            done = await self.db.run(store.cancel_waiting, self.ledger, job_id, actor)
            if done is not None:
                self.changed()
                self.wake()
                return done
            status = await self.db.run(store.request_cancel, job_id)
            if status in states.TERMINAL:
                raise JobConflict(f"Job {job_id} has already ended ({status}); there is nothing to cancel.")
            if status != states.RUNNING:
                raise JobConflict(f"Job {job_id} is {status}; try again in a moment.")
            run = self.running.get(job_id)
            if run is None:
                runs = [r for r, _ in await self.db.run(store.running_runs, self.ledger) if r.id == job_id]
                run = runs[0] if runs else None
            if run is not None:
                left = await self.executor.stop(run)
                if left:
                    log.warning("job %s: processes %s survived cancellation", job_id, left)
                result = await self._finish(run, states.CANCELLED, f"cancelled by {actor}", None, retry=False)
                if result is not None:
                    return result
        return await self.db.run(lambda s: store.job_dict(s.get(Job, job_id)))

    # -- restart ---------------------------------------------------------------------

    async def reconcile(self) -> None:
        for run, executor_name in await self.db.run(store.claimed_runs, self.ledger):
            try:
                await self._recover_claim(run, executor_name)
            except Exception:
                log.exception("recovering the start of job %s failed", run.id)
        runs = await self.db.run(store.running_runs, self.ledger)
        for run, executor_name in runs:
            if executor_name != self.executor.name:
                await self._finish(run, states.FAILED, f"it ran on the {executor_name} executor, which this service "
                                   "no longer uses", None, retry=False)
                continue
            if not run.process.get("pid"):
                process = await asyncio.to_thread(self.executor.adopt_pid, run)
                if process:
                    await self.db.run(store.record_process, run.id, run.attempt, process)
                    run = replace(run, process=process)
            try:
                ended = await self.executor.reattach(run)
            except Exception as exc:
                log.exception("re-attaching job %s failed", run.id)
                ended = Exit(None, f"AstraGo could not find it again after a restart: {exc}", lost=True)
            if ended is None:
                self.running[run.id] = run
                log.info("job %s attempt %d re-attached after a restart", run.id, run.attempt)
            else:
                await self._finish_exit(run, ended)
        await self.db.run(store.orphans, self.ledger)

    async def _recover_claim(self, run: JobRun, executor_name: str) -> None:
        """A job claimed for a start when AstraGo stopped: its process runs (RUNNING now), ran and
        left an exit status (RUNNING, then its end), or never ran (it waits to start again)."""
        if executor_name != self.executor.name:
            await self._finish(run, states.FAILED, f"it was to start on the {executor_name} executor, which this "
                               "service no longer uses", None, retry=False)
            return
        process = await asyncio.to_thread(self.executor.adopt_pid, run)
        if process:
            run = replace(run, process={k: v for k, v in process.items() if k != "claimed"})
        ended = await self.executor.reattach(replace(run, process={k: v for k, v in run.process.items()
                                                                   if k != "claimed"}))
        if ended is not None and ended.lost:
            await self.db.run(store.unclaim, run.id, run.attempt)
            log.info("job %s attempt %d never started before the restart: it waits to start", run.id, run.attempt)
            return
        log_file = str(self.executor.log_path(run))
        process = {k: v for k, v in run.process.items() if k != "claimed"}
        await self.db.run(store.record_launch, run.id, run.attempt, process, log_file, [], "")
        run = replace(run, process=process, log_path=log_file)
        if ended is None:
            self.running[run.id] = run
            log.info("job %s attempt %d found running after a restart", run.id, run.attempt)
        else:
            await self._finish_exit(run, ended)

    # -- recurring runs ----------------------------------------------------------------

    async def run_due_definitions(self) -> None:
        """Submit a job for every active definition whose time has come (each in its own
        transaction: one that no longer fits, e.g. its slice is gone, does not stop the others)."""
        now = datetime.now(timezone.utc).replace(tzinfo=None)

        def take_due(session):
            due = []
            for d in store.due_definitions(session, now):
                due.append((d.id, d.owner, list(d.groups), dict(d.spec)))
                d.last_run_at = now
                d.next_run_at = next_run(d.schedule, d.timezone, now)
            return due

        for def_id, owner, groups, raw in await self.db.run(take_due):
            def submit(session, def_id=def_id, owner=owner, groups=groups, raw=raw):
                from .model import JobDefinition

                spec = parse_job_spec(raw, home=self.home_of(owner), cluster=self.executor.runs_in_containers,
                                      max_runtime_limit_s=limit_s(self.config),
                                      max_replicas=self.config.max_replicas_for(owner))
                job = store.submit(session, self.ledger, spec, owner, groups, self.executor.name, definition_id=def_id)
                session.get(JobDefinition, def_id).last_job_id = job.id
                return job.id

            try:
                job_id = await self.db.run(submit)
                log.info("job definition %s started job %s", def_id, job_id)
                self.changed()
            except (SpecError, Exception) as exc:
                log.warning("job definition %s could not run: %s", def_id, exc)


def limit_s(config) -> float | None:
    return config.max_runtime_limit_hours * 3600 if config.max_runtime_limit_hours else None


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"
