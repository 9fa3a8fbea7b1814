"""The fleet area: what the GPUs are, and MIG re-cutting in cluster mode.

In embedded mode it only describes the inventory; planning and re-cutting answer "needs
cluster mode". In cluster mode it runs the shared node watch, keeps the admission ledger's
inventory current (`AdmissionLedger.replace_inventory`, the quota area's), applies re-cuts
through `FleetKubeClient` and follows `nvidia.com/mig.config.state`. It meets the quota area
only through the `AdmissionLedger` interface: the layout and holders it shows are the ledger's.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import datetime, timezone
from typing import Callable

from traitlets import Unicode

from astrago.spawners.kube.operator_config import OPERATOR_NAMESPACE, merge_mig_configs

from .. import scopes
from ..service.contract import AdminSection, Area, AreaContext, Route
from ..service.interfaces.admission import CLUSTER_HOLDER, DRAIN_HOLDER, AdmissionLedger, InventoryRebuild
from . import api, recut
from .kube_client import FleetKubeClient, KubeCallFailed
from .page import FleetPage
from .schemas import FLEET_SCHEMAS

log = logging.getLogger("astrago.fleet")

NEEDS_CLUSTER = ("MIG re-cutting needs cluster mode: on one machine AstraGo never re-cuts GPUs behind its users. "
                 "Change the layout with nvidia-smi while no workspace runs, then restart AstraGo.")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class FleetArea(Area):
    name = "fleet"
    needs = (AdmissionLedger,)

    gpu_operator_namespace = Unicode(OPERATOR_NAMESPACE, config=True, help="Cluster mode: the namespace of the "
                                     "NVIDIA GPU operator, where MIG re-cuts write the mig-parted ConfigMap.")

    def setup(self, context: AreaContext) -> None:
        self.db = context.db
        self.ledger: AdmissionLedger = context.need(AdmissionLedger)
        self.cluster_mode = context.mode == "cluster"
        self.node_selector = context.settings.node_selector
        self.kube: FleetKubeClient | None = None  # cluster mode, once the event loop runs (watch_nodes)
        self.watch = None  # spawners.inventory.kube_watch.NodeWatch, cluster mode
        self.pod_watch = None  # spawners.inventory.kube_watch.PodWatch: bound pods, for capacity
        self.recuts: dict[str, recut.RecutRecord] = {}
        self.draining: dict[str, set[int]] = {}
        self._lock = asyncio.Lock()

    def routes(self) -> list[Route]:
        return [
            Route("api/fleet", api.FleetOverviewHandler),
            Route("api/fleet/mig-plans", api.MigPlansHandler),
            Route("api/fleet/mig-recuts", api.MigRecutsHandler),
            Route("api/fleet/mig-recuts/{recut_id}", api.MigRecutHandler, patterns={"recut_id": "[0-9a-f]{12}"}),
            Route("admin/fleet", FleetPage),
        ]

    def schemas(self) -> dict[str, dict]:
        return FLEET_SCHEMAS

    def admin_sections(self) -> list[AdminSection]:
        return [AdminSection("fleet", "GPU fleet", scopes.READ, order=80)]

    def background(self, context: AreaContext) -> list:
        return [self.watch_nodes()] if self.cluster_mode else []

    async def watch_nodes(self) -> None:
        """Cluster mode: start the shared node watch and keep the ledger's inventory current."""
        from astrago.spawners.inventory.kube_watch import NodeWatch, PodWatch, core_v1_api

        delay = 5.0
        while self.watch is None:
            try:
                core = core_v1_api()
                self.kube = FleetKubeClient(core, namespace=self.gpu_operator_namespace)
                self.watch = await NodeWatch.shared(lambda: core, self.node_selector)
            except Exception as exc:
                log.warning("cannot watch the cluster's nodes (%s); trying again in %.0fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 120)
        self.watch.add_listener(self.on_nodes_changed)
        try:  # capacity as the cluster says it: the pods bound to nodes, in every namespace
            self.pod_watch = await PodWatch.shared(lambda: core)
            self.pod_watch.add_listener(self.on_nodes_changed)
        except Exception as exc:  # RBAC without cluster-wide pods: admit on the ledger alone, and say so
            log.warning("cannot watch the cluster's pods (%s): admission counts only AstraGo's own allocations; "
                        "the hub needs list/watch on pods cluster-wide (config/z2jh/astrago-rbac.yaml)", exc)
        await self.on_nodes_changed()

    def holder_words(self, session) -> Callable[[str], str]:
        """Names of the layout's holders for people ("alice's 3g.40gb (workspace alice/)"), from one
        read of the ledger (database thread)."""
        layout = self.ledger.device_layout()
        ids = {h for gpu in layout for h in (*gpu.holders, *(i.holder for i in gpu.instances if i.holder))}
        records = self.ledger.allocations(session, sorted(h for h in ids
                                                          if not h.startswith((DRAIN_HOLDER, CLUSTER_HOLDER))))

        def words(holder: str) -> str:
            if holder.startswith(DRAIN_HOLDER):
                return "being re-cut"
            record = records.get(holder)
            if record is None:
                return holder
            return f"{record.user}'s {record.slice} ({record.owner_kind} {record.owner_id})"

        return words

    # -- reading -------------------------------------------------------------

    def node_labels(self) -> dict[str, dict[str, str]]:
        if self.watch is not None:
            return {name: dict((node.get("metadata") or {}).get("labels") or {})
                    for name, node in self.watch.nodes.items()}
        return {node.name: {k: v for k, v in ((recut.MIG_CONFIG_LABEL, node.mig_config),
                                              (recut.MIG_CONFIG_STATE_LABEL, node.mig_config_state)) if v}
                for node in self.ledger.inventory.nodes}

    def overview(self, holder_words) -> dict:
        """Nodes, GPUs with their layout and holders, MIG config labels, re-cuts."""
        snapshots = {(s.node, s.index): s for s in self.ledger.device_layout()}
        labels = self.node_labels()
        nodes = []
        for node in self.ledger.inventory.nodes:
            gpus = []
            for gpu in node.gpus:
                snap = snapshots.get((node.name, gpu.index))
                gpus.append({
                    "index": gpu.index, "uuid": gpu.uuid, "model": gpu.model, "product": gpu.product_name,
                    "mode": gpu.mode, "mps_replicas": gpu.mps_replicas,
                    "instances": [{"profile": i.profile, "start": i.start, "uuid": i.uuid,
                                   "holder": holder_words(i.holder) if i.holder else None}
                                  for i in (snap.instances if snap else ())],
                    "holders": [holder_words(h) for h in (snap.holders if snap else ())],
                })
            node_labels = labels.get(node.name, {})
            nodes.append({"name": node.name, "source": node.source, "simulated": node.simulated,
                          "mig_strategy": node.mig_strategy,
                          "mig_config": node_labels.get(recut.MIG_CONFIG_LABEL),
                          "mig_config_state": node_labels.get(recut.MIG_CONFIG_STATE_LABEL),
                          "draining": sorted(self.draining.get(node.name, ())), "gpus": gpus})
        return {"mode": "cluster" if self.cluster_mode else "embedded", "can_recut": self.cluster_mode,
                "note": self.ledger.inventory_note, "nodes": nodes,
                "recuts": [r.to_dict() for r in sorted(self.recuts.values(), key=lambda r: r.created_at,
                                                       reverse=True)]}

    # -- planning and applying ---------------------------------------------------

    def _require_cluster(self) -> None:
        if not self.cluster_mode:
            raise recut.RecutRefused("conflict", NEEDS_CLUSTER)

    def _plan(self, session, body: dict):
        inventory, layout = self.ledger.inventory, self.ledger.device_layout()
        if "gpus" in body and "demand" in body:
            raise recut.RecutRefused("invalid-request", 'Send either "demand" or "gpus", not both.')
        if "gpus" in body:
            if not isinstance(body["gpus"], list) or not body["gpus"]:
                raise recut.RecutRefused("invalid-request", "gpus must be a non-empty list.")
            return recut.plan_for_geometries(inventory, layout, body["gpus"])
        return recut.plan_for_demand(inventory, body.get("demand"), layout)

    async def plan(self, body: dict) -> dict:
        self._require_cluster()
        return await self.db.run(lambda s: recut.plan_summary(self._plan(s, body)))

    async def apply(self, body: dict, actor: str) -> recut.RecutRecord:
        """Plan, refuse busy GPUs, drain the nodes, write the ConfigMap, then label the nodes."""
        self._require_cluster()
        if self.watch is None or self.kube is None:
            raise recut.RecutRefused("conflict", "The Kubernetes node watch has not started yet; try again in a "
                                     "moment (the service log says why if this lasts).")
        busy_node_ok = body.get("busy_node_ok", False)
        if not isinstance(busy_node_ok, bool):
            raise recut.RecutRefused("invalid-request", "busy_node_ok must be true or false.")
        async with self._lock:
            if any(not r.finished for r in self.recuts.values()):
                raise recut.RecutRefused("conflict", "A re-cut is still being applied; wait until it finishes.")
            labels_now = self.node_labels()

            def decide(session):
                plan = self._plan(session, body)
                recut.check_idle(plan, self.ledger.device_layout(), self.holder_words(session),
                                 busy_node_ok=busy_node_ok)
                configs, labels = recut.changes_to_write(plan, labels_now)
                if not labels:
                    return None
                drained = {}
                for node in labels:
                    recut_here = {g.index for g in plan.recut_gpus if g.node == node}
                    whole_node = {g.index for n, g in self.ledger.inventory.gpus() if n.name == node}
                    drained[node] = recut_here if busy_node_ok else whole_node
                self.draining.update(drained)
                self._swap_inventory(session)
                return plan, configs, labels, drained

            decided = await self.db.run(decide)
            if decided is None:
                raise recut.RecutRefused("conflict", "Nothing to re-cut: every node already has this layout.")
            plan, configs, labels, drained = decided
            record = recut.RecutRecord(
                id=secrets.token_hex(6), created_by=actor, created_at=_now(),
                nodes={node: recut.NodeProgress(config=node_labels[recut.MIG_CONFIG_LABEL])
                       for node, node_labels in labels.items()},
                gpus=[g for g in recut.plan_summary(plan)["gpus"] if g["recut"]],
                drained={node: sorted(indices) for node, indices in drained.items()})
            self.recuts[record.id] = record
            try:
                existing = await self.kube.current_mig_configs()
                in_use = {lab.get(recut.MIG_CONFIG_LABEL) for lab in labels_now.values()} - {None}
                await self.kube.write_mig_configs(merge_mig_configs(existing, configs, in_use))
                for node, node_labels in sorted(labels.items()):
                    await self.kube.label_node(node, node_labels)
            except KubeCallFailed as exc:
                record.status, record.detail = "error", f"Kubernetes refused the change: {exc}"
                await self._undrain(record)
                return record
            log.info("re-cut %s by %s: %s", record.id, actor, {n: p.config for n, p in record.nodes.items()})
            return record

    # -- following ---------------------------------------------------------------

    async def on_nodes_changed(self, changed: set[str] | None = None) -> InventoryRebuild:
        """The watch saw GPU-relevant changes: advance re-cuts, then move the ledger onto the new inventory."""
        labels = self.node_labels()
        for record in list(self.recuts.values()):
            if recut.follow(record, labels) and record.finished:
                log.info("re-cut %s %s: %s", record.id, record.status, record.detail)
                for node in record.drained:
                    self.draining.pop(node, None)
        return await self.db.run(self._swap_inventory)

    async def _undrain(self, record: recut.RecutRecord) -> None:
        for node in record.drained:
            self.draining.pop(node, None)
        await self.db.run(self._swap_inventory)

    def _swap_inventory(self, session) -> InventoryRebuild:
        """Move the ledger onto what the node watch sees, less the GPUs being re-cut and the
        slices pods AstraGo did not admit hold (the pod watch)."""
        pods = self.pod_watch.pods() if self.pod_watch is not None else None
        nodes = [self.watch.nodes[name] for name in sorted(self.watch.nodes)]
        return self.ledger.replace_inventory(session, self.watch.inventory(), drained=self.draining,
                                             node_objects=nodes, pods=pods)
