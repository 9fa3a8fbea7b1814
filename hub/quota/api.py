"""REST API of the quota area: admissions, allocations, the queue, quotas, usage, requests."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import select

from .. import scopes
from ..service.base import APIHandler
from ..service.problems import Problem
from . import usage as usage_report
from .desk import AdmissionDesk, AdmissionError, AdmissionRequest
from .limits import QuotaLimits, remaining
from .models import Allocation, Quota, QuotaRequest
from .openapi_paths import PATHS, SCHEMAS  # noqa: F401 (the area's contract)


def setup(service) -> None:
    """Build the admission desk over this deployment's inventory and restore the ledger."""
    from .inventory_source import load_inventory

    inventory, note = load_inventory(service)
    service.inventory_note = note
    service.desk = AdmissionDesk(inventory, half_life_s=service.fair_share_half_life_hours * 3600)
    from ..uploads import quota as upload_quota
    from .storage_limit import make_storage_limit_lookup

    upload_quota.storage_limit_lookup = make_storage_limit_lookup(service)
    import asyncio

    service.started_at = datetime.now(timezone.utc).replace(tzinfo=None)
    service.ledger_ready = asyncio.Event()  # set once the round at start has run (see background)
    lost = service.db.run_sync(service.desk.restore)
    if lost:
        service.log.warning("released %d allocation(s) whose devices are gone: %s", len(lost), ", ".join(lost))


async def background(service) -> None:
    """Reconcile allocations with JupyterHub's servers now and every `reconcile_interval`."""
    import asyncio

    from .reconcile import reconcile_at_start, reconcile_once

    try:  # before the first admission: what the service's previous life left held is released
        todo = await reconcile_at_start(service, service.started_at)
        if todo is None:
            service.log.warning("reconcile at start: JupyterHub's API did not answer; admitting anyway")
    except Exception:
        service.log.exception("reconcile at start failed")
    finally:
        service.ledger_ready.set()
    await asyncio.sleep(service.reconcile_interval)
    while True:
        try:
            await reconcile_once(service, grace_s=service.reconcile_grace)
        except Exception:  # a failing round must not end the loop
            service.log.exception("reconcile failed")
        await asyncio.sleep(service.reconcile_interval)


def _problem(exc: AdmissionError) -> Problem:
    return Problem(exc.kind, exc.detail, extra=exc.extra)


def _float(body: dict, key: str, default: float = 0.0) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise Problem("invalid-request", f"{key} must be a number >= 0.")
    return float(value)


class QuotaHandler(APIHandler):
    @property
    def desk(self) -> AdmissionDesk:
        return self.service.desk


async def ledger_ready(service, timeout_s: float = 60.0) -> None:
    """Wait for the round at start (nothing from before is still held); 503 if it takes too long."""
    import asyncio

    ready = getattr(service, "ledger_ready", None)
    if ready is None or ready.is_set():
        return
    try:
        await asyncio.wait_for(ready.wait(), timeout_s)
    except asyncio.TimeoutError:
        raise Problem("unavailable", "AstraGo is still checking what was allocated before it restarted; "
                      "try again in a moment.") from None


class AdmissionsHandler(QuotaHandler):
    async def post(self):
        await self.require(scopes.ADMISSIONS, action="admission.create")
        await ledger_ready(self.service)
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
        req = AdmissionRequest(owner_kind=owner["kind"], owner_id=str(owner["id"]), user=body["user"], groups=groups,
                               slice=body["slice"], cpu=_float(body, "cpu"), memory_gib=_float(body, "memory_gib"),
                               client_key=str(body.get("client_key") or ""), priority=priority)
        try:
            outcome = await self.db.run(self.desk.admit, req)
        except AdmissionError as exc:
            await self.audit("admission.create", "denied", target=req.user, reason=exc.detail,
                             detail={"slice": req.slice, "owner": owner})
            raise _problem(exc) from None
        alloc = outcome.allocation
        if outcome.created:
            await self.audit("admission.create", "allowed", target=req.user,
                             detail={"id": alloc["id"], "slice": req.slice, "status": alloc["status"]})
        self.write_json(alloc, status=201 if alloc["status"] == "admitted" else 202 if alloc["status"] == "queued"
                        else 200)


class AdmissionHandler(QuotaHandler):
    async def _load(self, allocation_id: str) -> dict:
        def fetch(session):
            alloc = session.get(Allocation, allocation_id)
            return None if alloc is None else self.desk.describe(session, alloc)

        found = await self.db.run(fetch)
        if found is None:
            await self.require(scopes.ADMISSIONS)  # don't tell strangers what exists
            raise Problem("not-found", f"No admission {allocation_id}.")
        return found

    async def get(self, allocation_id):
        found = await self._load(allocation_id)
        if not self.has_scope(scopes.ADMISSIONS):
            await self.require(scopes.READ, user=found["user"], action="admission.read")
        self.write_json(found)

    async def delete(self, allocation_id):
        await self.require(scopes.ADMISSIONS, action="admission.release")
        reason = self.get_argument("reason", "released")
        try:
            outcome = await self.db.run(self.desk.release, allocation_id, reason)
        except AdmissionError as exc:
            raise _problem(exc) from None
        await self.audit("admission.release", "allowed", target=outcome.allocation["user"],
                         detail={"id": allocation_id, "admitted_now": outcome.admitted_now})
        self.write_json(outcome.allocation)


class AllocationsHandler(QuotaHandler):
    """Live allocations and queued requests: everyone's for admins, one's own otherwise."""

    async def get(self):
        user = self.get_argument("user", None)
        statuses = self.get_arguments("status") or ["admitted", "queued"]
        if user is None and not self.has_scope(scopes.READ):
            user = (await self.require()).get("name")
        await self.require(scopes.READ, user=user, action="allocations.read")

        def fetch(session):
            q = select(Allocation).where(Allocation.status.in_(statuses)).order_by(Allocation.created_at)
            if user:
                q = q.where(Allocation.user == user)
            return [self.desk.describe(session, a) for a in session.scalars(q).all()[:1000]]

        self.write_json({"allocations": await self.db.run(fetch)})


class QueueHandler(QuotaHandler):
    async def get(self):
        await self.require()
        see_all = self.has_scope(scopes.READ)

        def fetch(session):
            q = self.desk.queue(session)
            rows = []
            for pos, a in enumerate(q, start=1):
                if see_all or a.user == self.caller_name:
                    rows.append({"position": pos, "id": a.id, "user": a.user, "slice": a.slice,
                                 "group": a.accounting_group, "reason": a.reason,
                                 "waiting_since": a.created_at.isoformat() + "Z"})
            return {"length": len(q), "entries": rows}

        self.write_json(await self.db.run(fetch))


class QuotasHandler(QuotaHandler):
    async def get(self):
        await self.require(scopes.QUOTA_ADMIN, action="quota.list")

        def fetch(session):
            return [{"subject": {"kind": r.subject_kind, "name": r.subject_name}, "limits": r.limits,
                     "weight": r.weight, "updated_at": r.updated_at.isoformat() + "Z", "updated_by": r.updated_by}
                    for r in session.scalars(select(Quota).order_by(Quota.subject_kind, Quota.subject_name))]

        self.write_json({"quotas": await self.db.run(fetch)})


class QuotaHandlerOne(QuotaHandler):
    async def put(self, kind, name):
        await self.require(scopes.QUOTA_ADMIN, action="quota.set")
        if kind not in ("user", "group", "default"):
            raise Problem("invalid-request", "The subject kind must be user, group or default.")
        if kind == "default":
            name = "*"
        body = self.json_body()
        try:
            limits = QuotaLimits.from_dict(body.get("limits") or {})
        except ValueError as exc:
            raise Problem("invalid-request", str(exc)) from None
        weight = body.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
            raise Problem("invalid-request", "weight must be a number > 0.")
        actor = self.caller_name

        def store(session):
            row = session.scalars(select(Quota).where(Quota.subject_kind == kind, Quota.subject_name == name)).first()
            before = dict(row.limits) if row else None
            if row is None:
                row = Quota(subject_kind=kind, subject_name=name)
                session.add(row)
            row.limits = limits.to_dict()
            row.weight = float(weight)
            row.updated_by = actor
            row.updated_at = datetime.now(timezone.utc).replace(tzinfo=None)
            session.flush()
            self.desk.quotas_changed()
            admitted = self.desk.schedule(session)  # a raised quota may let queued requests in
            return before, admitted

        before, admitted = await self.db.run(store)
        await self.audit("quota.set", "allowed", target=f"{kind}:{name}",
                         detail={"before": before, "after": limits.to_dict(), "weight": weight,
                                 "admitted_now": admitted})
        self.write_json({"subject": {"kind": kind, "name": name}, "limits": limits.to_dict(), "weight": weight})

    async def delete(self, kind, name):
        await self.require(scopes.QUOTA_ADMIN, action="quota.delete")
        name = "*" if kind == "default" else name

        def drop(session):
            row = session.scalars(select(Quota).where(Quota.subject_kind == kind, Quota.subject_name == name)).first()
            if row is None:
                return None
            before = dict(row.limits)
            session.delete(row)
            self.desk.quotas_changed()
            return before

        before = await self.db.run(drop)
        if before is None:
            raise Problem("not-found", f"No quota for {kind} {name}.")
        await self.audit("quota.delete", "allowed", target=f"{kind}:{name}", detail={"before": before})
        self.set_status(204)
        self.finish()


class UserQuotaHandler(QuotaHandler):
    """A user's effective quota, usage and what is left."""

    async def get(self, name):
        await self.require(scopes.READ, user=name, action="quota.read")
        groups = self.get_arguments("group") or await self._groups_of(name)

        def fetch(session):
            limits = self.desk.limits_for(session, name, groups)
            used = self.desk.usage_of(session, name)
            return {
                "user": name, "groups": groups, "limits": limits.to_dict(),
                "usage": {"gpu_units": float(used.gpu_units), "cpu": float(used.cpu),
                          "memory_gib": float(used.memory_gib), "servers": used.servers,
                          "gpu_hours": round(float(used.gpu_hours), 4)},
                "remaining": remaining(limits, used),
            }

        self.write_json(await self.db.run(fetch))

    async def _groups_of(self, name: str) -> list[str]:
        model = await self.service.hub_user(name)
        return sorted(model.get("groups", [])) if model else []


class OffersHandler(QuotaHandler):
    """What a user may choose in the options form: slices allowed, their cost, what is free."""

    async def get(self, name):
        if not self.has_scope(scopes.ADMISSIONS):
            await self.require(scopes.READ, user=name, action="offers.read")
        groups = self.get_arguments("group")
        if not groups and not self.get_argument("no_groups", None):
            model = await self.service.hub_user(name)
            groups = sorted(model.get("groups", [])) if model else []

        def fetch(session):
            from .offers import build_offers

            limits = self.desk.limits_for(session, name, groups)
            used = self.desk.usage_of(session, name)
            return build_offers(self.desk, limits, used, self.service.inventory_note)

        self.write_json(await self.db.run(fetch))


class UsageHandler(QuotaHandler):
    """GPU-hours per user, group and slice per day; JSON or CSV (?format=csv)."""

    async def get(self):
        user = self.get_argument("user", None)
        group = self.get_argument("group", None)
        if group is not None or user is None:
            await self.require(scopes.QUOTA_ADMIN, action="usage.read")
        else:
            await self.require(scopes.READ, user=user, action="usage.read")
        try:
            end = date.fromisoformat(self.get_argument("to")) if self.get_argument("to", None) else \
                datetime.now(timezone.utc).date()
            start = date.fromisoformat(self.get_argument("from")) if self.get_argument("from", None) else \
                end - timedelta(days=29)
        except ValueError:
            raise Problem("invalid-request", "from and to must be dates like 2026-11-01.") from None
        if start > end:
            raise Problem("invalid-request", "from must not be after to.")
        rows = await self.db.run(lambda s: usage_report.daily_gpu_hours(s, start, end, user=user, group=group))
        if self.get_argument("format", "json") == "csv":
            buf = io.StringIO()
            writer = csv.writer(buf)
            writer.writerow(["day", "user", "group", "slice", "gpu_hours"])
            for r in rows:
                writer.writerow([r["day"], r["user"], r["group"], r["slice"], f"{r['gpu_hours']:.4f}"])
            self.set_header("Content-Type", "text/csv; charset=utf-8")
            self.set_header("Content-Disposition", 'attachment; filename="astrago-usage.csv"')
            self.finish(buf.getvalue())
            return
        self.write_json({"from": start.isoformat(), "to": end.isoformat(), "rows": rows})


class QuotaRequestsHandler(QuotaHandler):
    async def post(self):
        me = (await self.require()).get("name")
        await self.require(scopes.QUOTA_REQUEST, user=me, action="quota_request.create")
        body = self.json_body()
        reason = body.get("reason")
        if not isinstance(reason, str) or len(reason.strip()) < 3:
            raise Problem("invalid-request", "Say why you need more quota (reason).")
        try:
            wanted = QuotaLimits.from_dict(body.get("requested") or {})
        except ValueError as exc:
            raise Problem("invalid-request", str(exc)) from None
        if not wanted.to_dict():
            raise Problem("invalid-request", "requested must name at least one limit, e.g. {\"gpu_units\": 2}.")

        def store(session):
            row = QuotaRequest(user=me, requested=wanted.to_dict(), reason=reason.strip()[:2000])
            session.add(row)
            session.flush()
            return _request_dict(row)

        self.write_json(await self.db.run(store), status=201)

    async def get(self):
        me = (await self.require()).get("name")
        see_all = self.has_scope(scopes.QUOTA_ADMIN)
        status = self.get_argument("status", None)

        def fetch(session):
            q = select(QuotaRequest).order_by(QuotaRequest.id.desc())
            if not see_all:
                q = q.where(QuotaRequest.user == me)
            if status:
                q = q.where(QuotaRequest.status == status)
            return [_request_dict(r) for r in session.scalars(q.limit(500))]

        self.write_json({"requests": await self.db.run(fetch)})


class QuotaDecisionHandler(QuotaHandler):
    async def post(self, request_id):
        await self.require(scopes.QUOTA_ADMIN, action="quota_request.decide")
        body = self.json_body()
        approve = body.get("approve")
        if not isinstance(approve, bool):
            raise Problem("invalid-request", "approve must be true or false.")
        note = str(body.get("note") or "")[:2000]
        actor = self.caller_name

        def decide(session):
            row = session.get(QuotaRequest, int(request_id))
            if row is None:
                raise Problem("not-found", f"No quota request {request_id}.")
            if row.status != "pending":
                raise Problem("conflict", f"Quota request {request_id} was already {row.status}.")
            row.status = "approved" if approve else "denied"
            row.decided_by = actor
            row.decision_note = note
            row.decided_at = datetime.now(timezone.utc).replace(tzinfo=None)
            if approve:
                quota = session.scalars(select(Quota).where(Quota.subject_kind == "user",
                                                            Quota.subject_name == row.user)).first()
                if quota is None:
                    quota = Quota(subject_kind="user", subject_name=row.user, limits={}, weight=1.0)
                    session.add(quota)
                quota.limits = {**(quota.limits or {}), **row.requested}
                quota.updated_by = actor
                session.flush()
                self.desk.quotas_changed()
                self.desk.schedule(session)
            return _request_dict(row)

        result = await self.db.run(decide)
        await self.audit("quota_request.decide", "allowed", target=result["user"],
                         detail={"id": result["id"], "status": result["status"], "requested": result["requested"]})
        self.write_json(result)


def _request_dict(row: QuotaRequest) -> dict:
    return {"id": row.id, "user": row.user, "requested": row.requested, "reason": row.reason, "status": row.status,
            "decided_by": row.decided_by, "decision_note": row.decision_note,
            "created_at": row.created_at.isoformat() + "Z" if row.created_at else None,
            "decided_at": row.decided_at.isoformat() + "Z" if row.decided_at else None}


def handlers(prefix: str) -> list:
    from .pages import page_handlers

    api = prefix + "api/"
    return page_handlers(prefix) + [
        (api + "admissions", AdmissionsHandler),
        (api + r"admissions/(?P<allocation_id>[0-9a-f-]{36})", AdmissionHandler),
        (api + "allocations", AllocationsHandler),
        (api + "queue", QueueHandler),
        (api + "quotas", QuotasHandler),
        (api + r"quotas/(?P<kind>user|group|default)/(?P<name>[^/]+)", QuotaHandlerOne),
        (api + r"users/(?P<name>[^/]+)/quota", UserQuotaHandler),
        (api + r"users/(?P<name>[^/]+)/offers", OffersHandler),
        (api + "usage", UsageHandler),
        (api + "quota-requests", QuotaRequestsHandler),
        (api + r"quota-requests/(?P<request_id>\d+)/decision", QuotaDecisionHandler),
    ]
