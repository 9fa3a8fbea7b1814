"""REST API of quotas: the quotas, a user's quota and offers, usage, quota change requests."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import select

from .. import scopes
from ..service.declare import LOGGED_IN, needs_scope, operation
from ..service.problems import Problem
from .admissions_api import QuotaHandler
from .limits import QuotaLimits, remaining
from .models import Quota, QuotaRequest
from .offers import build_offers


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class QuotasHandler(QuotaHandler):
    @operation("listQuotas", "All quotas (quota admins)", response="QuotaList")
    @needs_scope(scopes.QUOTA_ADMIN, action="quota.list")
    async def get(self):
        def fetch(session):
            return [{"subject": {"kind": r.subject_kind, "name": r.subject_name}, "limits": r.limits,
                     "weight": r.weight, "updated_at": r.updated_at.isoformat() + "Z", "updated_by": r.updated_by}
                    for r in session.scalars(select(Quota).order_by(Quota.subject_kind, Quota.subject_name))]

        self.write_json({"quotas": await self.db.run(fetch)})


class QuotaHandlerOne(QuotaHandler):
    @operation("setQuota", "Set a user's, group's or the default quota", response="QuotaSet", body="QuotaBody",
               errors=(400, 401, 403))
    @needs_scope(scopes.QUOTA_ADMIN, action="quota.set")
    async def put(self, kind, name):
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
            row.updated_at = _utcnow()
            session.flush()
            self.desk.quotas_changed()
            admitted = self.desk.schedule(session)  # a raised quota may let queued requests in
            return before, admitted

        before, admitted = await self.db.run(store)
        await self.audit("quota.set", "allowed", target=f"{kind}:{name}",
                         detail={"before": before, "after": limits.to_dict(), "weight": weight,
                                 "admitted_now": admitted})
        self.write_json({"subject": {"kind": kind, "name": name}, "limits": limits.to_dict(), "weight": weight})

    @operation("deleteQuota", "Remove a quota", ok=204, errors=(401, 403, 404))
    @needs_scope(scopes.QUOTA_ADMIN, action="quota.delete")
    async def delete(self, kind, name):
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


async def _groups(handler, name: str) -> list[str]:
    model = await handler.area.context.hub_user(name)
    return sorted(model.get("groups", [])) if model else []


class UserQuotaHandler(QuotaHandler):
    """A user's effective quota, usage and what is left."""

    @operation("getUserQuota", "A user's effective quota, usage and what is left", response="UserQuota",
               query=[("group", "string")])
    @needs_scope(scopes.READ, action="quota.read")
    async def get(self, name):
        await self.require(scopes.READ, user=name, action="quota.read")
        groups = self.get_arguments("group") or await _groups(self, name)

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


class OffersHandler(QuotaHandler):
    """What a user may choose in the options form: slices allowed, their cost, what is free."""

    @operation("getUserOffers", "Slices a user may choose, their cost and availability", response="Offers",
               query=[("group", "string"), ("no_groups", "string")])
    @needs_scope(scopes.READ, action="offers.read")
    async def get(self, name):
        if not self.has_scope(scopes.ADMISSIONS):
            await self.require(scopes.READ, user=name, action="offers.read")
        groups = self.get_arguments("group")
        if not groups and not self.get_argument("no_groups", None):
            groups = await _groups(self, name)

        def fetch(session):
            limits = self.desk.limits_for(session, name, groups)
            used = self.desk.usage_of(session, name)
            return build_offers(self.desk, limits, used, self.area.inventory_note)

        self.write_json(await self.db.run(fetch))


class UsageHandler(QuotaHandler):
    """GPU-hours per user, group and slice per day; JSON or CSV (?format=csv)."""

    @operation("getUsage", "GPU-hours per user, group and slice per day (JSON, or CSV with ?format=csv: "
               "day,user,group,slice,gpu_hours)", response="UsageReport", errors=(400, 401, 403),
               alternatives={"text/csv": {"type": "string"}},
               query=[("user", "string"), ("group", "string"), ("from", {"type": "string", "format": "date"}),
                      ("to", {"type": "string", "format": "date"}),
                      ("format", {"type": "string", "enum": ["json", "csv"]})])
    @needs_scope(scopes.READ, action="usage.read")
    async def get(self):
        user = self.get_argument("user", None)
        group = self.get_argument("group", None)
        if group is not None or user is None:
            await self.require(scopes.QUOTA_ADMIN, action="usage.read")
        else:
            await self.require(scopes.READ, user=user, action="usage.read")
        try:
            end = date.fromisoformat(self.get_argument("to")) if self.get_argument("to", None) else _utcnow().date()
            start = date.fromisoformat(self.get_argument("from")) if self.get_argument("from", None) else \
                end - timedelta(days=29)
        except ValueError:
            raise Problem("invalid-request", "from and to must be dates like 2026-11-01.") from None
        if start > end:
            raise Problem("invalid-request", "from must not be after to.")
        reader = self.area.reader
        rows = await self.db.run(lambda s: reader.daily_gpu_hours(s, start, end, user=user, group=group))
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
    @operation("createQuotaRequest", "Ask for more quota, with a reason", ok=201, response="QuotaRequest",
               body="QuotaRequestBody", errors=(400, 401, 403))
    @needs_scope(scopes.QUOTA_REQUEST, action="quota_request.create")
    async def post(self):
        me = self.caller_name
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
            return request_dict(row)

        self.write_json(await self.db.run(store), status=201)

    @operation("listQuotaRequests", "Quota change requests (one's own unless quota admin)",
               response="QuotaRequestList",
               query=[("status", {"type": "string", "enum": ["pending", "approved", "denied"]})])
    @needs_scope(LOGGED_IN)
    async def get(self):
        me = self.caller_name
        see_all = self.has_scope(scopes.QUOTA_ADMIN)
        status = self.get_argument("status", None)

        def fetch(session):
            q = select(QuotaRequest).order_by(QuotaRequest.id.desc())
            if not see_all:
                q = q.where(QuotaRequest.user == me)
            if status:
                q = q.where(QuotaRequest.status == status)
            return [request_dict(r) for r in session.scalars(q.limit(500))]

        self.write_json({"requests": await self.db.run(fetch)})


class QuotaDecisionHandler(QuotaHandler):
    @operation("decideQuotaRequest", "Approve or deny a quota request (quota admins)", response="QuotaRequest",
               body="QuotaDecisionBody", errors=(400, 401, 403, 404, 409))
    @needs_scope(scopes.QUOTA_ADMIN, action="quota_request.decide")
    async def post(self, request_id):
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
            row.decided_at = _utcnow()
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
            return request_dict(row)

        result = await self.db.run(decide)
        await self.audit("quota_request.decide", "allowed", target=result["user"],
                         detail={"id": result["id"], "status": result["status"], "requested": result["requested"]})
        self.write_json(result)


def request_dict(row: QuotaRequest) -> dict:
    return {"id": row.id, "user": row.user, "requested": row.requested, "reason": row.reason, "status": row.status,
            "decided_by": row.decided_by, "decision_note": row.decision_note,
            "created_at": row.created_at.isoformat() + "Z" if row.created_at else None,
            "decided_at": row.decided_at.isoformat() + "Z" if row.decided_at else None}
