"""Admission latency: in-process and over HTTP, with JupyterHub's own user GET as the yardstick.

    python -m bench.admission --json [--users 10000 --groups 500 --gpus 1000 --requests 2000]

In-process: the AdmissionDesk on a sqlite database holding 10,000 users' and 500
groups' quotas, over an inventory of 1,000 GPUs of mixed models and layouts.
Contended (`contended_*`): the same desk with the fleet full - every GPU slice of the inventory
held - so requests for GPU slices are queued (no capacity) or refused (over quota); the
queued and refused paths are timed apart. Meanwhile one held allocation in four requests is
released (its cycle hands the room to the queue) and queued requests waiting longest leave
after `--queue-cap` are waiting (a spawn that gave up), so the fleet stays full and the queue
stays that long: every queued answer carries its exact position.
Over HTTP: the same through a real embedded AstraGo (`astrago up`: proxy, hub,
service), timed against `GET /hub/api/users/<name>` on the same hub in the same run.
Needs root (like `make run`) for the HTTP part; `--no-http` skips it.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

MODELS = ["H100-80GB", "A100-80GB", "A100-40GB", "H200-141GB", "A30"]


def cluster_spec(n_gpus: int, seed: int = 7) -> dict:
    """Mixed models and layouts: MIG (balanced and small-heavy), MPS and whole GPUs, 8 per node."""
    rng = random.Random(seed)
    from astrago.spawners import slices

    nodes, made = [], 0
    while made < n_gpus:
        model = MODELS[len(nodes) % len(MODELS)]
        gpus = []
        for _ in range(min(8, n_gpus - made)):
            kind = rng.random()
            if kind < 0.5 and slices.GPU_MODELS[model].mig_profiles:
                gpus.append({"model": model, "mode": "mig",
                             "geometry": dict(slices.GPU_MODELS[model].balanced_geometry)})
            elif kind < 0.65:
                gpus.append({"model": model, "mode": "mps", "mps_replicas": 4})
            else:
                gpus.append({"model": model, "mode": "full"})
            made += 1
        nodes.append({"name": f"node{len(nodes):03d}", "gpus": gpus})
    return {"nodes": nodes}


def slice_mix(spec: dict) -> list[str]:
    names = set()
    for node in spec["nodes"]:
        for g in node["gpus"]:
            if g["mode"] == "mig":
                names.update(g["geometry"])
            elif g["mode"] == "mps":
                names.add("mps-25")
            else:
                names.update({"gpu-1", "gpu-2"})
    return sorted(names) + ["cpu"]


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def populate(db, users: int, groups: int, seed: int = 11):
    from astrago.hub.quota.models import Quota

    rng = random.Random(seed)

    def fill(session):
        session.add(Quota(subject_kind="default", subject_name="*", limits={"gpu_units": 2, "servers": 4}, weight=1))
        for g in range(groups):
            session.add(Quota(subject_kind="group", subject_name=f"group{g}", limits={"gpu_units": 4 + g % 5,
                                                                                      "servers": 8}, weight=1 + g % 3))
        for u in range(0, users, 10):  # one user in ten has an override
            session.add(Quota(subject_kind="user", subject_name=f"user{u}", limits={"gpu_units": rng.choice([1, 8])}))

    db.run_sync(fill)


def bench_inprocess(args, spec) -> dict:
    from astrago.hub.db.session import Database
    from astrago.hub.quota.desk import AdmissionDesk, AdmissionError, AdmissionRequest
    from astrago.spawners.inventory.static import inventory_from_cluster_spec

    tmp = Path(tempfile.mkdtemp(prefix="astrago-bench-"))
    db = Database(f"sqlite:///{tmp}/bench.sqlite")
    db.migrate()
    populate(db, args.users, args.groups)
    desk = AdmissionDesk(inventory_from_cluster_spec(spec))
    names = slice_mix(spec)
    rng = random.Random(3)
    held, times, outcomes = [], [], {"admitted": 0, "queued": 0, "refused": 0}
    cpu = []  # CPU time of the working thread (a shared machine's wait left out)
    for i in range(args.requests):
        u = rng.randrange(args.users)
        req = AdmissionRequest("job", f"bench-{i}", f"user{u}", [f"group{u % args.groups}"], rng.choice(names),
                               cpu=2, memory_gib=8)
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            out = db.run_sync(desk.admit, req)
            outcomes[out.allocation["status"]] += 1
            held.append(out.allocation["id"])
        except AdmissionError:
            outcomes["refused"] += 1
        times.append((time.perf_counter() - t0) * 1e6)
        cpu.append((time.thread_time() - c0) * 1e6)
        if len(held) > 600:  # keep the fleet busy but moving
            db.run_sync(desk.release, held.pop(rng.randrange(len(held))), "bench")
    db.close()
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)  # the bench leaves nothing behind
    return {"inproc_us_p50": round(statistics.median(times), 1), "inproc_us_p99": round(pct(times, 99), 1),
            "inproc_cpu_us_p50": round(statistics.median(cpu), 1), "inproc_cpu_us_p99": round(pct(cpu, 99), 1),
            "inproc_outcomes": outcomes}


def bench_contended(args, spec) -> dict:
    from astrago.hub.db.session import Database
    from astrago.hub.quota.desk import AdmissionDesk, AdmissionError, AdmissionRequest
    from astrago.spawners.inventory.static import inventory_from_cluster_spec

    tmp = Path(tempfile.mkdtemp(prefix="astrago-bench-contended-"))
    db = Database(f"sqlite:///{tmp}/bench.sqlite")
    db.migrate()
    populate(db, args.users, args.groups)
    desk = AdmissionDesk(inventory_from_cluster_spec(spec))
    gpu_slices = [n for n in slice_mix(spec) if n != "cpu"]
    rng = random.Random(4)
    held, waiting = [], []
    seq = iter(range(10 ** 9))

    def ask(user: int, slice_name: str):
        req = AdmissionRequest("workspace", f"user{user}/s{next(seq)}", f"user{user}", [f"group{user % args.groups}"],
                               slice_name, cpu=2, memory_gib=8)
        try:
            return db.run_sync(desk.admit, req).allocation
        except AdmissionError:
            return None

    # fill: one user after another asks for every slice until no GPU slice of any kind is free
    full, user = set(), 0
    while len(full) < len(gpu_slices):
        for slice_name in gpu_slices:
            if slice_name in full:
                continue
            out = ask(user, slice_name)
            if out is not None and out["status"] == "queued":
                full.add(slice_name)
                db.run_sync(desk.release, out["id"], "bench: filling")
            elif out is not None:
                held.append(out["id"])
        user += 1
    times = {"queued": [], "refused": [], "admitted": []}
    cpu = []  # the same, in CPU time of the thread that does the work (a shared machine's wait left out)
    for i in range(args.requests):
        u = rng.randrange(args.users)
        slice_name = rng.choice(gpu_slices)
        req = AdmissionRequest("workspace", f"user{u}/c{i}", f"user{u}", [f"group{u % args.groups}"], slice_name,
                               cpu=2, memory_gib=8)
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            out = db.run_sync(desk.admit, req).allocation
            outcome = out["status"]
        except AdmissionError:
            out, outcome = None, "refused"
        times[outcome].append((time.perf_counter() - t0) * 1e6)
        cpu.append((time.thread_time() - c0) * 1e6)
        if outcome == "queued":
            waiting.append(out["id"])
        elif outcome == "admitted":
            held.append(out["id"])
        if i % 4 == 0 and held:  # the fleet moves: something ends, its cycle admits from the queue
            done = db.run_sync(desk.release, held.pop(rng.randrange(len(held))), "bench")
            held.extend(done.admitted_now)
            waiting = [w for w in waiting if w not in set(done.admitted_now)]
        while len(waiting) > args.queue_cap:  # the longest waiting gives up
            db.run_sync(desk.release, waiting.pop(0), "bench: gave up")
    db.close()
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    every = times["queued"] + times["refused"] + times["admitted"]
    out = {"contended_us_p50": round(statistics.median(every), 1), "contended_us_p99": round(pct(every, 99), 1),
           "contended_cpu_us_p50": round(statistics.median(cpu), 1), "contended_cpu_us_p99": round(pct(cpu, 99), 1),
           "contended_outcomes": {k: len(v) for k, v in times.items()}, "contended_queue_cap": args.queue_cap,
           "contended_held": len(held)}
    for kind in ("queued", "refused"):
        if times[kind]:
            out[f"contended_{kind}_us_p50"] = round(statistics.median(times[kind]), 1)
            out[f"contended_{kind}_us_p99"] = round(pct(times[kind], 99), 1)
    return out


def bench_http(args, spec) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import requests
    from support.platform import RunningPlatform, api_token, free_port, login

    tmp = Path(tempfile.mkdtemp(prefix="astrago-bench-http-"))
    inventory = tmp / "inventory.yaml"
    inventory.write_text(yaml.safe_dump(spec))
    p = RunningPlatform(data_dir=tmp / "data", port=free_port(),
                        ports={k: free_port() for k in ("hub", "proxy_api", "service", "realm")},
                        extra_args=["--inventory-file", str(inventory)])
    p.start(timeout=180)
    try:
        token = api_token(p, login(p, "admin", p.admin_password)[0], "admin")
        s = requests.Session()
        s.headers["Authorization"] = f"token {token}"
        api = p.service_url + "api/"
        s.put(api + "quotas/default/x", json={"limits": {"gpu_units": 2, "servers": 4}})
        for g in range(args.groups):
            s.put(api + f"quotas/group/group{g}", json={"limits": {"gpu_units": 4 + g % 5, "servers": 8},
                                                        "weight": 1 + g % 3})
        for u in range(0, args.users, 50):
            s.put(api + f"quotas/user/user{u}", json={"limits": {"gpu_units": 8}})
        names = slice_mix(spec)
        rng = random.Random(5)
        admit_ms, hub_ms, held = [], [], []
        for i in range(args.http_requests):
            u = rng.randrange(args.users)
            body = {"owner": {"kind": "job", "id": f"h{i}"}, "user": f"user{u}", "groups": [f"group{u % args.groups}"],
                    "slice": rng.choice(names), "cpu": 2, "memory_gib": 8}
            t0 = time.perf_counter()
            r = s.post(api + "admissions", json=body)
            admit_ms.append((time.perf_counter() - t0) * 1e3)
            if r.status_code in (201, 202):
                held.append(r.json()["id"])
            t0 = time.perf_counter()
            s.get(f"{p.url}/hub/api/users/admin")
            hub_ms.append((time.perf_counter() - t0) * 1e3)
            if len(held) > 300:
                s.delete(api + f"admissions/{held.pop(rng.randrange(len(held)))}")
        return {"http_ms_p50": round(statistics.median(admit_ms), 2), "http_ms_p99": round(pct(admit_ms, 99), 2),
                "hub_get_ms_p50": round(statistics.median(hub_ms), 2), "hub_get_ms_p99": round(pct(hub_ms, 99), 2),
                "http_requests": args.http_requests}
    finally:
        import shutil

        p.stop()
        # no account was made here (nobody spawned): delete none. (`remove_system_accounts` would
        # `userdel -r astrago-admin`, an account this bench did not create and that may be real.)
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--groups", type=int, default=500)
    ap.add_argument("--gpus", type=int, default=1_000)
    ap.add_argument("--requests", type=int, default=2_000, help="in-process admissions")
    ap.add_argument("--http-requests", type=int, default=500)
    ap.add_argument("--queue-cap", type=int, default=500, help="queued requests in the contended scenario")
    ap.add_argument("--no-contended", action="store_true")
    ap.add_argument("--no-http", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    spec = cluster_spec(args.gpus)
    result = {"users": args.users, "groups": args.groups, "gpus": args.gpus}
    result.update(bench_inprocess(args, spec))
    if not args.no_contended:
        result.update(bench_contended(args, spec))
        result["contended_target_us_p99"] = 2000.0
    if not args.no_http:
        result.update(bench_http(args, spec))
        result["http_p99_over_hub_get_p99"] = round(result["http_ms_p99"] / result["hub_get_ms_p99"], 2)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
