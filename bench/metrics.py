"""Serving and rendering `/services/astrago/metrics` at scale, against prometheus_client in the same run.

    python -m bench.metrics --json [--users 1000 --slices 2000 --jobs 500 --runs 200]

The world: 2,000 slices (250 H100s cut 7 x 1g.10gb = 1,750 MIG instances, plus 250 whole
GPUs), 1,000 users holding 1,800 of them (200 held by running jobs), 3,000 released
allocations in the quota period (GPU-hours), quotas for the default, 20 groups and 100 users,
500 jobs in the jobs table, a utilisation reading for every device, 500 idle workspaces under
the reclaim rules. All in a sqlite file, as in the embedded mode, behind the areas' real
providers (the quota area's desk and AccountingReader, the jobs area's JobsReader, the uploads
area's registry as a MetricsSource) and the monitor area's own `Monitor`.

Timed after warm-up (ms), `--runs` times each; what reads the whole ledger or renders everything
(`_cold`, `round_ms`) a quarter as often (at least 10):
- `render_ms`: what a scrape costs the service (`Monitor.metrics_document`): the service's one
  registry (the last round's families and the uploads area's counters) rendered to text, in a
  worker thread as the handler does;
- `render_ms_*_cold`: the first scrape, before any round: read the ledger, the layout and the
  jobs, join them with the readings, make every family and render;
- `round_ms`: a round's metrics work (`current_view` + `refresh_families`): read, join, and
  re-render the families that changed, with new readings for every device each time;
- `render_only_ms`: the join and the families from data already read, and the text (warm: the
  previous refresh's families at hand; `_cold`: none);
- `baseline_ms`: prometheus_client's `generate_latest` over a registry holding the same number
  of plain series (the same families, label names and sample counts, values set once).

The world is built, then `gc.freeze()`d as the service freezes what it built at start-up.
"""
from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path


def _pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def build_world(tmp: Path, users: int, slices: int, jobs: int, seed: int = 3):
    from astrago.hub.db.session import Database
    from astrago.hub.jobs.model import Job
    from astrago.hub.monitor.collectors.simulated import simulated_readings
    from astrago.hub.monitor.readings import CollectorResult
    from astrago.hub.quota.models import Allocation, Quota
    from astrago.spawners.inventory.static import inventory_from_cluster_spec
    from astrago.spawners.placement import Placer

    rng = random.Random(seed)
    mig_gpus = (slices * 7 // 8) // 7
    full_gpus = slices - mig_gpus * 7
    gpus = ([{"model": "H100-80GB", "mode": "mig", "geometry": {"1g.10gb": 7}}] * mig_gpus
            + [{"model": "H100-80GB", "mode": "full"}] * full_gpus)
    nodes = [{"name": f"node{n:03d}", "gpus": gpus[i:i + 8]} for n, i in enumerate(range(0, len(gpus), 8))]
    inventory = inventory_from_cluster_spec({"nodes": nodes})
    placer = Placer(inventory)
    db = Database(f"sqlite:///{tmp / 'bench.sqlite'}")
    db.migrate()
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    names = [f"user{i:04d}" for i in range(users)]
    groups = [f"team-{i:02d}" for i in range(20)]
    held_count = int(slices * 0.9)
    rows, job_rows = [], []
    free_mig = [i.uuid for _n, g in inventory.gpus() for i in g.mig_instances]
    for k in range(held_count):
        user = names[k % users]
        group = groups[k % len(groups)]
        slc = "1g.10gb" if k < len(free_mig) else "gpu-1"
        aid = str(uuid.UUID(int=rng.getrandbits(128)))
        placement = placer.place(aid, slc)
        assert placement is not None
        is_job = k % 9 == 0 and len(job_rows) < min(jobs, 200)
        owner = f"j{k:08d}" if is_job else f"{user}/"
        rows.append(Allocation(id=aid, client_key=aid, owner_kind="job" if is_job else "workspace", owner_id=owner,
                               user=user, groups=[group], accounting_group=group, slice=slc,
                               units_num=1, units_den=7 if slc == "1g.10gb" else 1, cpu=4.0, memory_gib=16.0,
                               priority=0, status="admitted", reason="", created_at=now - timedelta(hours=3),
                               admitted_at=now - timedelta(hours=rng.uniform(0.1, 48)), placement={
                                   "gpu_uuids": list(placement.gpu_uuids),
                                   "mig_instance_uuids": list(placement.mig_instance_uuids)}))
        if is_job:
            job_rows.append(owner)
    for k in range(3000):  # released in the period: GPU-hours
        start = now - timedelta(days=rng.uniform(0, 29))
        aid = str(uuid.UUID(int=rng.getrandbits(128)))
        rows.append(Allocation(id=aid, client_key=aid, owner_kind="workspace", owner_id=f"{names[k % users]}/",
                               user=names[k % users], groups=[groups[k % 20]], accounting_group=groups[k % 20],
                               slice="1g.10gb", units_num=1, units_den=7, cpu=2.0, memory_gib=8.0, priority=0,
                               status="released", reason="", created_at=start, admitted_at=start,
                               released_at=start + timedelta(hours=rng.uniform(0.5, 12))))
    for k in range(40):  # waiting
        aid = str(uuid.UUID(int=rng.getrandbits(128)))
        rows.append(Allocation(id=aid, client_key=aid, owner_kind="workspace", owner_id=f"{names[k]}/",
                               user=names[k], groups=[groups[0]], accounting_group=groups[0], slice="gpu-1",
                               units_num=1, units_den=1, cpu=2.0, memory_gib=8.0, priority=0, status="queued",
                               reason="waiting", created_at=now - timedelta(minutes=k)))
    quotas = [Quota(subject_kind="default", subject_name="*", limits={"gpu_units": 2, "servers": 4}, weight=1.0)]
    quotas += [Quota(subject_kind="group", subject_name=g, limits={"gpu_units": 40, "gpu_hours": 5000}, weight=1.0)
               for g in groups]
    quotas += [Quota(subject_kind="user", subject_name=names[i], limits={"gpu_units": 4, "gpu_hours": 300},
                     weight=1.0) for i in range(100)]
    statuses = ["COMPLETED"] * 5 + ["FAILED", "CANCELLED", "QUEUED"]
    jobs_made = []
    for k in range(jobs):
        jid = job_rows[k] if k < len(job_rows) else f"x{k:08d}"
        status = "RUNNING" if k < len(job_rows) else statuses[k % len(statuses)]
        started = now - timedelta(minutes=rng.uniform(1, 600))
        jobs_made.append(Job(id=jid, owner=names[k % users], groups=[groups[k % 20]], name=f"train-{k}",
                             kind="command", input="", code="", command="python train.py", parameters={},
                             workdir="", slice="1g.10gb", cpu=4.0, memory_gib=16.0, image="", env={}, priority=0,
                             max_runtime_s=None, retries=0, attempt=1, status=status, reason="", exit_code=None,
                             executor="local", process={}, allocation_id=None, log_path="", outputs=[],
                             cancel_requested=False, definition_id=None, created_at=started, queued_at=started,
                             started_at=started if status != "QUEUED" else None,
                             finished_at=(started + timedelta(minutes=rng.uniform(1, 300)))
                             if status in ("COMPLETED", "FAILED", "CANCELLED") else None, updated_at=now))

    def insert(session):
        session.add_all(rows)
        session.add_all(quotas)
        session.add_all(jobs_made)

    db.run_sync(insert)
    load = {"devices": {}}
    for _n, g in inventory.gpus():
        for device in [g.uuid] + [i.uuid for i in g.mig_instances]:
            load["devices"][device] = {"utilization_percent": rng.choice([0, 0, 3, 20, 55, 90]),
                                       "memory_used_mib": rng.randint(0, 10000)}
    readings = CollectorResult("simulated", True, time.time(), devices=simulated_readings(inventory, load))
    return db, inventory, placer, readings


def _stats(values: list[float], name: str, suffix: str = "") -> dict:
    return {f"{name}_p50{suffix}": round(statistics.median(values), 3), f"{name}_p99{suffix}": round(_pct(values, 99), 3)}


def _baseline_registry(text: str):
    """prometheus_client Gauges holding the document's series (same families, labels, counts)."""
    from prometheus_client import CollectorRegistry, Gauge
    from prometheus_client.parser import text_string_to_metric_families

    families = list(text_string_to_metric_families(text))
    registry = CollectorRegistry()
    for i, f in enumerate(families):
        by_name: dict[str, list] = {}
        for s in f.samples:
            by_name.setdefault(s.name, []).append(s)
        for j, (name, samples) in enumerate(by_name.items()):
            label_names = sorted(samples[0].labels) if samples[0].labels else []
            g = Gauge(f"plain_{i}_{j}", "plain series", label_names, registry=registry)
            for s in samples:
                (g.labels(**s.labels) if label_names else g).set(s.value)
    return registry, sum(len(f.samples) for f in families)


def _idle_tracks(desk, count: int = 500) -> dict:
    """Reclaim tracks of `count` held slices, idle for 10 minutes."""
    from astrago.hub.monitor.reclaim.rules import Track

    now = time.time()
    held = [a for s in desk.device_layout() for a in (*(i.holder for i in s.instances), *s.holders) if a]
    return {aid: Track(aid, "", "", "", idle_since=now - 600.0) for aid in held[:count]}


def _monitor(db, desk, readings, tracks: dict):
    """The monitor area's Monitor over the areas' real providers, its collector replaying `readings`."""
    from types import SimpleNamespace

    from astrago.hub.jobs.metrics_view import JobMetricsView
    from astrago.hub.monitor.collectors import Collector
    from astrago.hub.monitor.config import MonitorConfig
    from astrago.hub.monitor.monitor import Monitor
    from astrago.hub.monitor.readings import CollectorResult
    from astrago.hub.quota.accounting import LedgerReader
    from astrago.hub.service.contract import AreaContext
    from astrago.hub.service.interfaces import AccountingReader, AdmissionLedger, JobsReader, MetricsSource
    from astrago.hub.uploads.metrics import UploadMetrics

    class Replay(Collector):
        name = "simulated"

        async def collect(self):
            return CollectorResult(self.name, True, time.time(), devices=readings[0])

    class Hub(Collector):
        name = "hub"

        async def collect(self):
            return CollectorResult(self.name, True, time.time(), servers=[])

    async def no_hub(*_args, **_kw):
        return 200, None

    context = AreaContext(db=db, settings=SimpleNamespace(version="bench", mode="embedded", inventory_file=""),
                          hub_api=no_hub, hub_user=no_hub)
    context.provide(AdmissionLedger, desk)
    context.provide(AccountingReader, LedgerReader(desk))
    context.provide(JobsReader, JobMetricsView(since=0.0))
    uploads = UploadMetrics()
    uploads.bytes_received.inc(123456789)
    context.provide(MetricsSource, uploads.registry)
    monitor = Monitor(context, MonitorConfig(), collectors=[Replay(), Hub()])
    monitor.policy = monitor.defaults
    monitor.tracks = dict(tracks)
    return monitor


def run(users: int, slices: int, jobs: int, runs: int) -> dict:
    import asyncio

    from prometheus_client import generate_latest

    from astrago.hub.monitor.collectors.simulated import simulated_readings
    from astrago.hub.monitor.exposition import generate
    from astrago.hub.monitor.families import FleetFamilies
    from astrago.hub.monitor.snapshot import build_view
    from astrago.hub.quota.desk import AdmissionDesk

    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="astrago-bench-metrics-") as tmp:
        db, inventory, _placer, first = build_world(Path(tmp), users, slices, jobs)
        desk = AdmissionDesk(inventory)
        assert db.run_sync(desk.restore) == []
        devices = [d.uuid for d in first.devices]
        readings = [first.devices]

        def new_readings():  # every device reports a new figure, as each round does
            load = {"devices": {u: {"utilization_percent": rng.choice([0, 0, 3, 20, 55, 90]),
                                    "memory_used_mib": rng.randint(0, 10000)} for u in devices}}
            readings[0] = simulated_readings(inventory, load)

        async def timed(fn, before=None, times=runs):
            out = []
            for _ in range(times):
                if before is not None:
                    before()
                t0 = time.perf_counter()
                await fn()
                out.append((time.perf_counter() - t0) * 1000)
            return out

        async def measure() -> dict:
            tracks = _idle_tracks(desk)
            monitor = _monitor(db, desk, readings, tracks)
            await monitor.collect()
            text = (await monitor.metrics_document()).decode()  # the first scrape: no round yet
            registry, series = _baseline_registry(text)
            baseline_text = generate_latest(registry)
            gc.freeze()  # what lives on (world, registry), as the service freezes what it built at start-up

            async def cold_scrape():
                fresh = _monitor(db, desk, readings, tracks)
                fresh.results = monitor.results
                await fresh.metrics_document()

            async def round_metrics():
                await monitor.collect()
                await monitor.refresh_families(await monitor.current_view())

            accounting, layout, js = await monitor.read_ledger()
            results = list(monitor.results.values())

            async def render_only(families):
                view = build_view(accounting, layout, inventory, results)
                families.refresh(monitor.document(view))
                registry_of(families)

            def registry_of(families):
                from prometheus_client import CollectorRegistry

                r = CollectorRegistry(auto_describe=False)
                r.register(families)
                return generate(r)

            warm = FleetFamilies()
            for _ in range(3):
                await round_metrics()
                await monitor.metrics_document()
                await render_only(warm)
                await cold_scrape()
                generate_latest(registry)
            scrape_ms = await timed(monitor.metrics_document)
            heavy = max(10, runs // 4)  # what reads the whole ledger or renders everything: fewer times
            rounds_ms = await timed(round_metrics, before=new_readings, times=heavy)
            rendered = monitor.families.rendered
            cold_ms = await timed(cold_scrape, times=heavy)
            only_ms = await timed(lambda: render_only(warm))
            only_cold_ms = await timed(lambda: render_only(FleetFamilies()), times=heavy)

            async def baseline():
                generate_latest(registry)

            base_ms = await timed(baseline)
            monitor.close()
            return {"series": series, "bytes": len(text.encode()), "baseline_bytes": len(baseline_text),
                    "families": len(monitor.families.collect()), "round_rendered_families": rendered,
                    **_stats(scrape_ms, "render_ms"), **_stats(cold_ms, "render_ms", "_cold"),
                    **_stats(rounds_ms, "round_ms"), **_stats(only_ms, "render_only_ms"),
                    **_stats(only_cold_ms, "render_only_ms", "_cold"), **_stats(base_ms, "baseline_ms"),
                    "meets_target": _pct(scrape_ms, 99) <= 50.0}

        result = asyncio.run(measure())
        db.close()
    return {"users": users, "slices": slices, "jobs": jobs, "runs": runs, "heavy_runs": max(10, runs // 4), **result,
            "target_p99_ms": 50.0,
            "python": sys.version.split()[0]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--slices", type=int, default=2000)
    p.add_argument("--jobs", type=int, default=500)
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    result = run(args.users, args.slices, args.jobs, args.runs)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            print(f"{k:22} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
