"""The placement benchmark's command line and its exact solver, on traces small enough to reason about."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]

# One H100 in MIG mode, uncut. A 4g and a 3g share it for a while; a 7g arrives in between.
CLUSTER = {"nodes": [{"name": "n1", "gpus": [{"model": "H100-80GB", "mode": "mig"}]}]}
TRACE = [
    {"t": 0.0, "op": "request", "id": "a", "user": "u1", "slice": "4g.40gb"},
    {"t": 1.0, "op": "request", "id": "b", "user": "u2", "slice": "3g.40gb", "model": "H100-80GB"},
    {"t": 2.0, "op": "request", "id": "c", "user": "u3", "slice": "7g.80gb"},
    {"t": 3.0, "op": "release", "id": "c"},
    {"t": 10.0, "op": "release", "id": "a"},
    {"t": 10.0, "op": "release", "id": "b"},
]


@pytest.fixture
def files(tmp_path):
    cluster, trace = tmp_path / "cluster.json", tmp_path / "trace.jsonl"
    cluster.write_text(json.dumps(CLUSTER))
    trace.write_text("".join(json.dumps(e) + "\n" for e in TRACE))
    return str(cluster), str(trace)


def run(*args):
    out = subprocess.run([sys.executable, "-m", "bench.placement", *args, "--json"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


@pytest.mark.parametrize("policy, placed, units, reconfigurations", [
    ("planner", 2, 1.0, 1),  # cut 4g+3g for a, b takes the 3g, c finds the GPU busy
    ("first-fit", 2, 1.0, 1),
    ("static", 1, 0.4286, 0),  # all-balanced has no 4g: only b's 3g fits
])
def test_cli_reports_each_policy(files, policy, placed, units, reconfigurations):
    result = run("--cluster", files[0], "--trace", files[1], "--policy", policy)
    timing = {k: result.pop(k) for k in ("decision_us_p50", "decision_us_p99", "decision_us_p99_cold",
                                         "batch_decision_ms_max")}
    assert result == {"policy": policy, "gpus": 1, "requests": 3, "placed": placed, "rejected": 3 - placed,
                      "placed_gpu_units": units, "requested_gpu_units": 2.0, "reconfigurations": reconfigurations,
                      "runs": 1}
    assert all(value >= 0 for value in timing.values())


def test_optimum_is_the_limit(files):
    result = run("--cluster", files[0], "--trace", files[1], "--compare", "--optimum")
    # Either a and b (3/7 + 4/7) or the 7g: one GPU unit at most, and the planner reaches it.
    assert (result["optimum"]["placed_gpu_units"], result["optimum"]["proven"]) == (1.0, True)
    assert result["planner_vs_optimum"] == 1.0


BATCH = [{"t": 0.0, "op": "request", "id": r, "user": "u", "slice": s}
         for r, s in (("a", "1g.10gb"), ("b", "4g.40gb"), ("c", "3g.40gb"), ("d", "7g.80gb"))]


def test_a_batch_trace_reaches_the_proven_optimum(tmp_path):
    cluster, trace = tmp_path / "cluster.json", tmp_path / "batch.jsonl"
    cluster.write_text(json.dumps({"nodes": [{"name": "n1", "gpus": [{"model": "H100-80GB", "mode": "mig"}] * 2}]}))
    trace.write_text("".join(json.dumps(e) + "\n" for e in BATCH))
    result = run("--cluster", str(cluster), "--trace", str(trace), "--compare", "--optimum")
    assert (result["optimum"]["placed_gpu_units"], result["optimum"]["proven"]) == (2.0, True)
    assert {p: r["placed_gpu_units"] for p, r in result["policies"].items()} == {
        "static": 0.5714, "first-fit": 1.1429, "planner": 2.0}
    assert (result["planner_vs_optimum"], result["first_fit_vs_optimum"]) == (1.0, 0.5715)


def test_a_model_alias_in_the_cluster_and_the_trace(tmp_path):
    cluster, trace = tmp_path / "cluster.json", tmp_path / "a30.jsonl"
    cluster.write_text(json.dumps({"nodes": [{"name": "n1", "gpus": [{"model": "A30-24GB", "mode": "mig"}]}]}))
    trace.write_text(json.dumps({"t": 0.0, "op": "request", "id": "a", "user": "u", "slice": "2g.12gb",
                                 "model": "A30-24GB"}) + "\n")
    result = run("--cluster", str(cluster), "--trace", str(trace), "--compare", "--optimum")
    assert {p: r["placed_gpu_units"] for p, r in result["policies"].items()} == {
        "static": 0.5, "first-fit": 0.5, "planner": 0.5}
    assert result["optimum"]["placed_gpu_units"] == 0.5


def test_generator_batch_traces_put_every_request_at_zero(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    from bench.trace_generator import MIXES, generate_at_once, mean_units

    events = generate_at_once(MIXES["large-skew"], 8, 1.0, 100.0, seed=3)
    requests = [e for e in events if e["op"] == "request"]
    assert {e["t"] for e in requests} == {0.0}
    assert {e["id"] for e in events if e["op"] == "release"} == {e["id"] for e in requests}
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)
    assert 8 <= sum(mean_units({e["slice"]: 1}) for e in requests) < 8 + 1


def test_generator_traces_are_well_formed(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    from bench.trace_generator import MIXES, generate

    events = generate(MIXES["uniform"], 50, 8, 1.0, 100.0, seed=3)
    requests = [e for e in events if e["op"] == "request"]
    releases = {e["id"]: e["t"] for e in events if e["op"] == "release"}
    assert len(requests) == 50 and set(releases) == {e["id"] for e in requests}
    assert all(releases[e["id"]] >= e["t"] for e in requests)
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)
