"""The geometry planner: fleet plans for a demand, mig-parted output, and the online chooser."""

from collections import Counter
from fractions import Fraction

from astrago.spawners import slices
from astrago.spawners.geometry import (
    DemandAwareChooser,
    DemandEstimator,
    best_geometry,
    plan_geometries,
)
from astrago.spawners.inventory import inventory_from_cluster_spec
from astrago.spawners.placement import Placer

H100 = "H100-80GB"


def fleet():
    return inventory_from_cluster_spec({"nodes": [
        {"name": "n1", "gpus": [{"model": H100, "mode": "mig", "geometry": {"3g.40gb": 2}},
                                {"model": H100, "mode": "mig"}, {"model": H100, "mode": "mig"},
                                {"model": H100, "mode": "full"}]},
        {"name": "n2", "gpus": [{"model": "A30", "mode": "mig", "geometry": {"4g.24gb": 1}}]},
    ]})


def test_plan_keeps_busy_gpus_and_covers_demand_with_idle_ones():
    inventory = fleet()
    placer = Placer(inventory)
    placer.place("x", "3g.40gb")  # GPU n1/0 becomes busy; its other 3g counts as supply
    plan = plan_geometries(inventory, {"1g.10gb": 9, "4g.40gb": 1, "3g.40gb": 1, "2g.12gb": 2}, placer=placer)
    assert [(g.node, g.index, dict(g.current), dict(g.proposed), g.busy, g.recut) for g in plan.gpus] == [
        ("n1", 0, {"3g.40gb": 2}, {"3g.40gb": 2}, True, False),
        ("n1", 1, {}, {"4g.40gb": 1, "1g.10gb": 3}, False, True),
        ("n1", 2, {}, {"1g.10gb": 7}, False, True),
        ("n2", 0, {"4g.24gb": 1}, {"2g.12gb": 2}, False, True),
    ]
    # served: 9 x 1g (of 10) + 4g + the busy GPU's free 3g + 2 x 2g on the A30
    assert plan.served_gpu_units == Fraction(9, 7) + Fraction(4, 7) + Fraction(3, 7) + Fraction(2, 4) * 2


def test_plan_never_recuts_what_demand_does_not_need():
    plan = plan_geometries(fleet(), {"3g.40gb": 2})
    assert [(g.index, g.recut) for g in plan.gpus if g.node == "n1"] == [(0, False), (1, False), (2, False)]
    assert plan.node_labels() == {}


def test_mig_parted_config_and_node_labels():
    plan = plan_geometries(fleet(), {"4g.40gb": 1, "3g.40gb": 3, "2g.12gb": 2})
    config = plan.mig_parted_config()
    entries = {name: devices for name, devices in config["mig-configs"].items()}
    n1 = plan.node_configs()["n1"]
    assert n1 == [
        {"devices": [0], "mig-enabled": True, "mig-devices": {"3g.40gb": 2}},
        {"devices": [1], "mig-enabled": True, "mig-devices": {"4g.40gb": 1, "3g.40gb": 1}},
        {"devices": [2], "mig-enabled": True, "mig-devices": {}},
        {"devices": [3], "mig-enabled": False},
    ]
    assert config["version"] == "v1" and entries[plan.config_name(n1)] == n1
    assert plan.node_labels() == {
        "n1": {"nvidia.com/mig.config": plan.config_name(n1)},
        "n2": {"nvidia.com/mig.config": plan.config_name(plan.node_configs()["n2"])},
    }


def test_creation_order_in_plans_is_one_the_placement_rules_allow():
    plan = plan_geometries(fleet(), {"4g.40gb": 1, "3g.40gb": 3})
    for gpu in plan.gpus:
        model = slices.GPU_MODELS[gpu.model]
        used = set()
        for placed in gpu.layout:  # create in this order at these starts
            profile = model.mig_profiles[placed.profile]
            slots = set(range(placed.start, placed.start + profile.memory_slices))
            assert placed.start in profile.starts and not slots & used
            used |= slots
        four = [p for p in gpu.layout if p.profile == "4g.40gb"]
        three = [p for p in gpu.layout if p.profile == "3g.40gb"]
        if four and three:
            assert gpu.layout.index(four[0]) < gpu.layout.index(three[0])


def test_best_geometry_prefers_unmet_demand_then_the_current_layout():
    model = slices.GPU_MODELS[H100]
    assert best_geometry(model, {"2g.20gb": 3}) == Counter({"2g.20gb": 3, "1g.10gb": 1})
    assert best_geometry(model, {}, current={"3g.40gb": 2}) == Counter({"3g.40gb": 2})
    assert best_geometry(model, {"1g.20gb": 4}) == Counter({"1g.20gb": 4})  # non-base profiles when asked for


def test_demand_estimator_little_law():
    estimator = DemandEstimator(window=100.0)
    for t in range(0, 100, 10):  # one 1g every 10 s
        estimator.observe_request("1g.10gb", float(t))
    estimator.observe_release("1g.10gb", 95.0, 30.0)
    assert estimator.expected(100.0) == {"1g.10gb": 3.0}  # 0.1 per s x 30 s
    assert estimator.arrival_shares(100.0) == {"1g.10gb": 1.0}


def test_online_chooser_cuts_as_many_of_the_profile_as_fit():
    model = slices.GPU_MODELS[H100]
    placer = Placer(fleet())
    chooser = DemandAwareChooser(DemandEstimator())
    assert chooser.geometry_for(model, "1g.10gb", placer) == Counter({"1g.10gb": 7})
    assert chooser.geometry_for(model, "2g.20gb", placer) == Counter({"2g.20gb": 3, "1g.10gb": 1})
    assert chooser.geometry_for(model, "4g.40gb", placer) == Counter({"4g.40gb": 1, "3g.40gb": 1})
