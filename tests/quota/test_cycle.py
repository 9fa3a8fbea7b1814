"""The scheduling cycle (hub/quota/cycle.py, pure) and the waiting queue it reads, compared
with literal decisions: which request goes on which device, why the others wait."""
import random
from fractions import Fraction

from astrago.hub.quota.cycle import Candidate, JobBounds, fair_order, fair_positions, plan_admissions
from astrago.hub.quota.limits import QuotaLimits, Usage
from astrago.hub.quota.positions import QueuePositions
from astrago.hub.quota.waiting import WaitingQueue
from astrago.spawners.inventory.static import inventory_from_cluster_spec
from astrago.spawners.placement import Placer

NODE = {"nodes": [{"name": "n", "gpus": [
    {"model": "H100-80GB", "mode": "mig", "geometry": {"3g.40gb": 1, "1g.10gb": 4}},
    {"model": "H100-80GB", "mode": "full"}]}]}

UNITS = {"gpu-1": Fraction(1), "3g.40gb": Fraction(3, 7), "1g.10gb": Fraction(1, 7), "cpu": Fraction(0)}


def req(i, user, group, slice_name, priority=0, kind="workspace", cpu=0):
    return Candidate(f"r{i}", user, group, float(i), priority, slice_name, UNITS[slice_name], Fraction(cpu),
                     Fraction(0), kind)


def where(result):
    return [(cid, p.gpu_uuids, p.mig_instance_uuids) for cid, p in result.admitted]


WAITING = [req(1, "ann", "a", "gpu-1"), req(2, "ann", "a", "3g.40gb"), req(3, "bob", "b", "gpu-1"),
           req(4, "bob", "b", "1g.10gb"), req(5, "cat", "b", "3g.40gb")]


def test_the_group_below_its_share_is_served_then_the_full_slices_explain_the_rest():
    result = plan_admissions(WAITING, Placer(inventory_from_cluster_spec(NODE)), group_usage={"a": 2.0},
                             user_usage={}, weights={}, limits={}, usage={})
    assert where(result) == [("r3", ("GPU-sim-n-1",), ()),
                             ("r5", ("GPU-sim-n-0",), ("MIG-sim-n-0-4-3g.40gb",)),
                             ("r4", ("GPU-sim-n-0",), ("MIG-sim-n-0-3-1g.10gb",))]
    assert dict(result.reasons) == {"r1": "waiting: no free gpu-1 on any node",
                                    "r2": "waiting: no free 3g.40gb on any node"}
    assert (result.considered, result.stopped_early) == (5, False)


def test_the_waiting_queue_gives_the_same_decisions_as_a_list():
    queue = WaitingQueue(reversed(WAITING))  # the order requests arrive in does not matter
    result = plan_admissions(queue, Placer(inventory_from_cluster_spec(NODE)), group_usage={"a": 2.0},
                             user_usage={}, weights={}, limits={}, usage={})
    assert [cid for cid, _ in result.admitted] == ["r3", "r5", "r4"]
    assert dict(result.reasons) == {"r1": "waiting: no free gpu-1 on any node",
                                    "r2": "waiting: no free 3g.40gb on any node"}


def test_a_weight_halves_a_groups_usage_and_priority_orders_one_users_requests():
    waiting = [req(1, "ann", "a", "cpu"), req(2, "ann", "a", "cpu", priority=3), req(3, "bob", "b", "cpu")]
    assert [c.id for c in fair_order(waiting, {"a": 1.0, "b": 0.6}, {}, {"a": 2.0})] == ["r2", "r1", "r3"]
    assert [c.id for c in fair_order(waiting, {"a": 1.0, "b": 0.6}, {}, {})] == ["r3", "r2", "r1"]


def test_over_quota_requests_wait_with_the_sentence_and_others_pass_them():
    limits = {"ann": QuotaLimits(gpu_units=Fraction(1, 2))}
    result = plan_admissions(WAITING, Placer(inventory_from_cluster_spec(NODE)), group_usage={}, user_usage={},
                             weights={}, limits=limits, usage={"ann": Usage(gpu_units=Fraction(1, 7))})
    assert [cid for cid, _ in result.admitted] == ["r3", "r5", "r4"]
    assert dict(result.reasons) == {
        "r1": "over quota: Over your gpu_units quota: you asked for 1 GPU units, 0.36 of 0.5 left (0.14 in use).",
        "r2": "over quota: Over your gpu_units quota: you asked for 0.43 GPU units, 0.36 of 0.5 left (0.14 in use)."}


def test_jobs_wait_for_their_running_jobs_bound():
    jobs = JobBounds(running={"ann": 2}, caps={"ann": 2}, capacity=None)
    waiting = [req(1, "ann", "a", "cpu", kind="job"), req(2, "bob", "b", "cpu", kind="job")]
    result = plan_admissions(waiting, Placer(inventory_from_cluster_spec(NODE)), group_usage={}, user_usage={},
                             weights={}, limits={}, usage={}, jobs=jobs)
    assert [cid for cid, _ in result.admitted] == ["r2"]
    assert dict(result.reasons) == {"r1": "waiting: you have 2 running jobs, the limit is 2"}
    assert (jobs.running, jobs.cpu) == ({"ann": 2, "bob": 1}, Fraction(0))


def test_an_early_stop_leaves_the_rest_to_their_slices_reason():
    queue = WaitingQueue([req(i, f"u{i}", "g", "gpu-1") for i in range(1, 6)])
    result = plan_admissions(queue, Placer(inventory_from_cluster_spec(NODE)), group_usage={}, user_usage={},
                             weights={}, limits={}, usage={})
    assert ([cid for cid, _ in result.admitted], result.considered, result.stopped_early) == (["r1"], 2, True)
    assert result.reasons.own == {"r2": "waiting: no free gpu-1 on any node"}  # only what it looked at
    assert dict(result.reasons) == {f"r{i}": "waiting: no free gpu-1 on any node" for i in (2, 3, 4, 5)}
    queue.remove("r1")
    queue.note_cycle(result.reasons.own, result.full, result.stopped_early)
    queue.add(req(9, "new", "g", "gpu-1"), "waiting: just asked")
    assert [queue.reason(f"r{i}") for i in (2, 3, 9)] == ["waiting: no free gpu-1 on any node"] * 2 + [
        "waiting: just asked"]


def test_the_waiting_queue_keeps_each_users_requests_in_order_and_the_slice_counts():
    queue = WaitingQueue()
    for c in (req(3, "ann", "a", "gpu-1"), req(1, "ann", "a", "1g.10gb"), req(2, "ann", "a", "gpu-1", priority=1),
              req(4, "bob", "a", "gpu-1")):
        queue.add(c)
    assert {u: [c.id for c in items] for u, items in queue.grouped()["a"].items()} == {
        "ann": ["r2", "r1", "r3"], "bob": ["r4"]}
    assert dict(queue.slice_counts) == {"gpu-1": 3, "1g.10gb": 1}
    taken, reason = queue.remove("r1")
    assert (taken.id, reason, dict(queue.slice_counts)) == ("r1", "", {"gpu-1": 3})
    assert queue.remove("r1") is None
    for cid in ("r2", "r3", "r4"):
        queue.remove(cid)
    assert (len(queue), queue.grouped(), dict(queue.slice_counts), queue.has_user("ann")) == (0, {}, {}, False)


def test_positions_by_sorting_are_the_fair_order_ties_included():
    rng = random.Random(18)
    for _ in range(30):
        waiting = [req(i, f"u{rng.randrange(8)}", f"g{rng.randrange(3)}", rng.choice(sorted(UNITS)),
                       priority=rng.randrange(2)) for i in range(rng.randrange(1, 120))]
        group_usage = {f"g{g}": rng.choice([0.0, 0.5, 2.0]) for g in range(3)}
        user_usage = {f"u{u}": rng.choice([0.0, 1.0, 1 / 7]) for u in range(8)}
        weights = {"g1": 2.0, "g2": 0.5}
        order = fair_order(waiting, group_usage, user_usage, weights)
        assert fair_positions(waiting, group_usage, user_usage, weights) == {c.id: n for n, c in
                                                                              enumerate(order, start=1)}


def test_positions_kept_per_group_as_requests_come_and_go():
    rng = random.Random(21)
    group_usage = {"g0": 0.5, "g1": 0.0, "g2": 2.0}
    user_usage = {f"u{u}": rng.choice([0.0, 1.0, 3 / 7]) for u in range(6)}
    weights = {"g1": 2.0}
    queue = WaitingQueue()
    positions = QueuePositions(queue, group_usage, user_usage, weights)
    for i in range(150):
        if len(queue) and rng.random() < 0.3:
            queue.remove(rng.choice(sorted(c.id for c in queue)))
        else:
            queue.add(req(i, f"u{rng.randrange(6)}", f"g{rng.randrange(3)}", rng.choice(sorted(UNITS)),
                          priority=rng.randrange(2)))
        expected = fair_positions(queue, group_usage, user_usage, weights)
        assert positions.all() == expected
        assert {c.id: positions.position_of(c.id) for c in queue} == expected
