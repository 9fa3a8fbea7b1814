"""The NVML utilisation collector against recorded NVML responses.

The responses are replayed by a test double (nvml_util_replay.RecordedNvmlUtilisation); no
GPU is involved here. On a real GPU the same reader runs in bench/gpu_check_monitor.py.
"""
import json

import pytest

from astrago.hub.monitor.collectors.nvml import NvmlUnavailable, NvmlUtilisationReader, record_nvml_utilisation
from nvml_util_replay import RecordedNvmlUtilisation

USERS = {4242: "alice", 5151: "bob", 777: "carol"}


def reader_for(fixture):
    nvml = RecordedNvmlUtilisation.from_fixture(fixture)
    return nvml, NvmlUtilisationReader("node-a", nvml, user_of_pid=USERS.get)


def test_a_whole_gpu_reads_idle_then_busy_with_its_process_attributed():
    nvml, reader = reader_for("nvml_util_h100_whole.json")
    [idle] = reader.read()
    assert (idle.kind, idle.utilization, idle.processes, idle.memory_used_bytes) == ("gpu", 0.0, [], 545259520)
    nvml.advance()
    [busy] = reader.read()
    assert busy.utilization == 0.87
    assert busy.memory_used_bytes == 32757514240 and busy.memory_total_bytes == 85520809984
    [p] = busy.processes
    assert (p.pid, p.user, p.memory_used_bytes, p.sm_utilization) == (4242, "alice", 32212254720, 0.86)
    assert nvml.initialised == 1  # NVML stays open between rounds


def test_mig_instances_report_gpm_activity_from_the_second_round():
    nvml, reader = reader_for("nvml_util_h100_mig_gpm.json")
    first = reader.read()
    gpu, big, small = first
    assert gpu.kind == "gpu" and gpu.utilization is None  # a MIG-mode GPU reports per instance only
    assert [(d.kind, d.profile, d.gi_id, d.utilization) for d in (big, small)] == [
        ("mig", "3g.40gb", 2, None), ("mig", "1g.10gb", 9, None)]  # one GPM sample is not a measurement
    nvml.advance()
    _gpu, big, small = reader.read()
    assert big.utilization == pytest.approx(0.735) and small.utilization == pytest.approx(0.005)
    assert [(p.pid, p.user) for p in big.processes] == [(5151, "bob")]
    assert big.memory_used_bytes == 21474836480 and big.gpu_uuid == gpu.uuid
    assert sum(1 for s in nvml.samples if not s.freed) == 2  # only the latest sample per instance is kept
    reader.close()
    assert all(s.freed for s in nvml.samples) and nvml.shutdowns == 1


def test_mig_without_gpm_is_unknown_not_idle_and_hidden_process_memory_is_none():
    _nvml, reader = reader_for("nvml_util_a100_mig_no_gpm.json")
    reader.read()
    _gpu, mig = reader.read()
    assert mig.utilization is None
    [p] = mig.processes
    assert (p.pid, p.memory_used_bytes, p.user) == (777, None, "carol")


def test_a_host_without_nvml_says_so():
    class Broken:
        def nvmlInit(self):
            raise RuntimeError("NVML Shared Library Not Found")

    with pytest.raises(NvmlUnavailable, match="could not be initialised"):
        NvmlUtilisationReader("n", Broken()).read()


@pytest.mark.parametrize("fixture", ["nvml_util_h100_whole.json", "nvml_util_h100_mig_gpm.json",
                                     "nvml_util_a100_mig_no_gpm.json"])
def test_the_recorder_writes_what_the_double_replays(fixture, monkeypatch):
    """record_nvml_utilisation (run on GPU hosts) and the double agree on the format, round by round."""
    import time

    monkeypatch.setattr(time, "sleep", lambda s: None)
    nvml = RecordedNvmlUtilisation.from_fixture(fixture)
    expected = json.loads(json.dumps(nvml.rounds))
    for n, want in enumerate(expected):
        assert record_nvml_utilisation(nvml) == want, f"round {n}"
        nvml.advance()
