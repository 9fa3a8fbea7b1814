"""Rendering `/services/astrago/metrics` at scale, against prometheus_client in the same run.

    python -m bench.metrics --json [--users 1000 --slices 2000 --jobs 500 --runs 200]

The world: 2,000 slices (250 H100s cut 7 x 1g.10gb = 1,750 MIG instances, plus 250 whole
GPUs), 1,000 users holding 1,800 of them (200 held by running jobs), 3,000 released
allocations in the quota period (GPU-hours), quotas for the default, 20 groups and 100 users,
500 jobs in the jobs table, and a utilisation reading for every device. All in a sqlite file,
as in the embedded mode.

Timed, each `--runs` times after warm-up:
- `render_ms`: what a scrape costs the service — read the ledger, the layout and the jobs
  (`Monitor._read_ledger`'s work), join them with the readings, render the text;
- `render_only_ms`: the join and the text from data already read;
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


def run(users: int, slices: int, jobs: int, runs: int) -> dict:
    from prometheus_client import CollectorRegistry, Gauge, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from astrago.hub.monitor.exposition import render
    from astrago.hub.monitor.jobs_adapter import JobMetrics
    from astrago.hub.monitor.readings import CollectorResult
    from astrago.hub.monitor.reclaim.rules import Policy
    from astrago.hub.monitor.snapshot import build_view, gather_accounting

    with tempfile.TemporaryDirectory(prefix="astrago-bench-metrics-") as tmp:
        db, inventory, placer, readings = build_world(Path(tmp), users, slices, jobs)
        job_metrics = JobMetrics(since=0.0)
        hub = CollectorResult("hub", True, time.time(), servers=[])

        def read(session):
            accounting = gather_accounting(session)
            return accounting, placer.snapshot(), job_metrics.gather(session, accounting.at)

        def scrape():
            accounting, layout, js = db.run_sync(read)
            view = build_view(accounting, layout, inventory, [readings, hub])
            idle = {aid: 600.0 for aid in list(accounting.held)[:500]}
            return render(view, version="bench", mode="embedded", jobs=js, idle_seconds=idle,
                          track_states={"watching": len(accounting.held)}, policy=Policy(),
                          collectors=[readings, hub], last_success={"simulated": readings.at})

        text = scrape()
        accounting, layout, js = db.run_sync(read)

        def render_only():
            view = build_view(accounting, layout, inventory, [readings, hub])
            return render(view, version="bench", mode="embedded", jobs=js, policy=Policy(),
                          collectors=[readings, hub])

        families = list(text_string_to_metric_families(text))
        series = sum(len(f.samples) for f in families)
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
        baseline_text = generate_latest(registry)
        gc.freeze()  # what lives on (world, registry), as the service freezes what it built at start-up
        for _ in range(3):
            scrape(), render_only(), generate_latest(registry)

        def timed(fn):
            out = []
            for _ in range(runs):
                t0 = time.perf_counter()
                fn()
                out.append((time.perf_counter() - t0) * 1000)
            return out

        scrape_ms = timed(scrape)
        only_ms = timed(render_only)
        base_ms = timed(lambda: generate_latest(registry))
        db.close()
    return {
        "users": users, "slices": slices, "jobs": jobs, "runs": runs, "series": series,
        "bytes": len(text.encode()), "baseline_bytes": len(baseline_text),
        "render_ms_p50": round(statistics.median(scrape_ms), 3), "render_ms_p99": round(_pct(scrape_ms, 99), 3),
        "render_only_ms_p50": round(statistics.median(only_ms), 3),
        "render_only_ms_p99": round(_pct(only_ms, 99), 3),
        "baseline_ms_p50": round(statistics.median(base_ms), 3), "baseline_ms_p99": round(_pct(base_ms, 99), 3),
        "target_p99_ms": 50.0, "meets_target": _pct(scrape_ms, 99) <= 50.0,
        "python": sys.version.split()[0],
    }


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
