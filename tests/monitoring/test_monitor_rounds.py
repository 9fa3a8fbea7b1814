"""The monitor inside a real (in-process) AstraGo service: a round with a broken and a hanging
collector next to a working one; the metrics document and the history still come out."""
import asyncio
import json
import time

import pytest
import yaml

from astrago.hub.monitor.collectors import Collector
from astrago.hub.monitor.readings import CollectorResult
from astrago.hub.service.app import AstraGoService
from astrago.hub.service.interfaces import AdmissionLedger, AdmissionRequest
from monkit import INVENTORY


class Broken(Collector):
    name = "nvml"

    async def collect(self):
        raise RuntimeError("NVMLError_GpuIsLost: GPU is lost")


class Hanging(Collector):
    name = "prometheus"

    async def collect(self):
        await asyncio.sleep(3600)


@pytest.fixture
def service(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "x")
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:1/hub/api")
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump(INVENTORY))
    (tmp_path / "simulated-gpu-load.json").write_text(json.dumps({"default": {"utilization_percent": 25}}))
    svc = AstraGoService(data_dir=str(tmp_path), db_url=f"sqlite:///{tmp_path}/a.sqlite", inventory_file=str(inventory))
    svc.initialize([])
    yield svc
    monitor_of(svc).close()
    svc.db.close()


def monitor_of(service):
    """The monitor area's own Monitor (its state lives on the area, not on the service)."""
    return next(a for a in service.areas if a.name == "monitor").monitor


def ledger_of(service):
    return service.context.need(AdmissionLedger)


def test_default_collectors_for_a_simulated_inventory(service):
    assert [c.name for c in monitor_of(service).collectors] == ["hub", "simulated"]


def test_a_broken_and_a_hanging_collector_degrade_their_panels_only(service):
    monitor = monitor_of(service)
    simulated = next(c for c in monitor.collectors if c.name == "simulated")
    monitor.collectors = [Broken(), Hanging(), simulated]
    monitor.config.collector_timeout = 0.5
    service.db.run_sync(ledger_of(service).admit, AdmissionRequest("workspace", "alice/", "alice", ["team-a"], "3g.40gb"))

    async def go():
        t0 = time.monotonic()
        view = await monitor.round()
        return view, time.monotonic() - t0, await monitor.metrics_text()

    view, took, text = asyncio.run(go())
    assert took < 5  # the hanging source was cut off at its timeout
    results = monitor.results
    assert (results["nvml"].ok, results["nvml"].error) == (False, "RuntimeError: NVMLError_GpuIsLost: GPU is lost")
    assert (results["prometheus"].ok, results["prometheus"].error) == (False, "no answer within 0.5 s")
    assert results["simulated"].ok
    alice = [s for s in view.slices if s.user == "alice"]
    assert [(s.profile, s.utilization) for s in alice] == [("3g.40gb", 0.25)]
    assert 'astrago_collector_up{collector="nvml"} 0' in text
    assert 'astrago_collector_up{collector="prometheus"} 0' in text
    assert 'astrago_collector_up{collector="simulated"} 1' in text
    assert 'user="alice"' in text and "astrago_slice_utilization_ratio{" in text
    assert monitor.history.get("fleet:busy")["fleet:busy"] == [0.25]
    assert [t.state for t in monitor.tracks.values()] == ["watching"]  # the rules ran too


def test_collector_results_are_never_shared_between_rounds_when_a_source_starts_failing(service, tmp_path):
    monitor = monitor_of(service)
    simulated = next(c for c in monitor.collectors if c.name == "simulated")
    monitor.collectors = [simulated]
    service.db.run_sync(ledger_of(service).admit, AdmissionRequest("workspace", "bob/", "bob", [], "gpu-1"))
    view = asyncio.run(monitor.round())
    assert [s.utilization for s in view.slices if s.user == "bob"] == [0.25]
    (tmp_path / "simulated-gpu-load.json").write_text("{not json")
    view = asyncio.run(monitor.round())
    assert monitor.results["simulated"].ok is False and "JSONDecodeError" in monitor.results["simulated"].error
    assert [s.utilization for s in view.slices if s.user == "bob"] == [None]  # unknown, not the old value
    assert "simulated" in monitor.last_success
