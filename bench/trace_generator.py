"""Generate placement traces (JSON lines) and cluster files for `python -m bench.placement`.

A trace is a sequence of arrivals (Poisson) with holding times (exponential), each asking
for one slice drawn from a mix. Events are `{"t", "op": "request"|"release", "id", "user",
"slice", "model"?}` ordered by time; a release refers to an earlier request id.

    python -m bench.trace_generator --mix uniform --requests 400 --load 1.1 --seed 1 > t.jsonl
    python -m bench.trace_generator --mix uniform --at-once --load 1.0 --seed 1 > batch.jsonl
    python -m bench.trace_generator --cluster-gpus 1000 > cluster-1000.yaml

`--load` is the offered load: mean concurrent requested GPU units over the cluster's GPU
units (1.0 = the cluster would be exactly full if everything could be packed perfectly).
`--at-once` makes a batch trace: every request at t = 0 (requested units = load x the
cluster's units, so `--requests` is ignored), each released after its holding time.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import sys

from astrago.spawners.slices import slice_gpu_units

#: Slice mixes (weights), named by what they stress among MIG profiles. MIG profile names are
#: the 80 GB A100/H100 ones, so traces run on clusters of either. The MPS and whole-GPU
#: weights give those pools the same share of demanded GPU units as they have of the
#: shipped cluster's GPUs (1/8 each), so no pool is starved or flooded by construction and
#: the MIG policies are what differs.
MIXES = {
    # every MIG profile equally likely
    "uniform": {"1g.10gb": 1, "2g.20gb": 1, "3g.40gb": 1, "4g.40gb": 1, "7g.80gb": 1,
                "mps-25": 1.6, "gpu-1": 0.2, "gpu-2": 0.1},
    # mostly 1g and 2g (notebooks, small inference)
    "small-skew": {"1g.10gb": 10, "2g.20gb": 4, "3g.40gb": 1, "4g.40gb": 0.5, "7g.80gb": 0.25,
                   "mps-25": 2.4, "gpu-1": 0.4, "gpu-2": 0.1},
    # mostly 3g, 4g and 7g (training, large models)
    "large-skew": {"1g.10gb": 1, "2g.20gb": 1.5, "3g.40gb": 6, "4g.40gb": 4, "7g.80gb": 2,
                   "mps-25": 5, "gpu-1": 0.8, "gpu-2": 0.2},
}


def mean_units(mix: dict[str, float]) -> float:
    total = sum(mix.values())
    return sum(w * float(slice_gpu_units(None, s)) for s, w in mix.items()) / total


def generate(mix: dict[str, float], requests: int, capacity_units: float, load: float, mean_hold: float,
             seed: int, users: int = 40) -> list[dict]:
    """Arrival rate chosen so that rate x mean hold x mean units = load x capacity."""
    rng = random.Random(seed)
    rate = load * capacity_units / (mean_hold * mean_units(mix))
    names, weights = list(mix), list(mix.values())
    events, releases = [], []
    t = 0.0
    for n in range(requests):
        t += rng.expovariate(rate)
        while releases and releases[0][0] <= t:
            at, rid = heapq.heappop(releases)
            events.append({"t": round(at, 3), "op": "release", "id": rid})
        rid = f"r{n}"
        events.append({"t": round(t, 3), "op": "request", "id": rid, "user": f"u{rng.randrange(users)}",
                       "slice": rng.choices(names, weights)[0]})
        heapq.heappush(releases, (t + rng.expovariate(1 / mean_hold), rid))
    while releases:
        at, rid = heapq.heappop(releases)
        events.append({"t": round(at, 3), "op": "release", "id": rid})
    return events


def generate_at_once(mix: dict[str, float], capacity_units: float, load: float, mean_hold: float, seed: int,
                     users: int = 40) -> list[dict]:
    """A batch: requests at t = 0 until their GPU units reach `load` x `capacity_units`."""
    rng = random.Random(seed)
    names, weights = list(mix), list(mix.values())
    requests, releases, units = [], [], 0.0
    while units < load * capacity_units:
        rid = f"r{len(requests)}"
        slice_name = rng.choices(names, weights)[0]
        requests.append({"t": 0.0, "op": "request", "id": rid, "user": f"u{rng.randrange(users)}",
                         "slice": slice_name})
        releases.append((round(rng.expovariate(1 / mean_hold), 3), rid))
        units += float(slice_gpu_units(None, slice_name))
    return requests + [{"t": at, "op": "release", "id": rid} for at, rid in sorted(releases)]


def cluster_spec(gpus: int, gpus_per_node: int = 8, mig_share: float = 0.75, mps_share: float = 0.125) -> dict:
    """A cluster of 80 GB GPUs (H100 and A100 alternating by node): per node, most GPUs in MIG
    mode (uncut), some MPS (4 replicas), the rest whole."""
    nodes = []
    for n in range((gpus + gpus_per_node - 1) // gpus_per_node):
        count = min(gpus_per_node, gpus - n * gpus_per_node)
        model = "H100-80GB" if n % 2 == 0 else "A100-80GB"
        mig = round(count * mig_share)
        mps = round(count * mps_share)
        node = [{"model": model, "mode": "mig"} for _ in range(mig)]
        node += [{"model": model, "mode": "mps", "mps_replicas": 4} for _ in range(mps)]
        node += [{"model": model, "mode": "full"} for _ in range(count - mig - mps)]
        nodes.append({"name": f"node-{n:03d}", "gpus": node})
    return {"nodes": nodes}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mix", choices=sorted(MIXES), default="uniform")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--gpus", type=int, default=32, help="GPUs of the cluster the load is computed for")
    parser.add_argument("--load", type=float, default=1.0)
    parser.add_argument("--mean-hold", type=float, default=3600.0, help="mean holding time, seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--at-once", action="store_true", help="a batch: every request at t = 0")
    parser.add_argument("--cluster-gpus", type=int, help="write a cluster file (YAML) of this many GPUs instead")
    args = parser.parse_args(argv)
    if args.cluster_gpus:
        import yaml

        yaml.safe_dump(cluster_spec(args.cluster_gpus), sys.stdout, sort_keys=False, default_flow_style=None)
        return
    if args.at_once:
        events = generate_at_once(MIXES[args.mix], args.gpus, args.load, args.mean_hold, args.seed)
    else:
        events = generate(MIXES[args.mix], args.requests, args.gpus, args.load, args.mean_hold, args.seed)
    for event in events:
        sys.stdout.write(json.dumps(event) + "\n")


if __name__ == "__main__":
    main()
