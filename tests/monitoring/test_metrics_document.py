"""The view (ledger + layout + readings joined) and the metrics document rendered from it (pure)."""
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from astrago.hub.monitor.collectors.prometheus import readings_from_dcgm
from astrago.hub.monitor.collectors.simulated import simulated_readings
from astrago.hub.jobs.metrics_view import DURATION_BUCKETS
from astrago.hub.monitor.families import render
from astrago.hub.monitor.history import History
from astrago.hub.monitor.readings import CollectorResult, ProcessReading
from astrago.hub.monitor.reclaim.rules import Policy
from astrago.hub.monitor.snapshot import build_view
from astrago.hub.service.interfaces import AccountingSnapshot as Accounting, HeldAllocation, JobsSnapshot
from astrago.spawners.inventory.static import inventory_from_cluster_spec
from astrago.spawners.placement import Placer

INVENTORY = inventory_from_cluster_spec({"nodes": [{"name": "demo", "gpus": [
    {"model": "H100-80GB", "mode": "mig", "geometry": {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}},
    {"model": "H100-80GB", "mode": "full"},
    {"model": "H100-80GB", "mode": "mps", "mps_replicas": 4},
]}]})
MIG_3G = "MIG-sim-demo-0-4-3g.40gb"
GPU_1 = "GPU-sim-demo-1"
GPU_2 = "GPU-sim-demo-2"


def held(aid, user, slice_, units, kind="workspace", owner=None, group="team-a"):
    return HeldAllocation(aid, user, (group,), group, kind, owner or f"{user}/", slice_, units, 2.0, 8.0, 1000.0)


@pytest.fixture
def world():
    placer = Placer(INVENTORY)
    allocations = {"a-3g": held("a-3g", "alice", "3g.40gb", 3 / 7), "b-gpu": held("b-gpu", "bob", "gpu-1", 1.0),
                   "c-job": held("c-job", "carol", "1g.10gb", 1 / 7, kind="job", owner="job-42"),
                   "d-mps": held("d-mps", "dave", "mps-25", 0.25), "e-mps": held("e-mps", "erin", "mps-25", 0.25)}
    for aid, a in allocations.items():
        assert placer.place(aid, a.slice) is not None, aid
    accounting = Accounting(at=5000.0, held=allocations, queued=[("gpu-1", "frank", 4000.0), ("gpu-1", "gina", 4900.0)],
                            gpu_hours={"alice": 2.5, "bob": 10.0, "zoe": 1.0},
                            user_limits={"alice": {"gpu_units": 1.0, "gpu_hours": 3.0}},
                            group_limits={"team-a": {"gpu_units": 4.0}})
    load = {"default": {"utilization_percent": 40, "memory_used_mib": 1024},
            "devices": {MIG_3G: {"utilization_percent": 2, "memory_used_mib": 512}}}
    readings = simulated_readings(INVENTORY, load)
    mps = next(r for r in readings if r.uuid == GPU_2)  # MPS shares are told apart by their processes' owners
    mps.processes = [ProcessReading(10, 2 << 30, 0.30, "dave"), ProcessReading(11, 1 << 30, 0.05, "dave"),
                     ProcessReading(12, 1 << 30, 0.0, "erin")]
    devices = CollectorResult("simulated", True, 4990.0, devices=readings)
    return accounting, placer, devices


def test_each_slice_is_attributed_to_its_holder_with_its_reading(world):
    accounting, placer, devices = world
    view = build_view(accounting, placer.snapshot(), INVENTORY, [devices])
    by_slice = {s.slice_id: s for s in view.slices}
    s = by_slice[MIG_3G]
    assert (s.kind, s.profile, s.user, s.owner_kind, s.owner, s.start, s.size) == (
        "mig", "3g.40gb", "alice", "workspace", "alice/", 4, 4)
    assert s.utilization == 0.02 and s.memory_used_bytes == 512 << 20 and s.memory_total_bytes == 40 << 30
    job = next(s for s in view.slices if s.owner == "job-42")
    assert (job.profile, job.user, job.owner_kind, job.utilization) == ("1g.10gb", "carol", "job", 0.4)
    assert [(s.user, s.profile) for s in view.slices if s.kind == "mig" and not s.user] == [("", "1g.10gb"),
                                                                                           ("", "2g.20gb")]
    gpu = by_slice[GPU_1]
    assert (gpu.kind, gpu.profile, gpu.user, gpu.utilization) == ("gpu", "gpu-1", "bob", 0.4)
    dave, erin = [s for s in view.slices if s.kind == "mps"]
    assert (dave.user, dave.profile, dave.utilization, dave.memory_used_bytes) == ("dave", "mps-25", 0.35, 3 << 30)
    assert (erin.user, erin.utilization) == ("erin", 0.0)
    assert view.allocation_utilization == {"a-3g": 0.02, "c-job": 0.4, "b-gpu": 0.4, "d-mps": 0.35, "e-mps": 0.0}
    assert [g.up for g in view.gpus] == [True, True, True]
    mig_gpu = view.gpus[0]
    assert mig_gpu.utilization is None  # a GPU in MIG mode reports per instance


def test_users_groups_queue_and_capacity(world):
    accounting, placer, devices = world
    view = build_view(accounting, placer.snapshot(), INVENTORY, [devices])
    alice = view.users["alice"]
    assert (alice.gpu_units, alice.servers, alice.gpu_hours, alice.limits) == (
        3 / 7, 1, 2.5, {"gpu_units": 1.0, "gpu_hours": 3.0})
    assert alice.busy_units == pytest.approx(0.02 * 3 / 7)
    assert view.users["zoe"].gpu_units == 0 and view.users["zoe"].gpu_hours == 1.0  # held time in the period only
    assert view.queue == {"gpu-1": (2, 1000.0)}
    assert view.capacity_units == 3.0 and view.allocated_units == pytest.approx(3 / 7 + 1 + 1 / 7 + 0.5)
    assert view.allocations[("mps-25", "workspace")] == 2 and view.groups == {"team-a": pytest.approx(2 + 1 / 14)}


def test_a_failing_device_collector_leaves_readings_unknown_and_everything_else_in_place(world):
    accounting, placer, _devices = world
    failed = CollectorResult("nvml", False, 4990.0, error="NVMLError_Unknown: GPU is lost")
    view = build_view(accounting, placer.snapshot(), INVENTORY, [failed])
    assert all(s.utilization is None for s in view.slices)
    assert all(g.up is None for g in view.gpus)  # not claimed gone either: unknown
    text = render(view, version="0.1.0", mode="embedded", collectors=[failed])
    assert 'astrago_collector_up{collector="nvml"} 0' in text
    assert "astrago_slice_utilization_ratio{" not in text
    assert 'astrago_slice_allocated{node="demo",gpu="0",slice="MIG-sim-demo-0-4-3g.40gb",profile="3g.40gb",' \
           'kind="mig",user="alice",owner_kind="workspace",owner="alice/"} 1' in text
    assert 'astrago_user_gpu_units{user="alice"} 0.428571' in text


def test_a_gpu_missing_from_its_nodes_readings_is_reported_down(world):
    accounting, placer, devices = world
    devices.devices = [d for d in devices.devices if d.gpu_uuid != GPU_1]
    view = build_view(accounting, placer.snapshot(), INVENTORY, [devices])
    assert [g.up for g in view.gpus] == [True, False, True]
    assert 'astrago_gpu_up{node="demo",gpu="1"} 0' in render(view, collectors=[devices])


def _families(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_the_document_parses_follows_the_conventions_and_keeps_label_sets_bounded(world):
    accounting, placer, devices = world
    view = build_view(accounting, placer.snapshot(), INVENTORY, [devices, CollectorResult("hub", True, 1.0, servers=[])])
    jobs = JobsSnapshot({"RUNNING": 1, "COMPLETED": 3}, {("carol", "RUNNING"): 1}, [("job-42", "carol", "1g.10gb", 90.0)],
                        [0, 1, 2, 3, 3, 3, 3, 3, 3, 3, 3], 4000.0, 3)
    text = render(view, version="0.1.0", mode="embedded", jobs=jobs, job_buckets=DURATION_BUCKETS,
                  idle_seconds={"a-3g": 600.0},
                  track_states={"watching": 3}, reclaim_counts={("warn", False): 2}, policy=Policy(),
                  collectors=[devices], last_success={"simulated": 4990.0})
    families = _families(text)
    assert all(name.startswith("astrago_") for name in families)
    allowed = {"node", "gpu", "uuid", "model", "mode", "slice", "profile", "kind", "user", "owner_kind", "owner",
               "collector", "dimension", "group", "state", "status", "job_id", "le", "action", "dry_run", "version"}
    for f in families.values():
        assert f.type in ("gauge", "counter", "histogram"), f.name
        for sample in f.samples:
            assert set(sample.labels) <= allowed, (f.name, sample.labels)
            assert "job" not in sample.labels and "instance" not in sample.labels
        if f.name.endswith("_ratio"):
            assert all(0 <= s.value <= 1 for s in f.samples), f.name
    assert {s.labels["dimension"] for s in families["astrago_user_quota_limit"].samples} == {"gpu_units", "gpu_hours"}
    assert [s.value for s in families["astrago_user_quota_used"].samples if s.labels["dimension"] == "gpu_hours"] == [2.5]
    idle = families["astrago_slice_idle_seconds"].samples
    assert [(s.labels["user"], s.value) for s in idle] == [("alice", 600.0)]
    hist = families["astrago_job_duration_seconds"]
    assert hist.type == "histogram" and len([s for s in hist.samples if s.name.endswith("_bucket")]) == len(DURATION_BUCKETS)
    assert families["astrago_reclaim_actions"].samples[0].labels == {"action": "warn", "dry_run": "false"}
    assert {s.labels["slice"]: s.value for s in families["astrago_queue_length"].samples} == {"gpu-1": 2.0}
    assert re.search(r'^astrago_build_info\{version="0.1.0",mode="embedded"\} 1$', text, re.M)


def test_label_values_are_escaped():
    from astrago.hub.monitor.exposition import _esc

    assert _esc('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


DCGM_RESULTS = {
    "gpu_util": [{"metric": {"gpu": "0", "UUID": "GPU-A", "Hostname": "n1", "namespace": "astrago", "pod": "jupyter-alice"},
                  "value": [1, "64"]}],
    "engine_active": [
        {"metric": {"gpu": "0", "UUID": "GPU-A", "Hostname": "n1", "namespace": "astrago", "pod": "jupyter-alice"},
         "value": [1, "0.61"]},
        {"metric": {"gpu": "1", "UUID": "GPU-B", "GPU_I_ID": "2", "GPU_I_PROFILE": "3g.40gb", "Hostname": "n1",
                    "namespace": "astrago", "pod": "job-7f3a"}, "value": [1, "0.81"]},
        {"metric": {"gpu": "1", "UUID": "GPU-B", "GPU_I_ID": "9", "GPU_I_PROFILE": "1g.10gb", "Hostname": "n1"},
         "value": [1, "0.004"]}],
    "fb_used": [{"metric": {"gpu": "1", "UUID": "GPU-B", "GPU_I_ID": "2", "Hostname": "n1"}, "value": [1, "20480"]}],
    "fb_free": [{"metric": {"gpu": "1", "UUID": "GPU-B", "GPU_I_ID": "2", "Hostname": "n1"}, "value": [1, "20480"]}],
    "pod_allocations": [{"metric": {"namespace": "astrago", "pod": "jupyter-alice", "label_astrago_io_allocation": "al-1"},
                         "value": [1, "1"]},
                        {"metric": {"namespace": "astrago", "pod": "job-7f3a", "label_astrago_io_allocation": "al-2"},
                         "value": [1, "1"]}],
}


def test_dcgm_whole_gpus_use_gpu_util_and_mig_instances_engine_active():
    a, b2, b9 = readings_from_dcgm(DCGM_RESULTS)
    assert (a.uuid, a.kind, a.utilization, a.allocation_hint) == ("GPU-A", "gpu", 0.64, "al-1")
    assert (b2.uuid, b2.kind, b2.gi_id, b2.profile, b2.utilization, b2.allocation_hint) == (
        "GPU-B/gi2", "mig", 2, "3g.40gb", 0.81, "al-2")
    assert b2.memory_used_bytes == 20480 << 20 and b2.memory_total_bytes == 40960 << 20
    assert (b9.utilization, b9.allocation_hint) == (0.004, None)


def test_history_keeps_a_bounded_ring_and_drops_series_that_stopped():
    h = History(points=4)
    for i in range(6):
        h.record(float(i), {"a": float(i), "b": 1.0 if i < 1 else None})
    assert h.get("a") == {"t": [2.0, 3.0, 4.0, 5.0], "a": [2.0, 3.0, 4.0, 5.0]}
    assert "b" not in h.series  # no value for a whole ring
    assert h.get("missing")["missing"] == [None] * 4
