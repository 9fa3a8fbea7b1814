"""Gang admission in the scheduling cycle (hub/quota/cycle.py, pure), compared with literal
decisions: a request of several replicas, each on a slice of its own, is placed all or none and
charged per replica's slice; MIG and MPS slices too."""
from fractions import Fraction

from astrago.hub.quota.cycle import Candidate, JobBounds, plan_admissions
from astrago.hub.quota.limits import QuotaLimits, Request, Usage, check
from astrago.hub.quota.placements import member_ids, place_gang, placed_to_dict, release_gang, restore_gang
from astrago.hub.quota.waiting import WaitingQueue
from astrago.spawners.inventory.static import inventory_from_cluster_spec
from astrago.spawners.placement import Placer

#: one H100 cut in two 1g.10gb (and the rest of it idle), one whole H100, one shared through MPS in 4
NODE = {"nodes": [{"name": "n", "gpus": [
    {"model": "H100-80GB", "mode": "mig", "geometry": {"1g.10gb": 2}},
    {"model": "H100-80GB", "mode": "full"},
    {"model": "H100-80GB", "mode": "mps", "mps_replicas": 4}]}]}
MIG = ("MIG-sim-n-0-6-1g.10gb", "MIG-sim-n-0-5-1g.10gb")  # in the order the placer hands them out
SEVENTH = Fraction(1, 7)


def gang(cid, user, slice_name, units, replicas, created=1.0, group="g"):
    return Candidate(cid, user, group, created, 0, slice_name, units * replicas, Fraction(replicas),
                     Fraction(4 * replicas), "job", (), replicas)


def single(cid, user, slice_name, units, created=2.0, group="g"):
    return Candidate(cid, user, group, created, 0, slice_name, units, Fraction(1), Fraction(4), "job")


def cycle(queue, placer, **kw):
    return plan_admissions(queue, placer, group_usage={}, user_usage={}, weights={}, limits=kw.pop("limits", {}),
                           usage=kw.pop("usage", {}), **kw)


def devices(placed):
    return [p.mig_instance_uuids or p.gpu_uuids for p in placed]


def held_instances(placer):
    return sorted(i.uuid for gpu in placer.snapshot() for i in gpu.instances if i.holder)


def test_a_two_replica_gang_with_one_free_slot_waits_then_runs_when_a_second_frees():
    placer = Placer(inventory_from_cluster_spec(NODE))
    assert placer.place("held", "1g.10gb").mig_instance_uuids == (MIG[0],)  # one of the two slots is taken
    queue = WaitingQueue([gang("ddp", "ann", "1g.10gb", SEVENTH, 2)])
    first = cycle(queue, placer)
    assert first.admitted == []
    assert dict(first.reasons) == {"ddp": "waiting: 2 x 1g.10gb at once: no free 1g.10gb on any node "
                                          "(1 of 2 would fit now)"}
    assert first.full == {}  # a gang that does not fit says nothing of one slice
    assert held_instances(placer) == [MIG[0]]  # nothing of the gang was kept: all or none
    # the second slot frees: the next cycle admits the gang whole, each replica on its own instance
    placer.release("held")
    second = cycle(queue, placer)
    assert [(cid, devices(placed)) for cid, placed in second.admitted] == [("ddp", [(MIG[0],), (MIG[1],)])]
    assert dict(second.reasons) == {}
    assert sorted(h for gpu in placer.snapshot() for i in gpu.instances for h in [i.holder] if h) == \
        ["ddp#0", "ddp#1"]


def test_a_single_request_behind_a_gang_that_does_not_fit_still_goes():
    placer = Placer(inventory_from_cluster_spec(NODE))
    placer.place("held", "1g.10gb")
    queue = [gang("ddp", "ann", "1g.10gb", SEVENTH, 2, created=1.0), single("one", "bob", "1g.10gb", SEVENTH)]
    result = cycle(queue, placer)
    assert [(cid, devices([p])) for cid, p in result.admitted] == [("one", [(MIG[1],)])]
    assert dict(result.reasons) == {"ddp": "waiting: 2 x 1g.10gb at once: no free 1g.10gb on any node "
                                           "(1 of 2 would fit now)"}


def test_gangs_on_mps_shares_and_whole_gpus():
    placer = Placer(inventory_from_cluster_spec(NODE))
    queue = [gang("mps", "ann", "mps-25", Fraction(1, 4), 3), gang("whole", "bob", "gpu-1", Fraction(1), 2)]
    result = cycle(queue, placer)
    placed = dict(result.admitted)
    assert [(p.gpu_uuids, p.mps_percent) for p in placed["mps"]] == [(("GPU-sim-n-2",), 25)] * 3
    assert "whole" not in placed  # one whole GPU is free, the gang needs two
    assert dict(result.reasons) == {"whole": "waiting: 2 x gpu-1 at once: no free gpu-1 on any node "
                                             "(1 of 2 would fit now)"}


def test_a_gang_is_charged_per_replicas_slice():
    # 3 x 1g.10gb is 3/7 GPU units and three 1g.10gb slices
    assert check(QuotaLimits(gpu_units=Fraction(2, 7)), Usage(), Request("1g.10gb", 3 * SEVENTH, count=3))[0] \
        .sentence() == "Over your gpu_units quota: you asked for 0.43 GPU units, 0.29 of 0.29 left (0 in use)."
    assert check(QuotaLimits(profile_caps={"1g.10gb": 2}), Usage(profile_counts={"1g.10gb": 1}),
                 Request("1g.10gb", 2 * SEVENTH, count=2))[0].sentence() == \
        "Over your 1g.10gb slices quota: you asked for 2 slices, 1 of 2 left (1 in use)."
    placer = Placer(inventory_from_cluster_spec(NODE))
    limits = {"ann": QuotaLimits(gpu_units=Fraction(2, 7)), "bob": QuotaLimits(profile_caps={"mps-25": 2})}
    queue = [gang("a", "ann", "mps-25", Fraction(1, 4), 2), gang("b", "bob", "mps-25", Fraction(1, 4), 3)]
    result = cycle(queue, placer, limits=limits)
    assert result.admitted == []
    assert dict(result.reasons) == {
        "a": "over quota: Over your gpu_units quota: you asked for 0.5 GPU units, 0.29 of 0.29 left (0 in use).",
        "b": "over quota: Over your mps-25 slices quota: you asked for 3 slices, 2 of 2 left (0 in use)."}


def test_a_gang_job_counts_once_against_running_jobs_and_its_sum_against_the_machine():
    jobs = JobBounds(running={}, caps={"ann": 1}, capacity=(Fraction(4), Fraction(64)))
    placer = Placer(inventory_from_cluster_spec(NODE))
    queue = [gang("ddp", "ann", "1g.10gb", SEVENTH, 2), gang("big", "bob", "cpu", Fraction(0), 3, created=3.0)]
    result = cycle(queue, placer, jobs=jobs)
    assert [cid for cid, _ in result.admitted] == ["ddp"]
    assert (jobs.running, jobs.cpu, jobs.memory_gib) == ({"ann": 1}, Fraction(2), Fraction(8))
    assert dict(result.reasons) == {"big": "waiting: the machine's 4 cores for jobs are taken (2 held by running "
                                           "jobs)"}


def test_a_gangs_placement_is_kept_and_given_back_whole():
    placer = Placer(inventory_from_cluster_spec(NODE))
    placed = place_gang(placer, "a1", "1g.10gb", 2)
    stored = placed_to_dict(placed)
    assert stored["visible_devices"] == [MIG[0]] and [r["visible_devices"] for r in stored["replicas"]] == \
        [[MIG[0]], [MIG[1]]]
    assert member_ids("a1", 1) == ["a1"] and member_ids("a1", 2) == ["a1#0", "a1#1"]
    assert len(release_gang(placer, "a1", 2)) == 2 and held_instances(placer) == []
    again = Placer(inventory_from_cluster_spec(NODE))
    assert restore_gang(again, "a1", "1g.10gb", stored, 2) and held_instances(again) == sorted(MIG)
    taken = Placer(inventory_from_cluster_spec(NODE))
    taken.restore("other", "1g.10gb", {"mig_instance_uuids": [MIG[1]], "gpu_uuids": ["GPU-sim-n-0"]})
    assert not restore_gang(taken, "a1", "1g.10gb", stored, 2)  # all or none
    assert held_instances(taken) == [MIG[1]]
