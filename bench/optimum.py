"""The offline optimum of a placement trace, as an integer program (scipy's `milp`, HiGHS).

It knows the whole trace in advance and may cut every MIG GPU any way at any moment; only
two things bind it: a request placed stays on its GPU (or node) for its whole life, and at
every moment each GPU's budgets hold. For MIG those are compute slices, memory slices and
one `+me` instance, which decide feasibility exactly, placements included (the catalogue
test `test_budgets_alone_decide_feasibility` checks this for every model). It ignores that
only idle GPUs may be re-cut and that instances cannot move, so it is an upper bound on
what any online policy can place: the limit the benchmark compares against.

Variables: x[r, g] = 1 when MIG request r runs on GPU g; y[r, pool] for MPS shares (a pool
is the MPS GPUs of one model and replica count: replicas are interchangeable) and for
whole GPUs (a pool is one node's whole GPUs of one model). Objective: GPU units placed.
Capacity constraints are needed only at arrival times, where load only grows.
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

from astrago.spawners import slices
from astrago.spawners.inventory import ClusterInventory


@dataclass(frozen=True)
class Optimum:
    placed_gpu_units: float  # best integer solution found
    bound: float  # the solver's upper bound (equal to placed_gpu_units when proven optimal)
    proven: bool
    variables: int
    constraints: int
    seconds: float


def intervals(events: list[dict]) -> list[dict]:
    """Requests with their [start, end) lifetimes (end = inf when never released)."""
    requests, order = {}, []
    for event in events:
        if event["op"] == "request":
            requests[event["id"]] = {**event, "start": float(event["t"]), "end": float("inf")}
            order.append(event["id"])
        elif event["op"] == "release" and event["id"] in requests:
            requests[event["id"]]["end"] = float(event["t"])
    return [requests[i] for i in order]


def solve(inventory: ClusterInventory, events: list[dict], time_limit: float = 120.0) -> Optimum:
    import time

    began = time.perf_counter()
    reqs = intervals(events)
    mig_gpus = [(node.name, gpu) for node, gpu in inventory.gpus()
                if gpu.mode == "mig" and gpu.model in slices.GPU_MODELS and not gpu.time_slicing_replicas]
    mps_pools = defaultdict(int)  # (model, replicas) -> replicas available
    full_pools = defaultdict(int)  # (node, model) -> GPUs
    for node, gpu in inventory.gpus():
        if gpu.time_slicing_replicas:
            continue
        if gpu.mode == "mps":
            mps_pools[(gpu.model, gpu.mps_replicas)] += gpu.mps_replicas
        elif gpu.mode == "full":
            full_pools[(node.name, gpu.model)] += 1

    columns = []  # (request index, resource key, usage dict, units)
    for k, r in enumerate(reqs):
        try:
            request = slices.parse_slice(r["slice"])
        except slices.InvalidSlice:
            continue
        model = None
        if r.get("model"):  # aliases (A30-24GB) mean what they mean to the placer; unknown models place nowhere
            known = slices.find_model(r["model"])
            if known is None:
                continue
            model = known.name
        if request.kind == "mig":
            for g, (node, gpu) in enumerate(mig_gpus):
                gm = slices.GPU_MODELS[gpu.model]
                if request.profile in gm.mig_profiles and model in (None, gpu.model):
                    p = gm.mig_profiles[request.profile]
                    columns.append((k, ("gpu", g), {"compute": p.compute, "memory": p.memory_slices,
                                                    "media": int(p.media_extensions)},
                                    float(slices.slice_gpu_units(gm, r["slice"]))))
        elif request.kind == "mps":
            for (pool_model, replicas) in mps_pools:
                if 100 // replicas == request.percent and model in (None, pool_model):
                    columns.append((k, ("mps", pool_model, replicas), {"replicas": 1}, request.percent / 100))
        elif request.kind == "gpu":
            for (node, pool_model) in full_pools:
                if model in (None, pool_model) and full_pools[(node, pool_model)] >= request.count:
                    columns.append((k, ("full", node, pool_model), {"gpus": request.count}, float(request.count)))

    capacity = {}
    for g, (_, gpu) in enumerate(mig_gpus):
        gm = slices.GPU_MODELS[gpu.model]
        capacity[("gpu", g)] = {"compute": gm.compute_slices, "memory": gm.memory_slices, "media": 1}
    for key, replicas in mps_pools.items():
        capacity[("mps",) + key] = {"replicas": replicas}
    for key, count in full_pools.items():
        capacity[("full",) + key] = {"gpus": count}

    # One row per (resource, dimension, arrival time of a request that may use it).
    rows, cols, vals, upper = [], [], [], []
    by_resource = defaultdict(list)
    for c, (k, resource, usage, _) in enumerate(columns):
        by_resource[resource].append(c)
    row = 0
    for resource, cs in by_resource.items():
        cs_sorted = sorted(cs, key=lambda c: reqs[columns[c][0]]["start"])
        for dim, cap in capacity[resource].items():
            if all(columns[c][2].get(dim, 0) == 0 for c in cs):
                continue
            for c_at in cs_sorted:
                t = reqs[columns[c_at][0]]["start"]
                active = [c for c in cs if reqs[columns[c][0]]["start"] <= t < reqs[columns[c][0]]["end"]
                          and columns[c][2].get(dim, 0)]
                if sum(columns[c][2][dim] for c in active) <= cap:
                    continue  # cannot bind
                for c in active:
                    rows.append(row)
                    cols.append(c)
                    vals.append(columns[c][2][dim])
                upper.append(cap)
                row += 1
    # Each request placed at most once.
    per_request = defaultdict(list)
    for c, (k, *_rest) in enumerate(columns):
        per_request[k].append(c)
    for k, cs in per_request.items():
        if len(cs) > 1:
            for c in cs:
                rows.append(row)
                cols.append(c)
                vals.append(1)
            upper.append(1)
            row += 1

    n = len(columns)
    if n == 0:
        return Optimum(0.0, 0.0, True, 0, 0, time.perf_counter() - began)
    objective = -np.array([units for *_, units in columns])
    constraints = []
    if row:
        matrix = coo_matrix((vals, (rows, cols)), shape=(row, n)).tocsr()
        constraints = [LinearConstraint(matrix, -np.inf, np.array(upper, dtype=float))]
    with _quiet_stdout():  # HiGHS writes progress lines to fd 1 even with disp=False
        result = milp(objective, constraints=constraints, integrality=np.ones(n), bounds=Bounds(0, 1),
                      options={"time_limit": time_limit, "disp": False})
    placed = -result.fun if result.x is not None else 0.0
    bound = -getattr(result, "mip_dual_bound", result.fun) if result.x is not None else float("nan")
    if bound is None or bound != bound:
        bound = placed
    return Optimum(placed_gpu_units=placed, bound=max(bound, placed), proven=result.status == 0,
                   variables=n, constraints=row, seconds=time.perf_counter() - began)


@contextmanager
def _quiet_stdout():
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def requested_units(events) -> Fraction:
    total = Fraction(0)
    for r in intervals(events):
        try:
            total += slices.slice_gpu_units(r.get("model"), r["slice"])
        except slices.InvalidSlice:
            pass
    return total
