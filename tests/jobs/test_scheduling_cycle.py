"""The scheduling cycle (pure, in memory) and the desk around it: fair order, backfill, quota
waits, early stop. The same `plan_admissions` runs in the service and in bench/scheduler.py."""
from fractions import Fraction

import pytest

from astrago.hub.db.session import Database
from astrago.hub.quota.cycle import Candidate, committed_usage, fair_order, plan_admissions
from astrago.hub.quota.desk import AdmissionDesk, AdmissionError, AdmissionRequest
from astrago.hub.quota.limits import QuotaLimits, Usage
from astrago.hub.quota.models import Quota
from astrago.spawners.inventory.static import inventory_from_cluster_spec
from astrago.spawners.placement import Placer

ONE_NODE = {"nodes": [{"name": "n", "gpus": [
    {"model": "H100-80GB", "mode": "mig", "geometry": {"1g.10gb": 7}},
    {"model": "H100-80GB", "mode": "full"}, {"model": "H100-80GB", "mode": "full"}]}]}


def cand(i, user, group, slice_name="gpu-1", priority=0, created=None):
    units = {"gpu-1": Fraction(1), "gpu-2": Fraction(2), "1g.10gb": Fraction(1, 7), "cpu": Fraction(0)}[slice_name]
    return Candidate(f"c{i:03d}", user, group, float(created if created is not None else i), priority, slice_name,
                     units)


def test_groups_interleave_by_weighted_usage_users_within_priorities_within_a_user():
    waiting = [cand(1, "a1", "ga"), cand(2, "a1", "ga", priority=5), cand(3, "a2", "ga"),
               cand(4, "b1", "gb"), cand(5, "b1", "gb")]
    order = [c.id for c in fair_order(waiting, {"ga": 0.0, "gb": 0.5}, {}, {"ga": 1.0, "gb": 1.0})]
    # ga is further below its share; its user a1's priority-5 job first; then groups alternate
    # as each admission charges its group 1 GPU-hour; inside ga the users alternate too
    assert order == ["c002", "c004", "c003", "c005", "c001"]
    heavy = [c.id for c in fair_order(waiting, {"ga": 4.0, "gb": 1.0}, {}, {"ga": 4.0, "gb": 1.0})]
    assert heavy[0] == "c002"  # weight 4: 4 GPU-hours count as 1


def test_committed_usage_counts_what_is_held():
    assert committed_usage({"g": 2.0}, {"g": 3.0, "h": 1.0}, 1.0) == {"g": 5.0, "h": 1.0}


def test_backfill_passes_a_head_that_does_not_fit_and_stops_when_nothing_can():
    placer = Placer(inventory_from_cluster_spec(ONE_NODE))
    waiting = [cand(1, "a", "g", "gpu-2"), cand(2, "a", "g", "gpu-2"), cand(3, "b", "g", "gpu-1"),
               cand(4, "c", "g", "1g.10gb"), cand(5, "d", "h", "gpu-1")]
    placer.place("held", "gpu-1")  # one whole GPU taken: gpu-2 cannot fit
    result = plan_admissions(waiting, placer, group_usage={}, user_usage={}, weights={}, limits={}, usage={})
    admitted = [i for i, _ in result.admitted]
    assert set(admitted) == {"c003", "c004"} or set(admitted) == {"c005", "c004"}
    assert "no free gpu-2" in result.reasons["c001"] and result.reasons["c002"] == result.reasons["c001"]
    assert len(admitted) == 2 and all(r.startswith("waiting: ") for r in result.reasons.values())


def test_quota_waits_are_explained_and_cached_per_shape():
    placer = Placer(inventory_from_cluster_spec(ONE_NODE))
    waiting = [cand(i, "q", "g", "1g.10gb") for i in range(5)]
    limits = {"q": QuotaLimits(gpu_units=Fraction(2, 7))}
    result = plan_admissions(waiting, placer, group_usage={}, user_usage={}, weights={}, limits=limits,
                             usage={"q": Usage()})
    assert [i for i, _ in result.admitted] == ["c000", "c001"]
    for i in ("c002", "c003", "c004"):
        assert result.reasons[i].startswith("over quota: Over your gpu_units quota")


def test_early_stop_when_every_slice_is_full():
    placer = Placer(inventory_from_cluster_spec({"nodes": [{"name": "n", "gpus": [
        {"model": "H100-80GB", "mode": "full"}]}]}))
    waiting = [cand(i, f"u{i % 7}", f"g{i % 3}") for i in range(500)]
    result = plan_admissions(waiting, placer, group_usage={}, user_usage={}, weights={}, limits={}, usage={})
    assert len(result.admitted) == 1 and result.considered == 2  # the second one found it full
    assert len(result.reasons) == 499 and all("no free gpu-1" in r for r in result.reasons.values())


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path}/q.sqlite")
    database.migrate()
    yield database
    database.close()


def test_a_job_over_quota_waits_but_one_that_can_never_fit_its_quota_is_refused(db):
    desk = AdmissionDesk(inventory_from_cluster_spec(ONE_NODE))
    db.run_sync(lambda s: s.add(Quota(subject_kind="user", subject_name="q", limits={"gpu_units": 1.0},
                                      weight=1.0, updated_by="t")))

    def ask(slice_name, key, wait=True):
        return db.run_sync(desk.admit, AdmissionRequest("job", key, "q", [], slice_name, client_key=key,
                                                        wait_over_quota=wait)).allocation

    first = ask("gpu-1", "j1")
    assert first["status"] == "admitted"
    second = ask("1g.10gb", "j2")
    assert second["status"] == "queued" and second["reason"].startswith("over quota: Over your gpu_units quota")
    with pytest.raises(AdmissionError) as err:
        ask("gpu-2", "j3")  # 2 units > a quota of 1, even with nothing held
    assert err.value.kind == "quota-exceeded"
    with pytest.raises(AdmissionError):
        ask("1g.10gb", "w1", wait=False)  # a workspace is refused, not queued
    out = db.run_sync(desk.release, first["id"], "done")
    assert out.admitted_now == [second["id"]]
