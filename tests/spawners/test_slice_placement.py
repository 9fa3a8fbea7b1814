"""The placer: exact placements on small inventories, and invariants under random operations."""

from collections import Counter
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from astrago.spawners import slices
from astrago.spawners.geometry import DemandAwareChooser, DemandEstimator
from astrago.spawners.inventory import inventory_from_cluster_spec
from astrago.spawners.placement import FillWithProfile, Placement, Placer, fill_with_profile


def cluster(*nodes):
    return inventory_from_cluster_spec({"nodes": [{"name": name, "gpus": gpus} for name, gpus in nodes]})


H100 = "H100-80GB"


def test_local_mode_hands_out_existing_instances_only():
    placer = Placer(cluster(("ws", [{"model": H100, "mode": "mig", "geometry": {"3g.40gb": 1, "4g.40gb": 1}},
                                    {"model": H100, "mode": "mig"}])))
    assert placer.place("a", "3g.40gb") == Placement(
        request_id="a", slice="3g.40gb", node="ws", model=H100, gpu_units=Fraction(3, 7),
        gpu_uuids=("GPU-sim-ws-0",), gpu_indices=(0,), mig_instance_uuids=("MIG-sim-ws-0-4-3g.40gb",))
    assert placer.place("b", "3g.40gb") is None
    assert placer.last_refusal == "no free 3g.40gb on any node"
    assert placer.place("c", "1g.10gb") is None  # the uncut GPU stays uncut
    assert placer.reconfigurations == 0


def test_best_fit_takes_instances_on_busy_gpus_first():
    placer = Placer(cluster(("n", [{"model": H100, "mode": "mig", "geometry": {"1g.10gb": 7}},
                                   {"model": H100, "mode": "mig", "geometry": {"1g.10gb": 7}}])))
    placer.place("a", "1g.10gb", node="n")
    first_gpu = placer.placement("a").gpu_uuids
    for i in range(6):
        assert placer.place(f"b{i}", "1g.10gb").gpu_uuids == first_gpu  # fills GPU 0 before touching GPU 1
    assert placer.place("c", "1g.10gb").gpu_uuids == ("GPU-sim-n-1",)


def test_recut_only_idle_gpus_and_counts_reconfigurations():
    placer = Placer(cluster(("n", [{"model": H100, "mode": "mig"}, {"model": H100, "mode": "mig"}])),
                    recut=FillWithProfile())
    a = placer.place("a", "4g.40gb")
    assert (a.recut_gpus, a.mig_instance_uuids) == (("GPU-sim-n-0",), ("MIG-sim-n-0-0-4g.40gb",))
    assert placer.geometry_of("GPU-sim-n-0") == Counter({"4g.40gb": 1, "3g.40gb": 1})
    b = placer.place("b", "2g.20gb")  # GPU 0 is busy and has no 2g: GPU 1 is re-cut
    assert b.recut_gpus == ("GPU-sim-n-1",)
    assert placer.geometry_of("GPU-sim-n-1") == Counter({"2g.20gb": 3, "1g.10gb": 1})
    assert placer.place("c", "7g.80gb") is None  # both busy
    placer.release("a")
    c = placer.place("c", "7g.80gb")
    assert (c.recut_gpus, c.gpu_units, placer.reconfigurations) == (("GPU-sim-n-0",), Fraction(1), 3)


def test_whole_gpus_go_to_the_tightest_node():
    placer = Placer(cluster(("big", [{"model": H100}] * 8), ("small", [{"model": H100}] * 2)))
    assert placer.place("a", "gpu-2").gpu_uuids == ("GPU-sim-small-0", "GPU-sim-small-1")
    assert placer.place("b", "gpu-8").node == "big"
    assert placer.place("c", "gpu-1") is None
    placer.release("b")
    assert placer.place("d", "gpu-4", model="A30") is None
    assert placer.place("d", "gpu-4", model=H100).gpu_uuids == tuple(f"GPU-sim-big-{i}" for i in range(4))


def test_mps_shares_pack_matching_replicas():
    placer = Placer(cluster(("n", [{"model": H100, "mode": "mps", "mps_replicas": 4},
                                   {"model": H100, "mode": "mps", "mps_replicas": 2}])))
    a = placer.place("a", "mps-25")
    assert a == Placement(request_id="a", slice="mps-25", node="n", model=H100, gpu_units=Fraction(1, 4),
                          gpu_uuids=("GPU-sim-n-0",), gpu_indices=(0,), mps_percent=25, mps_memory_limit_mib=20480)
    assert [placer.place(f"b{i}", "mps-25").gpu_uuids for i in range(3)] == [("GPU-sim-n-0",)] * 3
    assert placer.place("c", "mps-25") is None
    assert placer.place("d", "mps-50").gpu_uuids == ("GPU-sim-n-1",)
    assert placer.place("e", "mps-20") is None


def test_cpu_is_placed_without_a_gpu():
    placer = Placer(cluster(("n", [])))
    assert placer.place("a", "cpu") == Placement(request_id="a", slice="cpu", node=None, model=None,
                                                 gpu_units=Fraction(0))


def test_count_places_several_on_one_node_or_nothing():
    placer = Placer(cluster(("n1", [{"model": H100, "mode": "mig", "geometry": {"3g.40gb": 1}}]),
                            ("n2", [{"model": H100, "mode": "mig", "geometry": {"3g.40gb": 2}}])))
    p = placer.place("a", "3g.40gb", count=2)
    assert (p.node, p.gpu_units, len(set(p.mig_instance_uuids))) == ("n2", Fraction(6, 7), 2)
    assert placer.place("b", "3g.40gb", count=2) is None
    assert placer.place("c", "3g.40gb").node == "n1"  # the failed try left nothing behind
    placer.release("a")
    assert placer.place("d", "3g.40gb", count=2).node == "n2"


def test_model_and_node_constraints():
    placer = Placer(cluster(("a", [{"model": "A100-80GB", "mode": "mig", "geometry": {"1g.10gb": 7}}]),
                            ("b", [{"model": H100, "mode": "mig", "geometry": {"1g.10gb": 7}}])))
    assert placer.place("x", "1g.10gb", model=H100).node == "b"
    assert placer.place("y", "1g.10gb", node="a").model == "A100-80GB"
    assert placer.place("z", "1g.10gb", node="nowhere") is None
    assert placer.last_refusal == "there is no node 'nowhere'"
    assert placer.place("w", "1g.10gb", model="A30") is None
    assert placer.last_refusal == "the A30 has no MIG profile 1g.10gb"


def test_placing_twice_is_an_error():
    placer = Placer(cluster(("n", [{"model": H100}])))
    placer.place("a", "gpu-1")
    with pytest.raises(ValueError):
        placer.place("a", "gpu-1")


def test_fill_with_profile():
    model = slices.GPU_MODELS[H100]
    assert fill_with_profile(model, "2g.20gb") == Counter({"2g.20gb": 3, "1g.10gb": 1})
    assert fill_with_profile(model, "4g.40gb") == Counter({"4g.40gb": 1, "3g.40gb": 1})


# --------------------------------------------------------------------------- properties

MODELS = ["H100-80GB", "A100-40GB", "A30"]


@st.composite
def gpu_specs(draw):
    model = draw(st.sampled_from(MODELS))
    mode = draw(st.sampled_from(["mig", "mig", "mig", "full", "mps"]))
    spec = {"model": model, "mode": mode}
    if mode == "mps":
        spec["mps_replicas"] = draw(st.sampled_from(slices.MPS_REPLICA_CHOICES))
    if mode == "mig" and draw(st.booleans()):
        spec["geometry"] = dict(draw(st.sampled_from(slices.feasible_geometries(model))))
    return spec


@st.composite
def scenarios(draw):
    nodes = [(f"n{i}", draw(st.lists(gpu_specs(), min_size=1, max_size=4))) for i in range(draw(st.integers(1, 3)))]
    slice_names = sorted({p for m in MODELS for p in slices.GPU_MODELS[m].mig_profiles}
                         | {"mps-50", "mps-25", "mps-20", "mps-10", "gpu-1", "gpu-2", "gpu-4", "cpu"})
    ops = draw(st.lists(st.one_of(
        st.tuples(st.just("place"), st.sampled_from(slice_names), st.integers(1, 2),
                  st.sampled_from([None] + MODELS), st.sampled_from([None, "n0", "n1"])),
        st.tuples(st.just("release"), st.integers(0, 50)),
    ), max_size=40))
    recut = draw(st.sampled_from(["none", "fill", "planner"]))
    fit = draw(st.sampled_from(["best", "first"]))
    return nodes, ops, recut, fit


def check_invariants(placer, before, live):
    after = placer.snapshot()
    for old, gpu in zip(before, after):
        model = slices.GPU_MODELS[gpu.model]
        if gpu.mode == "mig":
            used, compute, media = [], 0, 0
            for instance in gpu.instances:
                profile = model.mig_profiles[instance.profile]
                assert instance.start in profile.starts
                used.extend(range(instance.start, instance.start + profile.memory_slices))
                compute += profile.compute
                media += profile.media_extensions
                assert instance.holder is None or instance.holder in live
            assert len(used) == len(set(used)) and all(slot < model.memory_slices for slot in used)  # no overlap
            assert compute <= model.compute_slices and media <= 1
            counts = Counter(i.profile for i in gpu.instances)
            assert all(n <= model.mig_profiles[p].max_instances for p, n in counts.items())
            if [(i.profile, i.start) for i in old.instances] != [(i.profile, i.start) for i in gpu.instances]:
                assert not any(i.holder for i in old.instances), "re-cut a GPU that had allocations"
        elif gpu.mode == "mps":
            assert len(gpu.holders) <= gpu.mps_replicas
        else:
            assert len(gpu.holders) <= 1
    for request_id, placement in live.items():
        assert placer.placement(request_id) == placement
    return after


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_placer_invariants(scenario):
    nodes, ops, recut, fit = scenario
    chooser = {"none": None, "fill": FillWithProfile(),
               "planner": DemandAwareChooser(DemandEstimator(window=10.0))}[recut]
    placer = Placer(cluster(*nodes), recut=chooser, fit=fit)
    live: dict[str, Placement] = {}
    snapshot = placer.snapshot()
    for n, op in enumerate(ops):
        if op[0] == "place":
            _, slice_name, count, model, node = op
            if isinstance(chooser, DemandAwareChooser):
                chooser.estimator.observe_request(slice_name, float(n))
                chooser.now = float(n)
            placement = placer.place(f"r{n}", slice_name, count=count, model=model, node=node)
            if placement is None:
                assert placer.last_refusal
                if recut == "none":
                    assert placer.snapshot() == snapshot  # a refusal changes nothing
            else:
                units = slices.slice_gpu_units(placement.model if slice_name != "cpu" else None, slice_name)
                assert placement.gpu_units == units * count
                assert model is None or placement.model in (model, None)
                assert node is None or placement.node == node
                live[f"r{n}"] = placement
        elif live:
            request_id = sorted(live)[op[1] % len(live)]
            assert placer.release(request_id) == live.pop(request_id)
        snapshot = check_invariants(placer, snapshot, live)
    for request_id in list(live):
        placer.release(request_id)
    assert all(not g.holders and not any(i.holder for i in g.instances) for g in placer.snapshot())


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_local_placer_refuses_only_when_nothing_fits(scenario):
    """Without re-cuts, a MIG request is refused only if no matching free instance exists."""
    nodes, ops, _, fit = scenario
    placer = Placer(cluster(*nodes), fit=fit)
    for n, op in enumerate(ops):
        if op[0] != "place" or slices.parse_slice(op[1]).kind != "mig" or op[2] != 1:
            continue
        _, profile, _, model, node = op
        free = [i for g in placer.snapshot() for i in g.instances
                if i.holder is None and i.profile == profile and g.mode == "mig"
                and (model is None or g.model == model) and (node is None or g.node == node)]
        assert (placer.place(f"r{n}", profile, model=model, node=node) is not None) == bool(free)


def test_a_model_alias_places_like_its_catalogue_name():
    placer = Placer(cluster(("ws", [{"model": "A30-24GB", "mode": "mig", "geometry": {"2g.12gb": 2}}])))
    placement = placer.place("a", "2g.12gb", model="A30-24GB")
    assert (placement.model, placement.gpu_units, placement.mig_instance_uuids) == (
        "A30", Fraction(1, 2), ("MIG-sim-ws-0-2-2g.12gb",))
    with pytest.raises(slices.InvalidSlice) as error:
        placer.place("b", "2g.12gb", model="A30-32GB")
    assert str(error.value) == "'A30-32GB' is not a GPU model AstraGo knows."


def test_a_batch_is_cut_for_its_whole_demand_before_it_is_placed():
    """One at a time, the 1g's cut takes a whole GPU and the 7g finds none; cut for the batch,
    both GPUs serve the most GPU units (the 1g is what does not fit)."""
    inventory = cluster(("n", [{"model": H100, "mode": "mig"}, {"model": H100, "mode": "mig"}]))
    batch = [("a", "1g.10gb"), ("b", "4g.40gb"), ("c", "3g.40gb"), ("d", "7g.80gb")]
    one_at_a_time = Placer(inventory, recut=DemandAwareChooser(DemandEstimator()))
    assert [p.gpu_units if p else None for p in (one_at_a_time.place(*r) for r in batch)] == [
        Fraction(1, 7), Fraction(4, 7), Fraction(3, 7), None]
    together = Placer(inventory, recut=DemandAwareChooser(DemandEstimator()))
    placed = together.place_batch(batch)
    assert [(p.request_id, p.mig_instance_uuids, p.gpu_units, p.recut_gpus) if p else None for p in placed] == [
        None,
        ("b", ("MIG-sim-n-1-0-4g.40gb",), Fraction(4, 7), ("GPU-sim-n-1",)),
        ("c", ("MIG-sim-n-1-4-3g.40gb",), Fraction(3, 7), ()),
        ("d", ("MIG-sim-n-0-0-7g.80gb",), Fraction(1), ("GPU-sim-n-0",)),
    ]
    assert together.reconfigurations == 2


def test_a_batch_without_a_planning_chooser_is_placed_largest_first():
    inventory = cluster(("n", [{"model": H100, "mode": "mig"}]))
    placer = Placer(inventory, recut=FillWithProfile(), fit="first")
    placed = placer.place_batch([("small", "1g.10gb"), ("large", "7g.80gb")])
    assert [p.request_id if p else None for p in placed] == [None, "large"]
