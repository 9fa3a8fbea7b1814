"""The job definitions API: recurring jobs (a cron schedule in a time zone and a job spec).

The scheduler submits each definition's runs (scheduler.run_due_definitions); this module
creates, lists, changes and removes the definitions. Reading needs custom:astrago:read (or
jobs) for the owner, changing needs custom:astrago:jobs for the owner.
"""
from __future__ import annotations

from sqlalchemy import select

from .. import scopes
from ..service.declare import needs_scope, operation
from ..service.problems import Problem
from . import store
from .api import JobsHandler, spec_problem
from .cron import check_schedule, next_run
from .model import JobDefinition
from .spec import SpecError

DEF_ID = r"[0-9a-f]{12}"
FIELDS = {"name", "schedule", "timezone", "active", "spec"}


def definition_dict(d: JobDefinition) -> dict:
    return {"id": d.id, "owner": d.owner, "name": d.name, "schedule": d.schedule, "timezone": d.timezone,
            "active": d.active, "spec": d.spec, "next_run_at": store.iso(d.next_run_at),
            "last_run_at": store.iso(d.last_run_at), "last_job_id": d.last_job_id,
            "created_at": store.iso(d.created_at), "updated_at": store.iso(d.updated_at)}


class DefinitionsHandler(JobsHandler):
    def check_definition(self, me: str, body: dict, *, partial: bool = False) -> dict:
        out = {}
        unknown = set(body) - FIELDS
        if unknown:
            raise Problem("invalid-request", f"Unknown field(s) {', '.join(sorted(unknown))}.")
        try:
            if "spec" in body or not partial:
                self.parse_spec(body.get("spec"), me)
                out["spec"] = body["spec"]
            if "schedule" in body or "timezone" in body or not partial:
                if not partial and not body.get("schedule"):
                    raise SpecError("schedule", "schedule is required: a cron expression like '0 3 * * *'.")
                if "schedule" in body:
                    out["schedule"] = body["schedule"]
                if "timezone" in body or not partial:
                    out["timezone"] = body.get("timezone") or "UTC"
        except SpecError as exc:
            raise spec_problem(exc) from None
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
    @operation("createJobDefinition", "A recurring job: a cron schedule in a time zone and a job spec", ok=201,
               body="JobDefinition", response="StoredJobDefinition", errors=(400, 401, 403))
    @needs_scope(scopes.JOBS, action="job_definition.create")
    async def post(self):
        me = self.caller_name
        await self.require(scopes.JOBS, user=me, action="job_definition.create")
        fields = self.check_definition(me, self.json_body())
        try:
            check_schedule(fields["schedule"], fields["timezone"])
        except SpecError as exc:
            raise spec_problem(exc) from None
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
            return definition_dict(d)

        result = await self.db.run(create)
        await self.audit("job_definition.create", "allowed", target=me, detail={"id": result["id"],
                                                                                 "schedule": result["schedule"]})
        self.write_json(result, status=201)

    @operation("listJobDefinitions", "Job definitions: one's own, or everyone's for administrators",
               response="JobDefinitionList", query=[("user", "string")])
    @needs_scope(scopes.READ, action="job_definition.list")
    async def get(self):
        me = self.caller_name
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
            return [definition_dict(d) for d in session.scalars(q.limit(1000))]

        self.write_json({"definitions": await self.db.run(fetch)})


class DefinitionHandler(DefinitionsHandler):
    async def _load(self, definition_id: str, action: str, write: bool) -> dict:
        found = await self.db.run(lambda s: (lambda d: definition_dict(d) if d else None)(
            s.get(JobDefinition, definition_id)))
        if found is None:
            raise Problem("not-found", f"There is no job definition {definition_id}.")
        owner = found["owner"]
        if not (self.has_scope(scopes.JOBS, user=owner) or (not write and self.has_scope(scopes.READ, user=owner))):
            await self.require(scopes.JOBS, user=owner, action=action)
        return found

    @operation("getJobDefinition", "A job definition and its next run", response="StoredJobDefinition",
               errors=(401, 403, 404))
    @needs_scope(scopes.READ, action="job_definition.read")
    async def get(self, definition_id):
        self.write_json(await self._load(definition_id, "job_definition.read", write=False))

    @operation("updateJobDefinition", "Pause or resume (active), or change the schedule, time zone or spec",
               body="JobDefinitionPatch", response="StoredJobDefinition", errors=(400, 401, 403, 404))
    @needs_scope(scopes.JOBS, action="job_definition.update")
    async def patch(self, definition_id):
        found = await self._load(definition_id, "job_definition.update", write=True)
        fields = self.check_definition(found["owner"], self.json_body(), partial=True)
        schedule = fields.get("schedule", found["schedule"])
        tz = fields.get("timezone", found["timezone"])
        try:
            check_schedule(schedule, tz)
        except SpecError as exc:
            raise spec_problem(exc) from None

        def update(session):
            d = session.get(JobDefinition, definition_id)
            for key, value in fields.items():
                setattr(d, key, value)
            d.updated_at = store.utcnow()
            d.next_run_at = next_run(d.schedule, d.timezone, d.updated_at) if d.active else None
            return definition_dict(d)

        result = await self.db.run(update)
        await self.audit("job_definition.update", "allowed", target=found["owner"],
                         detail={"id": definition_id, "changed": sorted(fields)})
        self.write_json(result)

    @operation("deleteJobDefinition", "Remove a job definition (its past jobs stay)", ok=204,
               errors=(401, 403, 404))
    @needs_scope(scopes.JOBS, action="job_definition.delete")
    async def delete(self, definition_id):
        found = await self._load(definition_id, "job_definition.delete", write=True)
        await self.db.run(lambda s: s.delete(s.get(JobDefinition, definition_id)))
        await self.audit("job_definition.delete", "allowed", target=found["owner"], detail={"id": definition_id})
        self.set_status(204)
        self.finish()
