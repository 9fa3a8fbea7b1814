"""The monitor inside the running service: collector rounds, the view, history, reclaim, metrics.

Every `sample_interval` seconds (or at once when woken: a policy change, an admin's "sample
now") one round runs: all collectors at the same time, each under a timeout; the ledger read
on the database thread; the joined view (in a worker thread); a point of history; the idle-GPU
rules and their actions; the metric families (in a worker thread, only those that changed). A
scrape of `/metrics` serves the last round's families and the other areas' `MetricsSource`s
from the service's one registry, rendered in a worker thread.

What it reads of other areas comes through the interfaces the area wants (AdmissionLedger,
AccountingReader, JobsReader, UsageReader, MetricsSource), looked up when used: an area set up
after this one, or absent, is simply not there yet.
"""
from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections import Counter

from prometheus_client import CollectorRegistry

from astrago.spawners import slices as slice_catalogue
from astrago.spawners.inventory import ClusterInventory

from ..service.interfaces import (AccountingReader, AccountingSnapshot, AdmissionLedger, JobsReader, MetricsSource,
                                  UsageReader)
from .collectors import Collector, build_collectors
from .config import MonitorConfig
from .exposition import render_async, sample_values
from .families import Document, FleetFamilies
from .history import History
from .readings import CollectorResult
from .reclaim import store
from .reclaim.actions import carry_out
from .reclaim.rules import Candidate, Policy, step
from .snapshot import FleetView, build_view

log = logging.getLogger("astrago.monitor")


def _hook(spec):
    if spec is None or callable(spec):
        return spec
    module, _, name = str(spec).partition(":")
    return getattr(importlib.import_module(module), name)


class Monitor:
    def __init__(self, context, config: MonitorConfig, collectors: list[Collector] | None = None):
        self.context = context  # contract.AreaContext: db, settings, hub_api and the interfaces
        self.db = context.db
        self.config = config
        if collectors is None:
            collectors = build_collectors(config, hub_api=context.hub_api, inventory=lambda: self.inventory,
                                          simulated=bool(getattr(context.settings, "inventory_file", "")))
        self.collectors = collectors
        self.defaults = Policy(
            enabled=config.reclaim_enabled, dry_run=config.reclaim_dry_run,
            idle_threshold_percent=config.idle_threshold_percent, idle_hours=config.idle_hours,
            grace_hours=config.grace_hours, exempt_groups=tuple(sorted(set(config.exempt_groups))),
            max_gap_seconds=max(600.0, 3 * config.sample_interval), webhook_url=config.webhook_url)
        self.policy = self.defaults
        self.policy_meta: dict = {"updated_at": None, "updated_by": ""}
        self.tracks: dict = {}
        self.results: dict[str, CollectorResult] = {
            c.name: CollectorResult(c.name, False, 0.0, error="not run yet") for c in self.collectors}
        self.last_success: dict[str, float] = {}
        self.history = History(config.history_points)
        self.jobs_snapshot = None
        self.jobs_unavailable = ""
        self.view: FleetView | None = None
        self.reclaim_counts: Counter = Counter()
        self.rounds = 0
        self.notify_hook = _hook(getattr(config, "notify_hook", None))
        # the service's one registry: the monitor's families, then every area's MetricsSource
        self.families = FleetFamilies()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.families)
        self._sources: list = []
        self._lock: asyncio.Lock | None = None
        self._wake: asyncio.Event | None = None

    # -- what other areas offer (looked up when used) ----------------------------

    @property
    def ledger(self) -> AdmissionLedger | None:
        return self.context.want(AdmissionLedger)

    @property
    def inventory(self):
        ledger = self.ledger
        return ledger.inventory if ledger is not None else ClusterInventory(nodes=[])

    @property
    def usage(self) -> UsageReader | None:
        return self.context.want(UsageReader)

    def sources(self) -> list:
        """The areas' MetricsSources, each registered in the registry once."""
        for source in self.context.all(MetricsSource):
            if not any(source is known for known in self._sources):
                self.registry.register(source)
                self._sources.append(source)
        return list(self._sources)

    # -- start-up ------------------------------------------------------------

    def load(self) -> None:
        """Read the policy and the tracks (service start, before the loop)."""
        self.policy, self.policy_meta = self.db.run_sync(store.load_policy, self.defaults)
        self.tracks = self.db.run_sync(store.load_tracks)

    def _sync(self):
        if self._lock is None:
            self._lock = asyncio.Lock()
            self._wake = asyncio.Event()

    # -- collecting ------------------------------------------------------------

    async def collect(self) -> list[CollectorResult]:
        async def one(c: Collector) -> CollectorResult:
            t0 = time.monotonic()
            try:
                result = await asyncio.wait_for(c.collect(), self.config.collector_timeout)
            except asyncio.TimeoutError:
                result = CollectorResult(c.name, False, time.time(),
                                         error=f"no answer within {self.config.collector_timeout:g} s")
            except Exception as exc:  # a failing collector degrades its own panel only
                result = CollectorResult(c.name, False, time.time(), error=f"{type(exc).__name__}: {exc}")
            result.duration_s = time.monotonic() - t0
            if result.ok:
                self.last_success[c.name] = result.at
            else:
                log.warning("monitor: collector %s failed: %s", c.name, result.error)
            return result

        results = await asyncio.gather(*(one(c) for c in self.collectors))
        self.results = {r.name: r for r in results}
        return results

    async def read_ledger(self):
        """(accounting, device layout, jobs) as of now, read on the database thread."""
        accounting, ledger, jobs = (self.context.want(AccountingReader), self.ledger,
                                    self.context.want(JobsReader))

        def read(session):
            snapshot = accounting.accounting(session) if accounting is not None else _no_accounting()
            layout = ledger.device_layout() if ledger is not None else []
            return snapshot, layout, self._read_jobs(jobs, session, snapshot.at)

        return await self.db.run(read)

    def _read_jobs(self, jobs, session, now: float):
        if jobs is None:
            self.jobs_unavailable = "The jobs area is not installed in this service."
            return None
        try:
            snapshot = jobs.jobs_snapshot(session, now)
        except Exception as exc:  # the jobs area's figures only: every other panel carries on
            log.warning("monitor: the jobs area's figures cannot be read: %s", exc)
            self.jobs_unavailable = f"The jobs table cannot be read: {type(exc).__name__}."
            session.rollback()
            return None
        self.jobs_unavailable = ""
        return snapshot

    async def current_view(self) -> FleetView:
        """The ledger as of now, joined with the last round's readings."""
        accounting, layout, jobs = await self.read_ledger()
        self.jobs_snapshot = jobs
        return await asyncio.to_thread(build_view, accounting, layout, self.inventory, list(self.results.values()))

    # -- one round ---------------------------------------------------------------

    async def round(self) -> FleetView:
        self._sync()
        async with self._lock:
            await self.collect()
            accounting, layout, jobs = await self.read_ledger()
            self.jobs_snapshot = jobs
            view = await asyncio.to_thread(build_view, accounting, layout, self.inventory,
                                           list(self.results.values()))
            self.view = view
            self._record_history(view, jobs)
            await self._reclaim(view, accounting)
            self.rounds += 1
            await self.refresh_families(view)  # after the rules: their tracks and counts of this round
            return view

    async def _reclaim(self, view: FleetView, accounting, now: float | None = None) -> list:
        now = view.at if now is None else now
        candidates = [Candidate(a.id, a.user, a.groups, a.owner_kind, a.owner_id, a.slice, a.units,
                                view.allocation_utilization.get(a.id)) for a in accounting.held.values()]
        tracks, actions = step(self.tracks, candidates, now, self.policy)
        previous, self.tracks = self.tracks, tracks
        await self.db.run(store.save_tracks, tracks, previous)
        for a in actions:
            self.reclaim_counts[(a.kind, a.dry_run)] += 1
        if not actions:
            return []
        log.info("reclaim: %s", ", ".join(f"{a.kind}{' (dry run)' if a.dry_run else ''} {a.owner_id}"
                                          for a in actions))
        return await carry_out(self.context, self.ledger, actions, webhook_url=self.policy.webhook_url,
                               hook=self.notify_hook)

    def _record_history(self, view: FleetView, jobs) -> None:
        values: dict[str, float | None] = {
            "fleet:allocated": view.allocated_units, "fleet:capacity": view.capacity_units,
            "fleet:queue": float(sum(n for n, _ in view.queue.values())),
            "fleet:servers": float(view.servers.get("ready", 0)),
        }
        busy = weight = 0.0
        per_gpu: dict[str, list] = {}
        for s in view.slices:
            if s.utilization is None:
                continue
            units = _slice_units(s)
            busy += s.utilization * units
            weight += units
            acc = per_gpu.setdefault(s.gpu_uuid, [0.0, 0.0])
            acc[0] += s.utilization * units
            acc[1] += units
        values["fleet:busy"] = busy / weight if weight else None
        for g in view.gpus:
            acc = per_gpu.get(g.uuid)
            values[f"gpu:{g.uuid}"] = g.utilization if g.utilization is not None else (
                acc[0] / acc[1] if acc and acc[1] else None)
        for u in view.users.values():
            values[f"user:{u.name}:units"] = u.gpu_units
            values[f"user:{u.name}:busy"] = u.busy_units
        uploads = sample_values(self.sources(), ("astrago_upload_bytes_received_total", "astrago_upload_active_writes"))
        values["uploads:bytes"] = uploads.get("astrago_upload_bytes_received_total")
        values["uploads:active"] = uploads.get("astrago_upload_active_writes")
        if jobs is not None:
            values["jobs:running"] = float(jobs.by_status.get("RUNNING", 0))
            values["jobs:queued"] = float(jobs.by_status.get("QUEUED", 0) + jobs.by_status.get("CREATED", 0))
        self.history.record(view.at, values)

    # -- the loop ----------------------------------------------------------------

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        self._sync()
        await asyncio.sleep(min(2.0, self.config.sample_interval))
        while True:
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad round must not end monitoring
                log.exception("monitor round failed")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.config.sample_interval)
            except asyncio.TimeoutError:
                pass

    def close(self) -> None:
        for c in self.collectors:
            c.close()

    # -- the metrics document ------------------------------------------------------

    def idle_seconds(self, now: float) -> dict[str, float]:
        return {aid: t.idle_for(now) for aid, t in self.tracks.items() if t.state != "exempt"}

    def document(self, view: FleetView) -> Document:
        """What the families of `view` are made of (the monitor's state now)."""
        jobs = self.context.want(JobsReader)
        return Document(view, version=self.context.settings.version, mode=self.context.settings.mode,
                        jobs=self.jobs_snapshot, job_buckets=tuple(getattr(jobs, "duration_buckets", ())),
                        idle_seconds=self.idle_seconds(view.at),
                        track_states=dict(Counter(t.state for t in self.tracks.values())),
                        reclaim_counts=dict(self.reclaim_counts), policy=self.policy,
                        collectors=list(self.results.values()), last_success=dict(self.last_success))

    async def refresh_families(self, view: FleetView) -> None:
        """The metric families of `view` (a worker thread; only the families that changed are written)."""
        await asyncio.to_thread(self.families.refresh, self.document(view))

    async def metrics_document(self) -> bytes:
        """The `/metrics` document: the last round's families and the areas' sources, rendered
        in a worker thread (before the first round, the families of the ledger as of now)."""
        self.sources()
        if not self.families.ready:
            self._sync()
            async with self._lock:
                if not self.families.ready:
                    await self.refresh_families(await self.current_view())
        return await render_async(self.registry)

    async def metrics_text(self) -> str:
        return (await self.metrics_document()).decode()


def _no_accounting() -> AccountingSnapshot:
    """No quota area: nothing is held, queued or limited."""
    return AccountingSnapshot(time.time(), {}, [], {}, {}, {})


def _slice_units(s) -> float:
    if s.kind == "gpu":
        return 1.0
    try:
        if s.kind == "mps":
            return float(slice_catalogue.slice_gpu_units(None, s.profile)) if s.profile.startswith("mps-") else 0.25
        return float(slice_catalogue.slice_gpu_units(None, s.profile))
    except Exception:
        return 1.0
