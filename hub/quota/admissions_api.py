"""REST API of admissions: ask for a slice, follow and release an allocation, the queue."""
from __future__ import annotations

from sqlalchemy import select

from .. import scopes
from ..service.base import APIHandler
from ..service.declare import LOGGED_IN, needs_scope, operation
from ..service.interfaces.admission import AdmissionError, AdmissionRequest
from ..service.problems import Problem
from .models import Allocation
from .store import from_ts


def problem_of(exc: AdmissionError) -> Problem:
    return Problem(exc.kind, exc.detail, extra=exc.extra)


def _float(body: dict, key: str, default: float = 0.0) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise Problem("invalid-request", f"{key} must be a number >= 0.")
    return float(value)


class QuotaHandler(APIHandler):
    """A handler of the quota area: `self.area` is the QuotaArea, `self.desk` its ledger."""

    @property
    def desk(self):
        return self.area.desk


class AdmissionsHandler(QuotaHandler):
    @operation("createAdmission", "Ask to run a workspace or job on a slice: admitted (201) with a placement, "
               "queued (202) with a position, or refused (quota-exceeded, invalid-slice, capacity-unavailable)",
               ok=201, response="Allocation", body="AdmissionRequest", errors=(400, 401, 403, 409, 422, 503),
               other={202: {"description": "Queued: waiting for room, with its position", "schema": "Allocation"},
                      200: {"description": "A retry (same client_key) of a request no longer queued or admitted",
                            "schema": "Allocation"}})
    @needs_scope(scopes.ADMISSIONS, action="admission.create")
    async def post(self):
        await self.require(scopes.ADMISSIONS, action="admission.create")
        await self.area.ledger_ready()
        body = self.json_body()
        owner = body.get("owner") or {}
        missing = [k for k in ("user", "slice") if not isinstance(body.get(k), str) or not body.get(k)]
        if not isinstance(owner, dict) or owner.get("kind") not in ("workspace", "job") or not owner.get("id"):
            missing.append("owner {kind: workspace|job, id}")
        if missing:
            raise Problem("invalid-request", f"Missing or invalid: {', '.join(missing)}.")
        groups = body.get("groups") or []
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise Problem("invalid-request", "groups must be a list of group names.")
        priority = body.get("priority", 0)
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise Problem("invalid-request", "priority must be a whole number.")
        replicas = body.get("replicas", 1)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 1:
            raise Problem("invalid-request", "replicas must be a whole number of 1 or more.")
        req = AdmissionRequest(owner_kind=owner["kind"], owner_id=str(owner["id"]), user=body["user"], groups=groups,
                               slice=body["slice"], cpu=_float(body, "cpu"), memory_gib=_float(body, "memory_gib"),
                               client_key=str(body.get("client_key") or ""), priority=priority, replicas=replicas)
        try:
            outcome = await self.db.run(self.desk.admit, req)
        except AdmissionError as exc:
            await self.audit("admission.create", "denied", target=req.user, reason=exc.detail,
                             detail={"slice": req.slice, "owner": owner})
            raise problem_of(exc) from None
        alloc = outcome.allocation
        if outcome.created:
            await self.audit("admission.create", "allowed", target=req.user,
                             detail={"id": alloc["id"], "slice": req.slice, "status": alloc["status"]})
        self.write_json(alloc, status=201 if alloc["status"] == "admitted" else 202 if alloc["status"] == "queued"
                        else 200)


class AdmissionHandler(QuotaHandler):
    async def _load(self, allocation_id: str) -> dict:
        found = await self.db.run(self.desk.describe, allocation_id)
        if found is None:
            await self.require(scopes.ADMISSIONS)  # don't tell strangers what exists
            raise Problem("not-found", f"No admission {allocation_id}.")
        return found

    @operation("getAdmission", "An admission's status and queue position", response="Allocation",
               errors=(401, 403, 404))
    @needs_scope(scopes.READ, action="admission.read")
    async def get(self, allocation_id):
        found = await self._load(allocation_id)
        if not self.has_scope(scopes.ADMISSIONS):
            await self.require(scopes.READ, user=found["user"], action="admission.read")
        self.write_json(found)

    @operation("releaseAdmission", "Release an allocation (or leave the queue)", response="Allocation",
               errors=(401, 403, 404), query=[("reason", "string")])
    @needs_scope(scopes.ADMISSIONS, action="admission.release")
    async def delete(self, allocation_id):
        reason = self.get_argument("reason", "released")
        try:
            outcome = await self.db.run(self.desk.release, allocation_id, reason)
        except AdmissionError as exc:
            raise problem_of(exc) from None
        await self.audit("admission.release", "allowed", target=outcome.allocation["user"],
                         detail={"id": allocation_id, "admitted_now": outcome.admitted_now})
        self.write_json(outcome.allocation)


class AllocationsHandler(QuotaHandler):
    """Live allocations and queued requests: everyone's for admins, one's own otherwise."""

    @operation("listAllocations", "Live allocations and queued requests (one's own unless allowed more)",
               response="AllocationList",
               query=[("user", "string"), ("status", {"type": "string",
                                                      "enum": ["queued", "admitted", "released", "cancelled"]})])
    @needs_scope(scopes.READ, action="allocations.read")
    async def get(self):
        user = self.get_argument("user", None)
        statuses = self.get_arguments("status") or ["admitted", "queued"]
        if user is None and not self.has_scope(scopes.READ):
            user = self.caller_name
        await self.require(scopes.READ, user=user, action="allocations.read")

        def fetch(session):
            q = select(Allocation).where(Allocation.status.in_(statuses)).order_by(Allocation.created_at)
            if user:
                q = q.where(Allocation.user == user)
            rows = session.scalars(q.limit(1000)).all()
            positions = self.desk.positions(session) if any(a.status == "queued" for a in rows) else {}
            return [self.desk.describe(session, a, positions) for a in rows]

        self.write_json({"allocations": await self.db.run(fetch)})


class QueueHandler(QuotaHandler):
    @operation("getQueue", "The queue in fair-share order (one's own entries unless allowed to read everyone's)",
               response="Queue")
    @needs_scope(LOGGED_IN)
    async def get(self):
        see_all = self.has_scope(scopes.READ)
        me = self.caller_name

        def fetch(session):
            waiting = self.desk.waiting(session)
            rows = []
            for pos, (c, reason) in enumerate(waiting, start=1):
                if see_all or c.user == me:
                    rows.append({"position": pos, "id": c.id, "user": c.user, "slice": c.slice, "group": c.group,
                                 "reason": reason, "waiting_since": from_ts(c.created).isoformat() + "Z"})
            return {"length": len(waiting), "entries": rows}

        self.write_json(await self.db.run(fetch))
