"""REST API of the fleet area: the GPUs, MIG plans and MIG re-cuts (an admin action).

    GET  api/fleet                     nodes, GPUs, layouts, holders, mig.config labels (readers)
    POST api/fleet/mig-plans           {"demand": {...}} or {"gpus": [...]} -> a plan, nothing applied
    POST api/fleet/mig-recuts          the same body (+ busy_node_ok) -> applied; 202 with the re-cut
    GET  api/fleet/mig-recuts[/<id>]   re-cuts and how far each node got (nvidia.com/mig.config.state)

In embedded mode planning and re-cutting answer 409 "MIG re-cutting needs cluster mode".
"""
from __future__ import annotations

from .. import scopes
from ..service.base import APIHandler
from ..service.declare import needs_scope, operation
from ..service.problems import Problem
from .recut import RecutRefused


class FleetHandler(APIHandler):
    async def refused(self, exc: RecutRefused, action: str):
        await self.audit(action, "denied", reason=exc.detail)
        raise Problem(exc.kind, exc.detail) from None


class FleetOverviewHandler(FleetHandler):
    @operation("getFleet", "Nodes and GPUs: MIG layouts, holders, mig-manager state (readers)", response="Fleet")
    @needs_scope(scopes.READ, action="fleet.read")
    async def get(self):
        await self.require(scopes.READ, action="fleet.read")
        self.write_json(await self.db.run(lambda s: self.area.overview(self.area.holder_words(s))))


class MigPlansHandler(FleetHandler):
    @operation("planMigLayouts", "Plan MIG layouts for a demand or for named GPUs; nothing is applied (fleet "
               "admins)", body="MigRecutRequest", response="MigPlan", errors=(400, 401, 403, 404, 409, 422))
    @needs_scope(scopes.FLEET_ADMIN, action="fleet.plan")
    async def post(self):
        await self.require(scopes.FLEET_ADMIN, action="fleet.plan")
        try:
            plan = await self.area.plan(self.json_body())
        except RecutRefused as exc:
            await self.refused(exc, "fleet.plan")
        self.write_json(plan)


class MigRecutsHandler(FleetHandler):
    @operation("listMigRecuts", "MIG re-cuts and how far each node got", response="MigRecutList")
    @needs_scope(scopes.READ, action="fleet.read")
    async def get(self):
        await self.require(scopes.READ, action="fleet.read")
        self.write_json({"recuts": [r.to_dict() for r in sorted(self.area.recuts.values(),
                                                                key=lambda r: r.created_at, reverse=True)]})

    @operation("applyMigRecut", "Re-cut idle GPUs: write the mig-parted ConfigMap and label the nodes (fleet "
               "admins; 409 while a GPU holds allocations, and in embedded mode)", ok=202, body="MigRecutRequest",
               response="MigRecut", errors=(400, 401, 403, 404, 409, 422, 502))
    @needs_scope(scopes.FLEET_ADMIN, action="fleet.recut")
    async def post(self):
        await self.require(scopes.FLEET_ADMIN, action="fleet.recut")
        body = self.json_body()
        try:
            record = await self.area.apply(body, self.caller_name)
        except RecutRefused as exc:
            await self.refused(exc, "fleet.recut")
        await self.audit("fleet.recut", "allowed" if record.status != "error" else "failed",
                         target=",".join(sorted(record.nodes)), detail=record.to_dict())
        if record.status == "error":
            raise Problem("internal-error", record.detail, status=502)
        self.write_json(record.to_dict(), status=202)


class MigRecutHandler(FleetHandler):
    @operation("getMigRecut", "One MIG re-cut", response="MigRecut", errors=(401, 403, 404))
    @needs_scope(scopes.READ, action="fleet.read")
    async def get(self, recut_id):
        await self.require(scopes.READ, action="fleet.read")
        record = self.area.recuts.get(recut_id)
        if record is None:
            raise Problem("not-found", f"No MIG re-cut {recut_id} (re-cuts are kept until the service restarts; "
                          "api/fleet shows each node's nvidia.com/mig.config.state).")
        self.write_json(record.to_dict())
