"""The admission desk over a real sqlite database and a static inventory (no GPU here)."""
import pytest

from astrago.hub.db.session import Database
from astrago.hub.quota.desk import AdmissionDesk, AdmissionError, AdmissionRequest
from astrago.hub.quota.models import Allocation, Quota
from astrago.spawners.inventory.static import inventory_from_cluster_spec

CLUSTER = {"nodes": [{"name": "n1", "gpus": [
    {"model": "H100-80GB", "mode": "mig", "geometry": {"3g.40gb": 1, "1g.10gb": 4}},
    {"model": "H100-80GB", "mode": "full"},
]}]}


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path}/q.sqlite")
    database.migrate()
    yield database
    database.close()


def desk_for(cluster=CLUSTER):
    return AdmissionDesk(inventory_from_cluster_spec(cluster))


def set_quota(db, kind, name, weight=1.0, **limits):
    db.run_sync(lambda s: s.add(Quota(subject_kind=kind, subject_name=name, limits=limits, weight=weight,
                                      updated_by="test")))


def admit(db, desk, user, slice_name, groups=(), key=""):
    req = AdmissionRequest("workspace", f"{user}/", user, list(groups), slice_name, client_key=key)
    return db.run_sync(desk.admit, req)


def test_admitted_with_a_placement_then_queued_then_admitted_on_release(db):
    desk = desk_for()
    first = admit(db, desk, "ann", "3g.40gb").allocation
    assert first["status"] == "admitted"
    assert first["gpu_units_exact"] == "3/7"
    assert first["placement"]["visible_devices"][0].startswith("MIG-sim-n1-0-")
    second = admit(db, desk, "ben", "3g.40gb").allocation
    assert second["status"] == "queued" and second["position"] == 1 and second["queue_length"] == 1
    assert "no free 3g.40gb" in second["reason"]
    out = db.run_sync(desk.release, first["id"], "stopped")
    assert out.allocation["status"] == "released"
    assert out.admitted_now == [second["id"]]
    now = db.run_sync(lambda s: desk.describe(s, s.get(Allocation, second["id"])))
    assert now["status"] == "admitted"
    assert now["placement"]["visible_devices"] == first["placement"]["visible_devices"]


def test_quota_refusal_names_the_dimension_and_what_is_left(db):
    desk = desk_for()
    set_quota(db, "default", "*", gpu_units=0.5)
    admit(db, desk, "cat", "1g.10gb")
    admit(db, desk, "cat", "1g.10gb")
    with pytest.raises(AdmissionError) as err:
        admit(db, desk, "cat", "3g.40gb")
    assert err.value.kind == "quota-exceeded"
    assert err.value.extra["dimension"] == "gpu_units"
    assert err.value.extra["left"] == pytest.approx(0.5 - 2 / 7)
    # nothing half-written: the refused request left no row
    assert db.run_sync(lambda s: s.query(Allocation).filter_by(user="cat").count()) == 2


def test_group_quota_is_used_and_user_override_wins(db):
    desk = desk_for()
    set_quota(db, "default", "*", gpu_units=0)
    set_quota(db, "group", "vision", gpu_units=1)
    assert admit(db, desk, "dan", "3g.40gb", groups=["vision"]).allocation["status"] == "admitted"
    with pytest.raises(AdmissionError):
        admit(db, desk, "eve", "1g.10gb")  # default: 0 GPU units
    set_quota(db, "user", "fay", gpu_units=0)
    with pytest.raises(AdmissionError):
        admit(db, desk, "fay", "1g.10gb", groups=["vision"])
    assert admit(db, desk, "eve", "cpu").allocation["status"] == "admitted"  # CPU costs no GPU units


def test_client_key_makes_a_retry_idempotent(db):
    desk = desk_for()
    a = admit(db, desk, "gil", "gpu-1", key="spawn-1")
    b = admit(db, desk, "gil", "gpu-1", key="spawn-1")
    assert a.allocation["id"] == b.allocation["id"] and b.created is False
    assert db.run_sync(lambda s: s.query(Allocation).count()) == 1


def test_invalid_and_never_placeable_slices(db):
    desk = desk_for()
    with pytest.raises(AdmissionError) as err:
        admit(db, desk, "hal", "9g.1tb")
    assert err.value.kind == "invalid-slice"
    with pytest.raises(AdmissionError) as err:
        admit(db, desk, "hal", "gpu-2")
    assert err.value.kind == "capacity-unavailable" and "most on one node is 1" in err.value.detail
    with pytest.raises(AdmissionError) as err:
        admit(db, desk, "hal", "2g.20gb")
    assert err.value.kind == "capacity-unavailable"


def test_restart_restores_the_exact_devices(db):
    desk = desk_for()
    held = admit(db, desk, "ivy", "1g.10gb").allocation
    fresh = desk_for()
    assert db.run_sync(fresh.restore) == []
    # the restored instance is not handed out again
    others = [admit(db, fresh, f"u{i}", "1g.10gb").allocation for i in range(3)]
    devices = {o["placement"]["visible_devices"][0] for o in others}
    assert held["placement"]["visible_devices"][0] not in devices
    assert len(devices) == 3
    assert admit(db, fresh, "u9", "1g.10gb").allocation["status"] == "queued"


def test_queue_serves_the_group_below_its_share_first(db):
    desk = desk_for({"nodes": [{"name": "n", "gpus": [{"model": "H100-80GB", "mode": "full"}]}]})
    set_quota(db, "group", "heavy", weight=1)
    set_quota(db, "group", "light", weight=1)
    holder = admit(db, desk, "hog", "gpu-1", groups=["heavy"]).allocation
    import time
    time.sleep(0.05)  # some usage accrues to "heavy"
    q1 = admit(db, desk, "hank", "gpu-1", groups=["heavy"]).allocation
    q2 = admit(db, desk, "lara", "gpu-1", groups=["light"]).allocation
    assert (q1["status"], q2["status"]) == ("queued", "queued")
    out = db.run_sync(desk.release, holder["id"], "done")
    assert out.admitted_now == [q2["id"]]  # light has used less, though it asked later


def test_a_transaction_that_rolls_back_leaves_nothing_in_memory(db):
    desk = desk_for({"nodes": [{"name": "n", "gpus": [{"model": "H100-80GB", "mode": "full"}]}]})
    holder = admit(db, desk, "ann", "gpu-1").allocation

    def admit_then_fail(session):
        desk.admit(session, AdmissionRequest("workspace", "bob/", "bob", [], "gpu-1"))  # queued
        desk.release(session, holder["id"], "stopped")  # bob's request is admitted onto ann's GPU
        raise RuntimeError("the caller's transaction fails after the desk's work")

    with pytest.raises(RuntimeError):
        db.run_sync(admit_then_fail)
    assert db.run_sync(desk.positions) == {}
    assert list(desk.device_layout()[0].holders) == [holder["id"]]
    again = admit(db, desk, "cy", "gpu-1").allocation
    assert again["status"] == "queued" and (again["position"], again["queue_length"]) == (1, 1)
    assert db.run_sync(desk.release, holder["id"], "stopped").admitted_now == [again["id"]]


def test_a_desk_rebuilt_from_the_database_sees_the_same_queue_and_usage(db):
    desk = desk_for()
    set_quota(db, "group", "heavy", weight=2)
    for i, (user, slice_name) in enumerate([("ann", "3g.40gb"), ("ben", "3g.40gb"), ("cat", "gpu-1"),
                                            ("dan", "gpu-1"), ("eve", "1g.10gb")]):
        admit(db, desk, user, slice_name, groups=["heavy"] if i % 2 else [])
    fresh = desk_for()
    assert db.run_sync(fresh.restore) == []
    assert db.run_sync(fresh.positions) == db.run_sync(desk.positions)
    for user in ("ann", "ben", "cat", "dan", "eve"):
        mine, theirs = db.run_sync(lambda s: (desk.usage_of(s, user), fresh.usage_of(s, user)))
        assert (mine.gpu_units, mine.servers, mine.profile_counts) == (theirs.gpu_units, theirs.servers,
                                                                       theirs.profile_counts)
