"""The jobs API: submit, list, follow and cancel batch jobs.

Who may do what (JupyterHub scopes): submitting and cancelling need custom:astrago:jobs for
the job's owner; reading needs jobs or custom:astrago:read for the owner. Users hold both
filtered to themselves (`!user`), so user B is refused A's jobs (403, audited);
administrators hold them unfiltered. `@needs_scope` checks that the caller holds the scope in
some form; the handler then checks it for the job's owner.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging

from sqlalchemy import select
from tornado.iostream import StreamClosedError

from .. import scopes
from ..service.base import APIHandler
from ..service.declare import needs_scope, operation
from ..service.interfaces.admission import AdmissionError
from ..service.interfaces.environments import EnvironmentRefused
from ..service.problems import Problem
from . import logs, states, store
from .model import Job
from .scheduler import JobConflict, limit_s
from .schemas import JOB_EVENTS, JOB_LOG
from .spec import ENVIRONMENT_PREFIX_VAR, ENVIRONMENT_VAR, SpecError, parse_job_spec

log = logging.getLogger("astrago.jobs")
#: any name: one that is no job answers "There is no job ..." (not "no API")
JOB_ID = r"[^/]+"
LOG_HEADERS = [("X-Log-Offset", "the offset asked for"), ("X-Log-Next-Offset", "where to continue"),
               ("X-Log-Size", "the log's size now"), ("X-Job-Status", "the job's status"),
               ("X-Job-Attempt", "the attempt whose log this is"),
               ("X-Job-Replica", "the replica whose log this is (0: the master, launcher or first process)")]
REPLICA_QUERY = ("replica", {"type": "integer", "minimum": 0, "maximum": 64,
                             "description": "whose log: 0 (default) the master, the MPI launcher or the first "
                             "process; 1 .. replicas - 1 the others"})


def spec_problem(exc: SpecError) -> Problem:
    return Problem("invalid-request", exc.message, extra={"field": exc.field} if exc.field else {})


class JobsHandler(APIHandler):
    """Base of the jobs API's handlers; `self.area` is the JobsArea."""

    @property
    def scheduler(self):
        return self.area.scheduler

    @property
    def ledger(self):
        return self.area.ledger

    def describe(self, session, jobs) -> list[dict]:
        return store.describe_jobs(session, self.ledger, jobs)

    async def job_for(self, job_id: str, action: str, *, write: bool = False) -> dict:
        """The job as JSON, when the caller may see it (or cancel it, `write`)."""
        found = await self.db.run(lambda s: (lambda job: self.describe(s, [job])[0] if job else None)(
            s.get(Job, job_id)))
        if found is None:
            raise Problem("not-found", f"There is no job {job_id}. List your jobs with `astrago job list` "
                          "(or %jobs in a notebook).")
        owner = found["owner"]
        allowed = self.has_scope(scopes.JOBS, user=owner) or (not write and self.has_scope(scopes.READ, user=owner))
        if not allowed:
            await self.require(scopes.JOBS, user=owner, action=action)  # audits the refusal, answers 403
        return found

    async def groups_of(self, name: str) -> list[str]:
        model = await self.area.context.hub_user(name)
        if model is not None:
            return sorted(model.get("groups", []))
        return sorted((self.hub_user or {}).get("groups", []))

    def parse_spec(self, body, owner: str, **defaults):
        executor = self.area.executor
        return parse_job_spec(body, home=self.area.home_of(owner), cluster=executor.runs_in_containers,
                              max_runtime_limit_s=limit_s(self.area.settings),
                              max_replicas=self.area.settings.max_replicas_for(owner), **defaults)


class JobCollectionHandler(JobsHandler):
    @operation("submitJob", "Submit a notebook, script or command as a job on a slice",
               description="201 with the job, QUEUED (admitted at once or waiting, with the reason), or refused "
               "(invalid-request, invalid-slice, capacity-unavailable, quota-exceeded: over quota, or as many jobs "
               "waiting as the quota's queued_jobs). With a client_key (or an Idempotency-Key header) a retry "
               "returns the job the first request made (200), never a second one.",
               ok=201, body="JobSubmission", response="Job", errors=(400, 401, 403, 404, 409, 422),
               headers=[("Location", "the job")],
               request_headers=[("Idempotency-Key", False, "as client_key")],
               other={200: {"description": "The job an earlier submission with this client_key made",
                            "schema": "Job"}})
    @needs_scope(scopes.JOBS, action="job.submit")
    async def post(self):
        me = self.caller_name
        await self.require(scopes.JOBS, user=me, action="job.submit")
        if self.caller_kind != "user":
            raise Problem("forbidden", "Only users submit jobs (a job runs as its owner's account).")
        body = self.json_body()
        client_key = body.pop("client_key", None) or self.request.headers.get("Idempotency-Key") or None
        if client_key is not None and (not isinstance(client_key, str) or not 0 < len(client_key) <= 255):
            raise Problem("invalid-request", "client_key must be a string of 1 to 255 characters.",
                          extra={"field": "client_key"})
        if client_key:  # a retry of a submission that went through: the same job, never a second one
            again = await self.db.run(lambda s: (lambda j: self.describe(s, [j])[0] if j else None)(
                store.find_by_key(s, me, client_key)))
            if again is not None:
                return self._answer(again, 200)
        cfg = self.area.settings
        try:
            spec = self.parse_spec(body, me, default_cpu=cfg.default_cpu, default_memory_gib=cfg.default_memory_gib)
        except SpecError as exc:
            await self.audit("job.submit", "denied", target=me, reason=exc.message)
            raise spec_problem(exc) from None
        groups = await self.groups_of(me)
        if spec.datasets:  # read-only datasets: their paths as ASTRAGO_DATASET_<NAME> (the teams area's catalog)
            spec = await self._attach_datasets(spec, me, groups)
        if spec.environment:  # its Python (one machine) or image (a cluster), if the owner's teams allow it
            spec = await self._in_environment(spec, me, groups)

        def submit(session):
            existing = store.find_by_key(session, me, client_key)
            job = existing or store.submit(session, self.ledger, spec, me, groups, self.area.executor.name,
                                           client_key=client_key)
            return self.describe(session, [job])[0], existing is None

        try:
            job, created = await self.db.run(submit)
        except AdmissionError as exc:
            await self.audit("job.submit", "denied", target=me, reason=exc.detail, detail={"slice": spec.slice})
            raise Problem(exc.kind, exc.detail, extra=exc.extra) from None
        if not created:
            return self._answer(job, 200)
        await self.audit("job.submit", "allowed", target=me,
                         detail={"id": job["id"], "kind": spec.kind, "slice": spec.slice, "name": spec.name})
        self.scheduler.changed()
        self.scheduler.wake()
        self._answer(job, 201)

    def _answer(self, job: dict, status: int) -> None:
        self.set_header("Location", f"{self.area.context.prefix}api/jobs/{job['id']}")
        self.write_json(job, status=status)

    async def _attach_datasets(self, spec, me: str, groups: list[str]):
        catalog = self.area.dataset_catalog()
        try:
            if catalog is None:
                raise ValueError("Datasets need the teams area, which this service does not run.")
            env = await catalog.resolve(me, groups, spec.datasets)
        except (LookupError, ValueError) as exc:
            await self.audit("job.submit", "denied", target=me, reason=str(exc))
            raise Problem("not-found" if isinstance(exc, LookupError) else "invalid-request", str(exc),
                          extra={"field": "datasets"}) from None
        return dataclasses.replace(spec, env={**spec.env, **env})

    async def _in_environment(self, spec, me: str, groups: list[str]):
        catalog = self.area.environment_catalog()
        try:
            if catalog is None:
                raise EnvironmentRefused("invalid-request", "Environments need the environments area, which this "
                                         "service does not run.")
            record = catalog.usable_by(spec.environment, me, groups)
            if record.image and spec.image and spec.image != record.image:
                raise EnvironmentRefused("invalid-request", f"Give an image or an environment, not both (the "
                                         f"environment {record.name} is the image {record.image}).")
        except EnvironmentRefused as exc:
            await self.audit("job.submit", "denied", target=me, reason=exc.detail)
            raise Problem(exc.kind, exc.detail, extra={"field": "environment"}) from None
        env = {**spec.env, ENVIRONMENT_VAR: record.name}
        if record.prefix:
            env[ENVIRONMENT_PREFIX_VAR] = record.prefix
        return dataclasses.replace(spec, env=env, image=record.image or spec.image)

    @operation("listJobs", "Jobs, newest first: one's own, or everyone's for AstraGo administrators",
               response="JobList", errors=(400, 401, 403),
               query=[("user", "string"), ("status", {"type": "string", "enum": list(states.STATUSES)}),
                      ("limit", {"type": "integer", "minimum": 1, "maximum": 1000})])
    @needs_scope(scopes.READ, action="job.list")
    async def get(self):
        me = self.caller_name
        user = self.get_argument("user", None)
        status = self.get_argument("status", None)
        if status is not None and status.upper() not in states.STATUSES:
            raise Problem("invalid-request", f"status must be one of {', '.join(states.STATUSES)}.")
        try:
            limit = max(1, min(int(self.get_argument("limit", "200")), 1000))
        except ValueError:
            raise Problem("invalid-request", "limit must be a whole number.") from None
        see_all = self.has_scope(scopes.READ) or self.has_scope(scopes.JOBS)
        if user is None and not see_all:
            user = me
        if user is not None and not (self.has_scope(scopes.READ, user=user) or self.has_scope(scopes.JOBS, user=user)):
            await self.require(scopes.READ, user=user, action="job.list")

        def fetch(session):
            q = select(Job).order_by(Job.created_at.desc()).limit(limit)
            if user is not None:
                q = q.where(Job.owner == user)
            if status is not None:
                q = q.where(Job.status == status.upper())
            return self.describe(session, session.scalars(q).all())

        self.write_json({"jobs": await self.db.run(fetch)})


class JobHandler(JobsHandler):
    @operation("getJob", "A job, its queue position or process, and its status history", response="JobWithEvents",
               errors=(401, 403, 404))
    @needs_scope(scopes.READ, action="job.read")
    async def get(self, job_id):
        job = await self.job_for(job_id, "job.read")
        job["events"] = await self.db.run(store.events_of, job_id)
        self.write_json(job)


class JobCancelHandler(JobsHandler):
    @operation("cancelJob", "Cancel a job: a queued one leaves the queue; a running one is stopped (SIGTERM, "
               "then SIGKILL) and its allocation released before the answer", response="Job",
               errors=(401, 403, 404, 409))
    @needs_scope(scopes.JOBS, action="job.cancel")
    async def post(self, job_id):
        job = await self.job_for(job_id, "job.cancel", write=True)
        try:
            result = await self.scheduler.cancel(job_id, self.caller_name)
        except JobConflict as exc:
            raise Problem("conflict", str(exc)) from None
        await self.audit("job.cancel", "allowed", target=job["owner"], detail={"id": job_id, "was": job["status"]})
        self.write_json(result)


async def log_state(handler: JobsHandler, job_id: str, replica: int = 0):
    """(the job as JSON, its attempt, the replica's log path) now."""
    def fetch(session):
        job = session.get(Job, job_id)
        return handler.describe(session, [job])[0], job.attempt, logs.replica_log_path(job.log_path, replica)

    return await handler.db.run(fetch)


def replica_argument(handler: JobsHandler, job: dict) -> int:
    """The `replica` query argument, checked against the job's replicas."""
    raw = handler.get_argument("replica", "0")
    try:
        replica = int(raw)
    except ValueError:
        raise Problem("invalid-request", f"replica must be a whole number, not {raw!r}.",
                      extra={"field": "replica"}) from None
    if not 0 <= replica < job["replicas"]:
        count = job["replicas"]
        raise Problem("invalid-request", f"Job {job['id']} has {count} replica{'s' if count != 1 else ''}: replica "
                      f"must be from 0 to {count - 1}.", extra={"field": "replica"})
    return replica


class JobLogHandler(JobsHandler):
    @operation("getJobLog", "The log of the job's current attempt (of one replica: `replica`) from a byte offset "
               "(X-Log-Next-Offset says where to continue)", response=JOB_LOG, content="text/plain",
               errors=(400, 401, 403, 404),
               query=[("offset", {"type": "integer", "minimum": 0}),
                      ("limit", {"type": "integer", "minimum": 1, "maximum": 8 * 1024 * 1024}), REPLICA_QUERY],
               headers=LOG_HEADERS)
    @needs_scope(scopes.READ, action="job.log")
    async def get(self, job_id):
        replica = replica_argument(self, await self.job_for(job_id, "job.log"))
        try:
            offset = max(0, int(self.get_argument("offset", "0")))
            limit = max(1, min(int(self.get_argument("limit", str(1024 * 1024))), 8 * 1024 * 1024))
        except ValueError:
            raise Problem("invalid-request", "offset and limit must be whole numbers.") from None
        job, attempt, path = await log_state(self, job_id, replica)
        data, size = await asyncio.to_thread(logs.read_from, path, offset, limit)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("X-Log-Offset", str(offset))
        self.set_header("X-Log-Next-Offset", str(offset + len(data)))
        self.set_header("X-Log-Size", str(size))
        self.set_header("X-Job-Status", job["status"])
        self.set_header("X-Job-Attempt", str(attempt))
        self.set_header("X-Job-Replica", str(replica))
        self.set_header("Cache-Control", "no-store")
        self.finish(data)


class JobEventsHandler(JobsHandler):
    closed = False

    def on_connection_close(self):
        self.closed = True

    @operation("followJob", "Server-sent events: the job's log as it is written, its status whenever it changes, "
               "and a final `end`; Last-Event-ID resumes; `replica` follows another replica's log",
               response=JOB_EVENTS, content="text/event-stream",
               errors=(400, 401, 403, 404), query=[("offset", {"type": "integer", "minimum": 0}), REPLICA_QUERY],
               request_headers=[("Last-Event-ID", False, "<attempt>:<offset> of the last event received")])
    @needs_scope(scopes.READ, action="job.follow")
    async def get(self, job_id):
        replica = replica_argument(self, await self.job_for(job_id, "job.follow"))
        attempt, offset = logs.parse_event_id(self.request.headers.get("Last-Event-ID"))
        if self.get_argument("offset", None) is not None:
            try:
                offset = max(0, int(self.get_argument("offset")))
            except ValueError:
                raise Problem("invalid-request", "offset must be a whole number.") from None
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Accel-Buffering", "no")
        self.write("retry: 2000\n\n")
        try:
            await self.flush()
            await logs.follow(self, self.scheduler, lambda: log_state(self, job_id, replica), job_id, offset, attempt)
        except StreamClosedError:
            return
        self.finish()
