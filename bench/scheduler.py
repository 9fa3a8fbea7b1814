"""Scheduler benchmark: the fair-share admission cycle the service runs, at scale.

    python -m bench.scheduler --json
    python -m bench.scheduler --cycles 200 --day-hours 24 --seed 7

Cluster: 1,000 GPUs of mixed slices (whole H100s and A100s, H100s cut to MIG 1g.10gb x 7 or
3g.40gb + 2g.20gb + 2 x 1g.10gb, H100s shared through MPS in 25 % shares) on 125 nodes of 8.
Queue: 10,000 pending jobs from 200 users in 20 groups (weights 1 to 4), slices mixed from
1g.10gb to gpu-8, priorities -2..2, some users under a GPU quota.

Part 1, cycle time. The cycle timed is `astrago.hub.quota.cycle.plan_admissions`, the very
function `AdmissionDesk.schedule()` runs on the state it keeps in memory (the waiting queue,
`astrago.hub.quota.waiting.WaitingQueue`, changed as requests come and go: fair order, quota
check, placement, backfill), with usage weighed as the desk weighs it (`committed_usage`:
decayed GPU-hours plus what is held now). Between cycles a random 1 to 60
running jobs end; each cycle admits what then fits; the queue is kept at 10,000. In the same
run, on the same state, a naive FIFO scan (every pending job in arrival order: quota check,
then try to place) is timed for comparison; what it placed is released again before the fair
cycle runs, so both see the same cluster.

Part 2, fairness over a simulated day. Every group keeps a backlog all day (new jobs arrive as
old ones are admitted); a cycle runs every simulated minute after the finished jobs are released;
decayed usage (half-life 7 days, the service's default) feeds the fair order. Each group's share
of the GPU-hours delivered during the day is compared with its weighted fair share
(weight / sum of weights, since every group has demand all day): deviation = |share - fair| / fair.

Part 3, the service's whole cycle. `AdmissionDesk.schedule()` over sqlite with 10,000 queued
allocations (`--pending`), in its own transaction as the service runs it: the quota book's check
of the quotas table, the cycle over the queue and usage in memory, writing the admissions and
the commit. Between cycles 1 to 60 admitted allocations are released (`desk.release`, without
the cycle each release would run, so the timed one has capacity to hand out). The desk reads the
queue and usage from the database once, when it starts (reported as `service_start_ms`).
"""
from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import statistics
import sys
import time
from collections import defaultdict
from fractions import Fraction

from astrago.hub.quota.cycle import Candidate, committed_usage, plan_admissions
from astrago.hub.quota.fairshare import DEFAULT_HALF_LIFE_S
from astrago.hub.quota.limits import QuotaLimits, Request, Usage, check
from astrago.hub.quota.waiting import WaitingQueue
from astrago.spawners import slices
from astrago.spawners.inventory.static import inventory_from_cluster_spec
from astrago.spawners.placement import Placer

SLICE_MIX = [("1g.10gb", 0.24), ("2g.20gb", 0.08), ("3g.40gb", 0.08), ("mps-25", 0.20), ("gpu-1", 0.28),
             ("gpu-2", 0.07), ("gpu-4", 0.04), ("gpu-8", 0.01)]


def cluster_spec() -> dict:
    """125 nodes x 8 GPUs = 1,000 GPUs of mixed slices."""
    nodes = []

    def add(count, prefix, gpu):
        for n in range(count):
            nodes.append({"name": f"{prefix}{n:03d}", "gpus": [dict(gpu) for _ in range(8)]})

    add(50, "h100-full-", {"model": "H100-80GB", "mode": "full"})
    add(25, "a100-full-", {"model": "A100-80GB", "mode": "full"})
    add(13, "h100-mig7-", {"model": "H100-80GB", "mode": "mig", "geometry": {"1g.10gb": 7}})
    add(12, "h100-migmix-", {"model": "H100-80GB", "mode": "mig",
                             "geometry": {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}})
    add(25, "h100-mps-", {"model": "H100-80GB", "mode": "mps", "mps_replicas": 4})
    return {"nodes": nodes}


def units_of(slice_name: str) -> Fraction:
    return slices.slice_gpu_units("H100-80GB" if slice_name[0].isdigit() else None, slice_name)


class Workload:
    """Users, groups, weights, quotas, and a stream of jobs (deterministic for a seed)."""

    def __init__(self, seed: int, users: int = 200, groups: int = 20):
        self.rng = random.Random(seed)
        self.groups = [f"group-{g:02d}" for g in range(groups)]
        self.weights = {g: float(1 + i % 4) for i, g in enumerate(self.groups)}
        self.users = [f"user-{u:03d}" for u in range(users)]
        per_group = users // groups
        self.group_of = {u: self.groups[(i // per_group) % groups] for i, u in enumerate(self.users)}
        # one user in ten (one in each group) has a quota of 4 GPU units held at once
        self.limits = {u: (QuotaLimits(gpu_units=Fraction(4)) if i % 10 == 0 else QuotaLimits())
                       for i, u in enumerate(self.users)}
        self.names, weights = zip(*SLICE_MIX)
        self.cum = []
        total = 0.0
        for w in weights:
            total += w
            self.cum.append(total)
        self.units = {name: units_of(name) for name in self.names}
        self.seq = 0

    def job(self, now: float, user: str | None = None) -> tuple[Candidate, float]:
        """A new job and its run time (seconds)."""
        rng = self.rng
        user = user or rng.choice(self.users)
        x = rng.random() * self.cum[-1]
        slice_name = self.names[next(i for i, c in enumerate(self.cum) if x <= c)]
        self.seq += 1
        duration = min(8 * 3600, max(300, rng.lognormvariate(math.log(5400), 0.6)))
        cand = Candidate(id=f"j{self.seq:07d}", user=user, group=self.group_of[user], created=now + self.seq * 1e-6,
                         priority=rng.randint(-2, 2), slice=slice_name, units=self.units[slice_name],
                         cpu=Fraction(4), memory_gib=Fraction(16))
        return cand, duration


class Holdings:
    """What each user holds (for the quota check), updated on admit and release."""

    def __init__(self):
        self.units = defaultdict(Fraction)
        self.count = defaultdict(int)

    def usage(self, user: str) -> Usage:
        return Usage(gpu_units=self.units[user], servers=self.count[user])

    def add(self, c: Candidate, sign: int = 1):
        self.units[c.user] += sign * c.units
        self.count[c.user] += sign


def fifo_cycle(pending_in_order, placer: Placer, workload: Workload, holdings: Holdings) -> list:
    """The naive baseline: every pending job in arrival order, quota check, try to place."""
    admitted = []
    extra = defaultdict(Fraction)
    extra_n = defaultdict(int)
    for c in pending_in_order:
        lim = workload.limits[c.user]
        used = Usage(gpu_units=holdings.units[c.user] + extra[c.user], servers=holdings.count[c.user] + extra_n[c.user])
        if check(lim, used, Request(c.slice, c.units, c.cpu, c.memory_gib)):
            continue
        placement = placer.place(c.id, c.slice)
        if placement is not None:
            admitted.append(c.id)
            extra[c.user] += c.units
            extra_n[c.user] += 1
    return admitted


class DayUsage:
    """Decayed GPU-hours per user and group (half-life as the service), kept incrementally:
    closed intervals decay by one factor per step; running ones are integrated exactly."""

    def __init__(self, half_life_s: float):
        self.k = math.log(2) / half_life_s
        self.closed_user = defaultdict(float)
        self.closed_group = defaultdict(float)
        self.t = 0.0

    def _integral(self, units: float, start: float, end: float, now: float) -> float:
        k = self.k
        return units * (math.exp(-k * (now - end)) - math.exp(-k * (now - start))) / k / 3600

    def advance(self, now: float):
        factor = math.exp(-self.k * (now - self.t))
        for d in (self.closed_user, self.closed_group):
            for key in d:
                d[key] *= factor
        self.t = now

    def close(self, c: Candidate, start: float, end: float):
        v = self._integral(float(c.units), start, end, self.t)
        self.closed_user[c.user] += v
        self.closed_group[c.group] += v

    def snapshot(self, running) -> tuple[dict, dict]:
        """(group, user) usage as the service's fair order weighs it: decayed GPU-hours plus
        what is held now (`astrago.hub.quota.cycle.committed_usage`)."""
        group, user = dict(self.closed_group), dict(self.closed_user)
        held_group, held_user = defaultdict(float), defaultdict(float)
        for c, start in running:
            v = self._integral(float(c.units), start, self.t, self.t)
            group[c.group] = group.get(c.group, 0.0) + v
            user[c.user] = user.get(c.user, 0.0) + v
            held_group[c.group] += float(c.units)
            held_user[c.user] += float(c.units)
        return committed_usage(group, held_group), committed_usage(user, held_user)


def percentile(values, q: float) -> float:
    values = sorted(values)
    if not values:
        return 0.0
    i = min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))
    return values[i]


def part_cycle_times(seed: int, cycles: int, pending: int) -> dict:
    workload = Workload(seed)
    placer = Placer(inventory_from_cluster_spec(cluster_spec()))
    holdings = Holdings()
    now = 0.0
    queue = WaitingQueue()
    for _ in range(pending):
        c, _d = workload.job(now)
        queue.add(c)
    running: dict[str, Candidate] = {}
    usage = DayUsage(DEFAULT_HALF_LIFE_S)
    started: dict[str, float] = {}
    fair_ms, fifo_ms, fair_admitted, fifo_admitted = [], [], 0, 0
    considered = []
    rng = random.Random(seed + 1)
    for n in range(cycles + 1):
        now += 60.0
        usage.advance(now)
        # some running jobs end
        if running:
            for job_id in rng.sample(sorted(running), min(len(running), rng.randint(1, 60))):
                c = running.pop(job_id)
                placer.release(job_id)
                holdings.add(c, -1)
                usage.close(c, started.pop(job_id), now)
        candidates = list(queue)  # arrival order, for the FIFO scan
        limits = {u: workload.limits[u] for u in {c.user for c in candidates}}
        use = {u: holdings.usage(u) for u in limits if workload.limits[u] != QuotaLimits()}
        group_usage, user_usage = usage.snapshot((running[j], started[j]) for j in running)
        # the naive FIFO scan, on the same state, then undone
        t0 = time.perf_counter()
        fifo = fifo_cycle(candidates, placer, workload, holdings)
        fifo_t = time.perf_counter() - t0
        for job_id in fifo:
            placer.release(job_id)
        # the service's cycle, over its waiting queue
        t0 = time.perf_counter()
        result = plan_admissions(queue, placer, group_usage=group_usage, user_usage=user_usage,
                                 weights=workload.weights, limits=limits, usage=use)
        fair_t = time.perf_counter() - t0
        for job_id, _p in result.admitted:
            c, _reason = queue.remove(job_id)
            running[job_id] = c
            started[job_id] = now
            holdings.add(c)
            new, _d = workload.job(now)
            queue.add(new)
        if n == 0:
            first_fill = len(result.admitted)
            continue  # the first cycle fills an empty cluster: reported apart
        fair_ms.append(fair_t * 1000)
        fifo_ms.append(fifo_t * 1000)
        fair_admitted += len(result.admitted)
        fifo_admitted += len(fifo)
        considered.append(result.considered)
    return {
        "cycles": cycles,
        "pending": pending,
        "first_cycle_admitted": first_fill,
        "cycle_ms_p50": round(statistics.median(fair_ms), 3),
        "cycle_ms_p99": round(percentile(fair_ms, 0.99), 3),
        "cycle_ms_max": round(max(fair_ms), 3),
        "fifo_cycle_ms_p50": round(statistics.median(fifo_ms), 3),
        "fifo_cycle_ms_p99": round(percentile(fifo_ms, 0.99), 3),
        "admitted_per_cycle_mean": round(fair_admitted / cycles, 2),
        "fifo_admitted_per_cycle_mean": round(fifo_admitted / cycles, 2),
        "admitted_per_second": round(fair_admitted / (sum(fair_ms) / 1000), 1),
        "fifo_admitted_per_second": round(fifo_admitted / (sum(fifo_ms) / 1000), 1),
        "considered_per_cycle_median": statistics.median(considered),
        "running_at_end": len(running),
    }


def part_fair_day(seed: int, hours: float, pending: int, step_s: float = 60.0) -> dict:
    workload = Workload(seed + 100)
    placer = Placer(inventory_from_cluster_spec(cluster_spec()))
    holdings = Holdings()
    usage = DayUsage(DEFAULT_HALF_LIFE_S)
    queue = WaitingQueue()
    per_group_pending = defaultdict(int)
    for _ in range(pending):
        c, d = workload.job(0.0)
        queue.add(c)
    durations = {}
    for c in queue:
        per_group_pending[c.group] += 1
    ends: list = []  # (end time, job id)
    running: dict[str, tuple[Candidate, float]] = {}
    delivered = defaultdict(float)  # GPU-hours per group within the day
    end_of_day = hours * 3600
    floor = pending // len(workload.groups) // 2  # every group keeps at least this many pending
    now = 0.0
    cycle_ms = []
    while now <= end_of_day:
        usage.advance(now)
        while ends and ends[0][0] <= now:
            _t, job_id = heapq.heappop(ends)
            c, start = running.pop(job_id)
            placer.release(job_id)
            holdings.add(c, -1)
            usage.close(c, start, _t)
            delivered[c.group] += float(c.units) * (_t - start) / 3600
        for g in workload.groups:  # demand all day: every group keeps a backlog
            while per_group_pending[g] < floor:
                user = workload.rng.choice([u for u in workload.users if workload.group_of[u] == g])
                c, d = workload.job(now, user)
                queue.add(c)
                per_group_pending[g] += 1
        limits = {u: workload.limits[u] for u in {c.user for c in queue}}
        use = {u: holdings.usage(u) for u in limits if workload.limits[u] != QuotaLimits()}
        group_usage, user_usage = usage.snapshot(running.values())
        t0 = time.perf_counter()
        result = plan_admissions(queue, placer, group_usage=group_usage, user_usage=user_usage,
                                 weights=workload.weights, limits=limits, usage=use)
        cycle_ms.append((time.perf_counter() - t0) * 1000)
        for job_id, _p in result.admitted:
            c, _reason = queue.remove(job_id)
            per_group_pending[c.group] -= 1
            holdings.add(c)
            duration = durations.pop(job_id, None) or min(8 * 3600, max(300, workload.rng.lognormvariate(
                math.log(5400), 0.6)))
            running[job_id] = (c, now)
            heapq.heappush(ends, (now + duration, job_id))
        now += step_s
    for c, start in running.values():  # still running at the end of the day: count up to it
        delivered[c.group] += float(c.units) * (end_of_day - start) / 3600
    total = sum(delivered.values())
    weight_sum = sum(workload.weights.values())
    groups = []
    worst = 0.0
    for g in workload.groups:
        fair = workload.weights[g] / weight_sum
        share = delivered[g] / total if total else 0.0
        dev = abs(share - fair) / fair
        worst = max(worst, dev)
        groups.append({"group": g, "weight": workload.weights[g], "gpu_hours": round(delivered[g], 1),
                       "share": round(share, 5), "fair_share": round(fair, 5), "deviation": round(dev, 4)})
    capacity = sum(1 for n in cluster_spec()["nodes"] for _ in n["gpus"]) * hours
    return {"hours": hours, "gpu_hours_delivered": round(total, 1), "utilisation": round(total / capacity, 4),
            "max_fair_share_deviation": round(worst, 4), "groups": groups,
            "day_cycle_ms_p50": round(statistics.median(cycle_ms), 3),
            "day_cycle_ms_p99": round(percentile(cycle_ms, 0.99), 3)}


def part_service_cycle(seed: int, pending: int, cycles: int = 10) -> dict:
    """Part 3: `AdmissionDesk.schedule()` itself over sqlite (what the service runs: read the queue,
    quotas and usage, plan, write admissions and reasons), with `pending` queued allocations."""
    import tempfile
    import uuid
    from datetime import datetime, timedelta

    from sqlalchemy import select

    from astrago.hub.db.session import Database
    from astrago.hub.quota.desk import AdmissionDesk
    from astrago.hub.quota.models import Allocation, Quota

    workload = Workload(seed + 200)
    rng = random.Random(seed + 201)
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{tmp}/bench.sqlite")
        db.migrate()
        desk = AdmissionDesk(inventory_from_cluster_spec(cluster_spec()))
        start = datetime.utcnow() - timedelta(seconds=pending)

        def fill(session):
            for g in workload.groups:
                session.add(Quota(subject_kind="group", subject_name=g, limits={}, weight=workload.weights[g],
                                  updated_by="bench"))
            for u, lim in workload.limits.items():
                if lim != QuotaLimits():
                    session.add(Quota(subject_kind="user", subject_name=u, limits=lim.to_dict(), weight=1.0,
                                      updated_by="bench"))
            for i in range(pending):
                c, _d = workload.job(0.0)
                session.add(Allocation(
                    id=str(uuid.uuid4()), client_key=str(uuid.uuid4()), owner_kind="job", owner_id=c.id, user=c.user,
                    groups=[c.group], accounting_group=c.group, slice=c.slice, units_num=c.units.numerator,
                    units_den=c.units.denominator, cpu=4.0, memory_gib=16.0, priority=c.priority, status="queued",
                    reason="", placement={}, created_at=start + timedelta(seconds=i)))

        db.run_sync(fill)
        t0 = time.perf_counter()
        db.run_sync(desk.restore)  # as the service starts: the queue and usage read once
        start_ms = (time.perf_counter() - t0) * 1000
        db.run_sync(desk.schedule)  # fills the empty cluster
        times, cpu = [], []  # wall; CPU time of the thread doing the work (a shared machine's wait left out)
        for _ in range(cycles):
            def release_some(session):
                ids = session.scalars(select(Allocation.id).where(Allocation.status == "admitted")).all()
                for alloc_id in rng.sample(ids, min(len(ids), rng.randint(1, 60))):
                    desk.release(session, alloc_id, "bench", schedule=False)

            db.run_sync(release_some)
            t0, c0 = time.perf_counter(), time.thread_time()
            db.run_sync(desk.schedule)
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.thread_time() - c0) * 1000)
        db.close()
    return {"service_cycle_ms_p50": round(statistics.median(times), 1),
            "service_cycle_ms_p99": round(percentile(times, 0.99), 1), "service_cycles": cycles,
            "service_cycle_cpu_ms_p50": round(statistics.median(cpu), 1),
            "service_cycle_cpu_ms_p99": round(percentile(cpu, 0.99), 1), "service_start_ms": round(start_ms, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cycles", type=int, default=200, help="timed cycles (part 1)")
    parser.add_argument("--pending", type=int, default=10_000, help="jobs waiting (both parts)")
    parser.add_argument("--day-hours", type=float, default=24.0, help="simulated hours (part 2)")
    parser.add_argument("--service-cycles", type=int, default=10,
                        help="cycles of the desk over sqlite (part 3; 0 skips it)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    out = {"benchmark": "scheduler", "gpus": 1000, "users": 200, "groups": 20}
    out.update(part_cycle_times(args.seed, args.cycles, args.pending))
    out.update(part_fair_day(args.seed, args.day_hours, args.pending))
    if args.service_cycles:
        out.update(part_service_cycle(args.seed, args.pending, args.service_cycles))
    out["targets"] = {"cycle_ms_p99": 50.0, "max_fair_share_deviation": 0.05, "service_cycle_ms_p99": 50.0}
    out["targets_met"] = (out["cycle_ms_p99"] <= 50.0 and out["max_fair_share_deviation"] <= 0.05
                          and out.get("service_cycle_ms_p99", 0.0) <= 50.0)
    out["wall_s"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        for key, value in out.items():
            if key != "groups":
                print(f"{key:32} {value}")
        for g in out["groups"]:
            print(f"  {g['group']} weight {g['weight']:.0f}: {g['share'] * 100:6.2f} % of GPU-hours "
                  f"(fair {g['fair_share'] * 100:5.2f} %, off by {g['deviation'] * 100:4.1f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
