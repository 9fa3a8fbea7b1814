"""The jobs area of the service: submit, list, follow and cancel batch jobs; job definitions.

Who may do what (JupyterHub scopes): submitting and cancelling need custom:astrago:jobs for
the job's owner; reading needs jobs or custom:astrago:read for the owner. Users hold both
filtered to themselves (`!user`), so user B is refused A's jobs (403, audited);
administrators hold them unfiltered.
"""
from __future__ import annotations

import logging

from sqlalchemy import select
from tornado.iostream import StreamClosedError

from .. import scopes
from ..quota.desk import AdmissionError
from ..service.base import APIHandler
from ..service.problems import Problem
from . import logs, states, store
from .area import JobsArea
from .cron import check_schedule, next_run
from .model import Job, JobDefinition
from .openapi_paths import PATHS, SCHEMAS  # noqa: F401 (the area's contract)
from .scheduler import JobConflict, JobScheduler, _limit_s
from .spec import SpecError, parse_job_spec

log = logging.getLogger("astrago.jobs")
JOB_ID = r"(?P<job_id>[^/]+)"  # any name: one that is no job answers "There is no job ..." (not "no API")
DEF_ID = r"(?P<definition_id>[0-9a-f]{12})"


def setup(service) -> None:
    if not hasattr(service, "desk"):
        raise RuntimeError("the jobs area needs the quota area (its admission desk): enable both")
    area = JobsArea.of(service)

    async def active_jobs_using(paths):  # the interface other areas use (teams: a dataset in use is kept)
        return await service.db.run(lambda session: store.active_jobs_using(session, paths))

    service.active_jobs_using = active_jobs_using
    from ..service import pages

    if ("jobs", "Jobs", scopes.READ) not in pages.ADMIN_SECTIONS:
        pages.ADMIN_SECTIONS.append(("jobs", "Jobs", scopes.READ))
    capacity = area.executor.job_capacity()
    if capacity is not None:  # this machine runs every job: bound what runs at once
        from fractions import Fraction

        cores, gib = capacity
        service.desk.job_capacity = (Fraction(cores).limit_denominator(1000), Fraction(gib).limit_denominator(1000))
    note = getattr(area.executor, "limits_note", "")
    service.log.info("jobs: %s executor%s", area.executor.name, f" ({note})" if note else "")


async def background(service) -> None:
    """The scheduling loop: reconcile running jobs once, then schedule and watch."""
    await JobsArea.of(service).scheduler.run()


class JobsHandler(APIHandler):
    @property
    def area(self) -> JobsArea:
        return JobsArea.of(self.service)

    @property
    def scheduler(self) -> JobScheduler:
        return self.area.scheduler

    async def job_for(self, job_id: str, action: str, *, write: bool = False) -> dict:
        """The job as JSON, when the caller may see it (or cancel it, `write`)."""
        found = await self.db.run(lambda s: self._describe(s, job_id))
        if found is None:
            await self.require(action=action)
            raise Problem("not-found", f"There is no job {job_id}. List your jobs with `astrago job list` "
                          "(or %jobs in a notebook).")
        owner = found["owner"]
        allowed = self.has_scope(scopes.JOBS, user=owner) or (not write and self.has_scope(scopes.READ, user=owner))
        if not allowed:
            await self.require(scopes.JOBS, user=owner, action=action)  # audits the refusal, answers 403
        await self.require(action=action)
        return found

    def _describe(self, session, job_id):
        job = session.get(Job, job_id)
        if job is None:
            return None
        return store.describe_jobs(session, self.service.desk, [job])[0]

    async def _attach_datasets(self, spec, me: str, groups: list[str]):
        import dataclasses

        catalog = getattr(self.service, "dataset_catalog", None)
        try:
            if catalog is None:
                raise ValueError("Datasets need the teams area, which this service does not run.")
            env = await catalog.resolve(me, groups, spec.datasets)
        except (LookupError, ValueError) as exc:
            await self.audit("job.submit", "denied", target=me, reason=str(exc))
            raise Problem("not-found" if isinstance(exc, LookupError) else "invalid-request", str(exc),
                          extra={"field": "datasets"}) from None
        return dataclasses.replace(spec, env={**spec.env, **env})

    async def groups_of(self, name: str) -> list[str]:
        model = await self.service.hub_user(name)
        if model is not None:
            return sorted(model.get("groups", []))
        return sorted((self.hub_user or {}).get("groups", []))


def _spec_problem(exc: SpecError) -> Problem:
    return Problem("invalid-request", exc.message, extra={"field": exc.field} if exc.field else {})


class JobCollectionHandler(JobsHandler):
    async def post(self):
        me = (await self.require(action="job.submit"))["name"]
        await self.require(scopes.JOBS, user=me, action="job.submit")
        if self.caller_kind != "user":
            raise Problem("forbidden", "Only users submit jobs (a job runs as its owner's account).")
        body = self.json_body()
        client_key = body.pop("client_key", None) or self.request.headers.get("Idempotency-Key") or None
        if client_key is not None and (not isinstance(client_key, str) or not 0 < len(client_key) <= 255):
            raise Problem("invalid-request", "client_key must be a string of 1 to 255 characters.",
                          extra={"field": "client_key"})
        cfg = self.area.config
        if client_key:  # a retry of a submission that went through: the same job, never a second one
            again = await self.db.run(lambda s: (lambda j: store.describe_jobs(s, self.service.desk, [j])[0]
                                                 if j else None)(store.find_by_key(s, me, client_key)))
            if again is not None:
                self.set_header("Location", f"{self.service.prefix}api/jobs/{again['id']}")
                self.write_json(again, status=200)
                return
        try:
            spec = parse_job_spec(body, home=self.area.home_of(me), cluster=self.area.executor.runs_in_containers,
                                  max_runtime_limit_s=_limit_s(cfg), default_cpu=cfg.default_cpu,
                                  default_memory_gib=cfg.default_memory_gib)
        except SpecError as exc:
            await self.audit("job.submit", "denied", target=me, reason=exc.message)
            raise _spec_problem(exc) from None
        groups = await self.groups_of(me)
        if spec.datasets:  # read-only datasets: their paths as ASTRAGO_DATASET_<NAME> (the teams area's catalog)
            spec = await self._attach_datasets(spec, me, groups)

        def submit(session):
            existing = store.find_by_key(session, me, client_key)
            job = existing or store.submit(session, self.service.desk, spec, me, groups, self.area.executor.name,
                                           client_key=client_key)
            return store.describe_jobs(session, self.service.desk, [job])[0], existing is None

        try:
            job, created = await self.db.run(submit)
        except AdmissionError as exc:
            await self.audit("job.submit", "denied", target=me, reason=exc.detail, detail={"slice": spec.slice})
            raise Problem(exc.kind, exc.detail, extra=exc.extra) from None
        if not created:
            self.set_header("Location", f"{self.service.prefix}api/jobs/{job['id']}")
            self.write_json(job, status=200)
            return
        await self.audit("job.submit", "allowed", target=me,
                         detail={"id": job["id"], "kind": spec.kind, "slice": spec.slice, "name": spec.name})
        self.scheduler.changed()
        self.scheduler.wake()
        self.set_header("Location", f"{self.service.prefix}api/jobs/{job['id']}")
        self.write_json(job, status=201)

    async def get(self):
        me = (await self.require(action="job.list"))["name"]
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
            return store.describe_jobs(session, self.service.desk, session.scalars(q).all())

        self.write_json({"jobs": await self.db.run(fetch)})


class JobHandler(JobsHandler):
    async def get(self, job_id):
        job = await self.job_for(job_id, "job.read")
        job["events"] = await self.db.run(store.events_of, job_id)
        self.write_json(job)


class JobCancelHandler(JobsHandler):
    async def post(self, job_id):
        job = await self.job_for(job_id, "job.cancel", write=True)
        try:
            result = await self.scheduler.cancel(job_id, self.caller_name)
        except JobConflict as exc:
            raise Problem("conflict", str(exc)) from None
        await self.audit("job.cancel", "allowed", target=job["owner"], detail={"id": job_id,
                                                                                "was": job["status"]})
        self.write_json(result)


async def _log_state(handler: JobsHandler, job_id: str):
    def fetch(session):
        job = session.get(Job, job_id)
        return store.describe_jobs(session, handler.service.desk, [job])[0], job.attempt, job.log_path

    return await handler.db.run(fetch)


class JobLogHandler(JobsHandler):
    async def get(self, job_id):
        await self.job_for(job_id, "job.log")
        try:
            offset = max(0, int(self.get_argument("offset", "0")))
            limit = max(1, min(int(self.get_argument("limit", str(1024 * 1024))), 8 * 1024 * 1024))
        except ValueError:
            raise Problem("invalid-request", "offset and limit must be whole numbers.") from None
        job, attempt, path = await _log_state(self, job_id)
        import asyncio

        data, size = await asyncio.to_thread(logs.read_from, path, offset, limit)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("X-Log-Offset", str(offset))
        self.set_header("X-Log-Next-Offset", str(offset + len(data)))
        self.set_header("X-Log-Size", str(size))
        self.set_header("X-Job-Status", job["status"])
        self.set_header("X-Job-Attempt", str(attempt))
        self.set_header("Cache-Control", "no-store")
        self.finish(data)


class JobEventsHandler(JobsHandler):
    closed = False

    def on_connection_close(self):
        self.closed = True

    async def get(self, job_id):
        await self.job_for(job_id, "job.follow")
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
            await logs.follow(self, self.scheduler, lambda: _log_state(self, job_id), job_id, offset, attempt)
        except StreamClosedError:
            return
        self.finish()


# -- job definitions ----------------------------------------------------------------

def _definition_dict(d: JobDefinition) -> dict:
    return {"id": d.id, "owner": d.owner, "name": d.name, "schedule": d.schedule, "timezone": d.timezone,
            "active": d.active, "spec": d.spec, "next_run_at": store.iso(d.next_run_at),
            "last_run_at": store.iso(d.last_run_at), "last_job_id": d.last_job_id,
            "created_at": store.iso(d.created_at), "updated_at": store.iso(d.updated_at)}


class DefinitionsHandler(JobsHandler):
    def check_definition(self, me: str, body: dict, *, partial: bool = False) -> dict:
        out = {}
        unknown = set(body) - {"name", "schedule", "timezone", "active", "spec"}
        if unknown:
            raise Problem("invalid-request", f"Unknown field(s) {', '.join(sorted(unknown))}.")
        cfg = self.area.config
        try:
            if "spec" in body or not partial:
                parse_job_spec(body.get("spec"), home=self.area.home_of(me), cluster=self.area.executor.runs_in_containers,
                               max_runtime_limit_s=_limit_s(cfg))
                out["spec"] = body["spec"]
            if "schedule" in body or "timezone" in body or not partial:
                if not partial and not body.get("schedule"):
                    raise SpecError("schedule", "schedule is required: a cron expression like '0 3 * * *'.")
                if "schedule" in body:
                    out["schedule"] = body["schedule"]
                if "timezone" in body or not partial:
                    out["timezone"] = body.get("timezone") or "UTC"
        except SpecError as exc:
            raise _spec_problem(exc) from None
        if "active" in body:
            if not isinstance(body["active"], bool):
                raise Problem("invalid-request", "active must be true or false.")
            out["active"] = body["active"]
        if "name" in body:
            if not isinstance(body["name"], str) or not 0 < len(body["name"]) <= 100:
                raise Problem("invalid-request", "name must be 1 to 100 characters.")
            out["name"] = body["name"]
        return out


class DefinitionCollectionHandler(DefinitionsHandler):
    async def post(self):
        me = (await self.require(action="job_definition.create"))["name"]
        await self.require(scopes.JOBS, user=me, action="job_definition.create")
        fields = self.check_definition(me, self.json_body())
        try:
            check_schedule(fields["schedule"], fields["timezone"])
        except SpecError as exc:
            raise _spec_problem(exc) from None
        groups = await self.groups_of(me)

        def create(session):
            now = store.utcnow()
            d = JobDefinition(id=store.new_id(), owner=me, groups=groups,
                              name=fields.get("name") or fields["spec"].get("name") or "recurring job",
                              schedule=fields["schedule"], timezone=fields["timezone"],
                              active=fields.get("active", True), spec=fields["spec"],
                              next_run_at=next_run(fields["schedule"], fields["timezone"], now),
                              created_at=now, updated_at=now)
            session.add(d)
            session.flush()
            return _definition_dict(d)

        result = await self.db.run(create)
        await self.audit("job_definition.create", "allowed", target=me, detail={"id": result["id"],
                                                                                 "schedule": result["schedule"]})
        self.write_json(result, status=201)

    async def get(self):
        me = (await self.require(action="job_definition.list"))["name"]
        user = self.get_argument("user", None)
        if user is None and not self.has_scope(scopes.READ):
            user = me
        if user is not None:
            if not (self.has_scope(scopes.READ, user=user) or self.has_scope(scopes.JOBS, user=user)):
                await self.require(scopes.READ, user=user, action="job_definition.list")

        def fetch(session):
            q = select(JobDefinition).order_by(JobDefinition.created_at.desc())
            if user is not None:
                q = q.where(JobDefinition.owner == user)
            return [_definition_dict(d) for d in session.scalars(q.limit(1000))]

        self.write_json({"definitions": await self.db.run(fetch)})


class DefinitionHandler(DefinitionsHandler):
    async def _load(self, definition_id: str, action: str, write: bool) -> dict:
        found = await self.db.run(lambda s: (lambda d: _definition_dict(d) if d else None)(
            s.get(JobDefinition, definition_id)))
        if found is None:
            await self.require(action=action)
            raise Problem("not-found", f"There is no job definition {definition_id}.")
        owner = found["owner"]
        if not (self.has_scope(scopes.JOBS, user=owner) or (not write and self.has_scope(scopes.READ, user=owner))):
            await self.require(scopes.JOBS, user=owner, action=action)
        return found

    async def get(self, definition_id):
        self.write_json(await self._load(definition_id, "job_definition.read", write=False))

    async def patch(self, definition_id):
        found = await self._load(definition_id, "job_definition.update", write=True)
        fields = self.check_definition(found["owner"], self.json_body(), partial=True)
        schedule = fields.get("schedule", found["schedule"])
        tz = fields.get("timezone", found["timezone"])
        try:
            check_schedule(schedule, tz)
        except SpecError as exc:
            raise _spec_problem(exc) from None

        def update(session):
            d = session.get(JobDefinition, definition_id)
            for key, value in fields.items():
                setattr(d, key, value)
            d.updated_at = store.utcnow()
            d.next_run_at = next_run(d.schedule, d.timezone, d.updated_at) if d.active else None
            return _definition_dict(d)

        result = await self.db.run(update)
        await self.audit("job_definition.update", "allowed", target=found["owner"],
                         detail={"id": definition_id, "changed": sorted(fields)})
        self.write_json(result)

    async def delete(self, definition_id):
        found = await self._load(definition_id, "job_definition.delete", write=True)
        await self.db.run(lambda s: s.delete(s.get(JobDefinition, definition_id)))
        await self.audit("job_definition.delete", "allowed", target=found["owner"], detail={"id": definition_id})
        self.set_status(204)
        self.finish()


def handlers(prefix: str) -> list:
    from .page import page_handlers

    api = prefix + "api/"
    return page_handlers(prefix) + [
        (api + "jobs", JobCollectionHandler),
        (api + rf"jobs/{JOB_ID}", JobHandler),
        (api + rf"jobs/{JOB_ID}/cancel", JobCancelHandler),
        (api + rf"jobs/{JOB_ID}/log", JobLogHandler),
        (api + rf"jobs/{JOB_ID}/events", JobEventsHandler),
        (api + "job-definitions", DefinitionCollectionHandler),
        (api + rf"job-definitions/{DEF_ID}", DefinitionHandler),
    ]
