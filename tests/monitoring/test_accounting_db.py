"""What a monitoring round reads from the ledger (the quota area's AccountingReader), on sqlite and on a
real MariaDB (Debian's), exactly."""
from datetime import datetime, timedelta

import pytest

from astrago.hub.db.session import Database
from astrago.hub.quota.accounting import LedgerReader  # the quota area's AccountingReader
from astrago.hub.quota.desk import AdmissionDesk
from astrago.spawners.inventory import ClusterInventory
from astrago.hub.quota.models import Allocation, Quota
from support.fixtures import require
from support.mariadb import MariaDB

NOW = datetime(2026, 5, 31, 12, 0, 0)
NOW_TS = (NOW - datetime(1970, 1, 1)).total_seconds()


def alloc(aid, user, slice_, num, den, admitted_h_ago, released_h_ago=None, status=None, groups=("team-a",),
          kind="workspace"):
    admitted = NOW - timedelta(hours=admitted_h_ago) if admitted_h_ago is not None else None
    released = NOW - timedelta(hours=released_h_ago) if released_h_ago is not None else None
    status = status or ("released" if released else "admitted")
    return Allocation(id=aid, client_key=aid, owner_kind=kind, owner_id=f"{user}/", user=user, groups=list(groups),
                      accounting_group=groups[0] if groups else "", slice=slice_, units_num=num, units_den=den,
                      cpu=2.0, memory_gib=8.0, priority=0, status=status, reason="", placement={},
                      created_at=admitted or NOW - timedelta(minutes=5), admitted_at=admitted, released_at=released)


def rows():
    return [
        alloc("a1", "alice", "3g.40gb", 3, 7, admitted_h_ago=7),  # held: 7 h x 3/7 = 3 GPU-hours
        alloc("a2", "alice", "1g.10gb", 1, 7, admitted_h_ago=14, released_h_ago=7),  # 7 h x 1/7 = 1
        alloc("b1", "bob", "gpu-1", 1, 1, admitted_h_ago=24 * 40, released_h_ago=24 * 29),  # 24 h inside the window
        alloc("b2", "bob", "gpu-2", 2, 1, admitted_h_ago=24 * 60, released_h_ago=24 * 45),  # before the window: 0
        alloc("c1", "carol", "cpu", 0, 1, admitted_h_ago=5),  # CPU only: no GPU-hours
        alloc("d1", "dave", "gpu-1", 1, 1, admitted_h_ago=None, status="queued"),
    ]


@pytest.fixture(params=["sqlite", "mariadb"])
def db(request, tmp_path):
    server = None
    if request.param == "mariadb":
        require(MariaDB.available(), "Debian's mariadb-server")
        server = MariaDB().start()
        database = Database(server.url())
    else:
        database = Database(f"sqlite:///{tmp_path}/a.sqlite")
    database.migrate()

    def fill(session):
        session.add_all(rows())
        session.add_all([Quota(subject_kind="group", subject_name="team-a", limits={"gpu_units": 2}, weight=1.0),
                         Quota(subject_kind="user", subject_name="alice", limits={"gpu_hours": 10}, weight=1.0)])

    database.run_sync(fill)
    yield database
    database.close()
    if server:
        server.stop()


def test_the_ledger_as_a_scrape_reads_it(db):
    reader = LedgerReader(AdmissionDesk(ClusterInventory(nodes=[]), gpu_hours_period_days=30))
    acc = db.run_sync(lambda s: reader.accounting(s, now=NOW_TS))
    assert sorted(acc.held) == ["a1", "c1"]
    a1 = acc.held["a1"]
    assert (a1.user, a1.groups, a1.owner_kind, a1.slice, a1.units, a1.admitted_at) == (
        "alice", ("team-a",), "workspace", "3g.40gb", 3 / 7, NOW_TS - 7 * 3600)
    assert [(slc, user) for slc, user, _ in acc.queued] == [("gpu-1", "dave")]
    assert acc.gpu_hours == pytest.approx({"alice": 3.0 + 1.0, "bob": 24.0}, abs=1e-3)
    # bob holds nothing now: his groups are unknown here, and he has no quota of his own
    assert acc.user_limits == {"alice": {"gpu_units": 2.0, "gpu_hours": 10.0}, "carol": {"gpu_units": 2.0}}
    assert acc.group_limits == {"team-a": {"gpu_units": 2.0}}
