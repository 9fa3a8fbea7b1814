"""REST API of the fleet area: the GPUs, MIG plans and MIG re-cuts (an admin action).

    GET  api/fleet                     nodes, GPUs, layouts, holders, mig.config labels (readers)
    POST api/fleet/mig-plans           {"demand": {...}} or {"gpus": [...]} -> a plan, nothing applied
    POST api/fleet/mig-recuts          the same body (+ busy_node_ok) -> applied; 202 with the re-cut
    GET  api/fleet/mig-recuts[/<id>]   re-cuts and how far each node got (nvidia.com/mig.config.state)

In embedded mode planning and re-cutting answer 409 "MIG re-cutting needs cluster mode".
"""
from __future__ import annotations

import asyncio
import logging
import os

from .. import scopes
from ..service.base import APIHandler
from ..service.problems import Problem
from .area import FleetArea, holder_words
from .page import FleetPage
from .recut import RecutRefused

log = logging.getLogger("astrago.fleet")

from ..service.openapi import operation as _op


PATHS = {
    "/api/fleet": {"get": _op("getFleet", "Nodes and GPUs: MIG layouts, holders, mig-manager state (readers)")},
    "/api/fleet/mig-plans": {"post": _op(
        "planMigLayouts", "Plan MIG layouts for a demand or for named GPUs; nothing is applied (fleet admins)",
        errors=(400, 401, 403, 404, 409, 422), body="#/components/schemas/MigRecutRequest")},
    "/api/fleet/mig-recuts": {
        "get": _op("listMigRecuts", "MIG re-cuts and how far each node got"),
        "post": _op("applyMigRecut", "Re-cut idle GPUs: write the mig-parted ConfigMap and label the nodes "
                    "(fleet admins; 409 while a GPU holds allocations, and in embedded mode)", ok="202",
                    errors=(400, 401, 403, 404, 409, 422), body="#/components/schemas/MigRecutRequest"),
    },
    "/api/fleet/mig-recuts/{recut_id}": {"get": _op("getMigRecut", "One MIG re-cut", errors=(401, 403, 404),
                                                    params=[("recut_id", "path")])},
}

SCHEMAS = {
    "MigRecutRequest": {
        "type": "object",
        "description": "Either a demand (the planner chooses layouts for idle MIG GPUs) or explicit layouts.",
        "properties": {
            "demand": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0},
                       "examples": [{"1g.10gb": 4, "3g.40gb": 1}]},
            "gpus": {"type": "array", "items": {
                "type": "object", "required": ["node", "index", "geometry"],
                "properties": {"node": {"type": "string"}, "index": {"type": "integer"},
                               "geometry": {"type": "object", "additionalProperties": {"type": "integer"}}}}},
            "busy_node_ok": {"type": "boolean", "description": "re-cut even though other GPUs of the node are in use"},
        },
    },
}


def setup(service) -> None:
    service.fleet = FleetArea(service, cluster=service.mode == "cluster")


async def background(service) -> None:
    """Cluster mode: start the shared node watch and keep the desk's inventory current."""
    fleet = FleetArea.of(service)
    if not fleet.cluster_mode:
        return
    from astrago.spawners.inventory.kube_watch import NodeWatch, core_v1_api

    from .kube_client import FleetKubeClient

    delay = 5.0
    while fleet.watch is None:
        try:
            api = core_v1_api()
            fleet.kube = FleetKubeClient(api, namespace=os.environ.get("ASTRAGO_GPU_OPERATOR_NAMESPACE",
                                                                        "gpu-operator"))
            fleet.watch = await NodeWatch.shared(lambda: api, os.environ.get("ASTRAGO_NODE_SELECTOR", ""))
        except Exception as exc:
            log.warning("cannot watch the cluster's nodes (%s); trying again in %.0fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 120)
    fleet.watch.add_listener(fleet.on_nodes_changed)
    try:  # capacity as the cluster says it: the pods bound to nodes, in every namespace
        from astrago.spawners.inventory.kube_watch import PodWatch

        fleet.pod_watch = await PodWatch.shared(lambda: api)
        fleet.pod_watch.add_listener(fleet.on_nodes_changed)
    except Exception as exc:  # RBAC without cluster-wide pods: admit on the ledger alone, and say so
        log.warning("cannot watch the cluster's pods (%s): admission counts only AstraGo's own allocations; "
                    "the hub needs list/watch on pods cluster-wide (config/z2jh/astrago-rbac.yaml)", exc)
    await fleet.on_nodes_changed()


class FleetHandler(APIHandler):
    @property
    def fleet(self) -> FleetArea:
        return FleetArea.of(self.service)

    async def refused(self, exc: RecutRefused, action: str):
        await self.audit(action, "denied", reason=exc.detail)
        raise Problem(exc.kind, exc.detail) from None


class FleetOverviewHandler(FleetHandler):
    async def get(self):
        await self.require(scopes.READ, action="fleet.read")
        self.write_json(await self.db.run(lambda s: self.fleet.overview(lambda h: holder_words(s, h))))


class MigPlansHandler(FleetHandler):
    async def post(self):
        await self.require(scopes.FLEET_ADMIN, action="fleet.plan")
        try:
            plan = await self.fleet.plan(self.json_body())
        except RecutRefused as exc:
            await self.refused(exc, "fleet.plan")
        self.write_json(plan)


class MigRecutsHandler(FleetHandler):
    async def get(self):
        await self.require(scopes.READ, action="fleet.read")
        self.write_json({"recuts": [r.to_dict() for r in sorted(self.fleet.recuts.values(),
                                                                key=lambda r: r.created_at, reverse=True)]})

    async def post(self):
        await self.require(scopes.FLEET_ADMIN, action="fleet.recut")
        body = self.json_body()
        try:
            record = await self.fleet.apply(body, self.caller_name)
        except RecutRefused as exc:
            await self.refused(exc, "fleet.recut")
        await self.audit("fleet.recut", "allowed" if record.status != "error" else "failed",
                         target=",".join(sorted(record.nodes)), detail=record.to_dict())
        if record.status == "error":
            raise Problem("internal-error", record.detail, status=502)
        self.write_json(record.to_dict(), status=202)


class MigRecutHandler(FleetHandler):
    async def get(self, recut_id):
        await self.require(scopes.READ, action="fleet.read")
        record = self.fleet.recuts.get(recut_id)
        if record is None:
            raise Problem("not-found", f"No MIG re-cut {recut_id} (re-cuts are kept until the service restarts; "
                          "api/fleet shows each node's nvidia.com/mig.config.state).")
        self.write_json(record.to_dict())


def handlers(prefix: str) -> list:
    api = prefix + "api/"
    return [
        (api + "fleet", FleetOverviewHandler),
        (api + "fleet/mig-plans", MigPlansHandler),
        (api + "fleet/mig-recuts", MigRecutsHandler),
        (api + r"fleet/mig-recuts/(?P<recut_id>[0-9a-f]{12})", MigRecutHandler),
        (prefix + "admin/fleet", FleetPage),
    ]
