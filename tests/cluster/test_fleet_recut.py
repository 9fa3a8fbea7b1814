"""MIG re-cutting (hub/fleet) in embedded mode: there is nothing to re-cut, and it says so.

Cluster mode runs on the real control plane with a simulated mig-manager:
tests/e2e_k8s/test_mig_recut.py."""
from types import SimpleNamespace

import pytest

from astrago.hub.db.session import Database
from astrago.hub.fleet.area import NEEDS_CLUSTER, FleetArea
from astrago.hub.fleet.recut import RecutRefused
from astrago.hub.quota.desk import AdmissionDesk
from astrago.hub.service.contract import AreaContext
from astrago.hub.service.interfaces.admission import AdmissionLedger


async def test_embedded_mode_degrades_clearly(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/e.sqlite")
    db.migrate()
    from astrago.spawners.inventory.static import inventory_from_cluster_spec

    desk = AdmissionDesk(inventory_from_cluster_spec({"nodes": [{"name": "box", "gpus": [
        {"model": "H100-80GB", "mode": "mig", "geometry": {"3g.40gb": 2}}]}]}))
    desk.inventory_note = "simulated"
    context = AreaContext(db=db, settings=SimpleNamespace(mode="embedded", node_selector=""), hub_api=None,
                          hub_user=None)
    context.provide(AdmissionLedger, desk)
    area = FleetArea()
    area.setup(context)
    for action in (area.plan({"demand": {"1g.10gb": 1}}), area.apply({"demand": {"1g.10gb": 1}}, "root")):
        with pytest.raises(RecutRefused) as refused:
            await action
        assert (refused.value.kind, refused.value.detail) == ("conflict", NEEDS_CLUSTER)
    overview = await db.run(lambda s: area.overview(lambda h: h))
    assert overview["mode"] == "embedded" and overview["can_recut"] is False
    assert [[i["profile"] for i in g["instances"]] for g in overview["nodes"][0]["gpus"]] == [["3g.40gb", "3g.40gb"]]
    db.close()
