"""A team's storage limit is its group quota's storage_gib (TeamStorageLimits, provided by quota)."""
from astrago.hub.db.session import Database
from astrago.hub.quota.models import Quota
from astrago.hub.quota.storage_limit import GIB, QuotaStorageLimits


def test_a_team_gets_its_group_quota_storage_and_nothing_else(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/q.sqlite")
    db.migrate()
    with db.transaction() as s:
        s.add(Quota(subject_kind="group", subject_name="vision", limits={"storage_gib": 1.5, "gpu_units": 2}))
        s.add(Quota(subject_kind="group", subject_name="nlp", limits={"gpu_units": 1}))
        s.add(Quota(subject_kind="user", subject_name="vision", limits={"storage_gib": 99}))  # a user, not the team
        s.add(Quota(subject_kind="default", subject_name="", limits={"storage_gib": 50}))
    limits = QuotaStorageLimits(db, hub_user=None, desk=None)
    try:
        assert limits.team_storage_limit_bytes("vision") == int(1.5 * GIB)
        assert limits.team_storage_limit_bytes("nlp") is None  # its quota sets no storage
        assert limits.team_storage_limit_bytes("nobody") is None  # no group quota: no limit
    finally:
        db.close()
