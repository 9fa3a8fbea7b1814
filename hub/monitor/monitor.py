"""The monitor inside the running service: collector rounds, the view, history and reclaim.

Every `sample_interval` seconds (or at once when woken: a policy change, an admin's "sample
now") one round runs: all collectors at the same time, each under a timeout; the ledger read
on the database thread; the joined view; a point of history; the idle-GPU rules and their
actions. A scrape of `/metrics` re-reads the ledger (so quota figures are current) and uses the
last round's readings.
"""
from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections import Counter

from astrago.spawners import slices as slice_catalogue

from .collectors import Collector, build_collectors
from .config import MonitorConfig
from .exposition import render
from .history import History
from .jobs_adapter import JobMetrics
from .readings import CollectorResult
from .reclaim import store
from .reclaim.actions import carry_out
from .reclaim.rules import Candidate, Policy, step
from .snapshot import FleetView, build_view, gather_accounting

log = logging.getLogger("astrago.monitor")


def _hook(spec):
    if spec is None or callable(spec):
        return spec
    module, _, name = str(spec).partition(":")
    return getattr(importlib.import_module(module), name)


class Monitor:
    def __init__(self, service, config: MonitorConfig, collectors: list[Collector] | None = None):
        self.service = service
        self.config = config
        self.collectors = build_collectors(service, config) if collectors is None else collectors
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
        self.jobs = JobMetrics()
        self.jobs_snapshot = None
        self.view: FleetView | None = None
        self.reclaim_counts: Counter = Counter()
        self.rounds = 0
        self.notify_hook = _hook(getattr(config, "notify_hook", None))
        self._lock: asyncio.Lock | None = None
        self._wake: asyncio.Event | None = None

    # -- start-up ------------------------------------------------------------

    def load(self) -> None:
        """Read the policy and the tracks (service start, before the loop)."""
        self.policy, self.policy_meta = self.service.db.run_sync(store.load_policy, self.defaults)
        self.tracks = self.service.db.run_sync(store.load_tracks)

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

    async def _read_ledger(self):
        desk = self.service.desk
        period = getattr(desk, "gpu_hours_period_days", 30)

        def read(session):
            accounting = gather_accounting(session, period_days=period)
            return accounting, desk.placer.snapshot(), self.jobs.gather(session, accounting.at)

        return await self.service.db.run(read)

    async def current_view(self) -> FleetView:
        """The ledger as of now, joined with the last round's readings."""
        accounting, layout, jobs = await self._read_ledger()
        self.jobs_snapshot = jobs
        return build_view(accounting, layout, self.service.desk.inventory, list(self.results.values()))

    # -- one round ---------------------------------------------------------------

    async def round(self) -> FleetView:
        self._sync()
        async with self._lock:
            await self.collect()
            accounting, layout, jobs = await self._read_ledger()
            self.jobs_snapshot = jobs
            view = build_view(accounting, layout, self.service.desk.inventory, list(self.results.values()))
            self.view = view
            self._record_history(view, jobs)
            await self._reclaim(view, accounting)
            self.rounds += 1
            return view

    async def _reclaim(self, view: FleetView, accounting, now: float | None = None) -> list:
        now = view.at if now is None else now
        candidates = [Candidate(a.id, a.user, a.groups, a.owner_kind, a.owner_id, a.slice, a.units,
                                view.allocation_utilization.get(a.id)) for a in accounting.held.values()]
        tracks, actions = step(self.tracks, candidates, now, self.policy)
        previous, self.tracks = self.tracks, tracks
        await self.service.db.run(store.save_tracks, tracks, previous)
        for a in actions:
            self.reclaim_counts[(a.kind, a.dry_run)] += 1
        if not actions:
            return []
        log.info("reclaim: %s", ", ".join(f"{a.kind}{' (dry run)' if a.dry_run else ''} {a.owner_id}"
                                          for a in actions))
        return await carry_out(self.service, actions, webhook_url=self.policy.webhook_url, hook=self.notify_hook)

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
        try:
            from ..uploads.metrics import REGISTRY

            values["uploads:bytes"] = REGISTRY.get_sample_value("astrago_upload_bytes_received_total")
            values["uploads:active"] = REGISTRY.get_sample_value("astrago_upload_active_writes")
        except Exception:
            pass
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

    async def metrics_text(self) -> str:
        view = await self.current_view()
        return self.render(view)

    def render(self, view: FleetView) -> str:
        try:
            from prometheus_client import generate_latest

            from ..uploads.metrics import REGISTRY

            extra = [generate_latest(REGISTRY)]
        except Exception:  # the uploads area is optional too
            extra = []
        states = Counter(t.state for t in self.tracks.values())
        return render(view, version=self.service.version, mode=self.service.mode, jobs=self.jobs_snapshot,
                      idle_seconds=self.idle_seconds(view.at), track_states=dict(states),
                      reclaim_counts=dict(self.reclaim_counts), policy=self.policy,
                      collectors=self.results.values(), last_success=self.last_success, extra=extra)


def _slice_units(s) -> float:
    if s.kind == "gpu":
        return 1.0
    try:
        if s.kind == "mps":
            return float(slice_catalogue.slice_gpu_units(None, s.profile)) if s.profile.startswith("mps-") else 0.25
        return float(slice_catalogue.slice_gpu_units(None, s.profile))
    except Exception:
        return 1.0
