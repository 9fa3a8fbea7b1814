"""The local device ledger: who holds which GPU, MIG instance or MPS share (pure)."""
from fractions import Fraction
from types import SimpleNamespace

import pytest

from astrago.spawners.local.devices import (Allocation, InvalidSliceName, LocalDevice, LocalDeviceLedger, NoCapacity,
                                            gpu_units, process_env)


def mig(uuid, profile, index=0):
    return LocalDevice(f"mig:{uuid}", "mig", index, uuid, profile, "H100-80GB", float(profile.split(".")[1][:-2]))


def whole(uuid, index):
    return LocalDevice(f"gpu:{uuid}", "gpu", index, uuid, "gpu", "H100-80GB", 80.0)


def mps(uuid, index):
    return LocalDevice(f"mps:{uuid}", "mps", index, uuid, "mps", "H100-80GB", 80.0)


def test_gpu_units_follow_the_design_units():
    assert gpu_units("cpu") == 0
    assert gpu_units("gpu-2") == 2
    assert gpu_units("mps-25") == Fraction(1, 4)
    assert gpu_units("3g.40gb") == Fraction(3, 7)
    a30 = LocalDevice("mig:x", "mig", 0, "x", "2g.12gb", "A30-24GB", 12.0, compute_slices=4)
    assert gpu_units("2g.12gb", a30) == Fraction(1, 2)
    with pytest.raises(InvalidSliceName):
        gpu_units("huge")


def test_two_owners_never_get_the_same_mig_instance():
    ledger = LocalDeviceLedger([mig("MIG-a", "1g.10gb"), mig("MIG-b", "1g.10gb")], [])
    first = ledger.allocate("u1/", "1g.10gb")
    second = ledger.allocate("u2/", "1g.10gb")
    assert first.uuids == ["MIG-a"] and second.uuids == ["MIG-b"]
    with pytest.raises(NoCapacity, match="No free MIG 1g.10gb"):
        ledger.allocate("u3/", "1g.10gb")
    ledger.release("u1/")
    assert ledger.allocate("u3/", "1g.10gb").uuids == ["MIG-a"]


def test_allocation_is_idempotent_per_owner():
    ledger = LocalDeviceLedger([whole("GPU-0", 0), whole("GPU-1", 1)], [])
    a = ledger.allocate("u1/", "gpu-1")
    assert ledger.allocate("u1/", "gpu-1") is a
    offers = {o.name: o for o in ledger.offers("CPU only")}
    assert (offers["gpu-1"].free, offers["gpu-1"].total) == (1, 2)
    assert (offers["gpu-2"].free, offers["gpu-2"].total) == (0, 1)


def test_whole_gpus_and_unknown_mig_profile():
    ledger = LocalDeviceLedger([whole("GPU-0", 0), whole("GPU-1", 1)], [])
    two = ledger.allocate("u1/", "gpu-2")
    assert two.uuids == ["GPU-0", "GPU-1"] and two.gpu_indices == [0, 1]
    with pytest.raises(NoCapacity, match="1 whole GPU"):
        ledger.allocate("u2/", "gpu-1")
    with pytest.raises(InvalidSliceName, match="no MIG 3g.40gb"):
        ledger.allocate("u2/", "3g.40gb")


def test_mps_shares_never_exceed_a_gpu_and_pack_best_fit():
    ledger = LocalDeviceLedger([mps("GPU-0", 0), mps("GPU-1", 1)], [25, 50])
    a = ledger.allocate("a/", "mps-50")
    b = ledger.allocate("b/", "mps-25")
    assert a.uuids == b.uuids  # the fuller GPU is filled first, the other stays whole for a big share
    c = ledger.allocate("c/", "mps-50")
    assert c.uuids != a.uuids
    d = ledger.allocate("d/", "mps-25")
    assert d.uuids == a.uuids
    offers = {o.name: o for o in ledger.offers("CPU only")}
    assert offers["mps-25"].free == 2 and offers["mps-50"].free == 1
    assert ledger.allocate("e/", "mps-50").uuids == c.uuids
    with pytest.raises(NoCapacity, match="25% of MPS capacity"):
        ledger.allocate("f/", "mps-25")
    with pytest.raises(InvalidSliceName):
        ledger.allocate("g/", "mps-30")
    ledger.release("a/")
    assert ledger.allocate("f/", "mps-25").uuids == a.uuids


def test_restore_after_hub_restart_blocks_the_device_again():
    ledger = LocalDeviceLedger([mig("MIG-a", "1g.10gb")], [])
    saved = Allocation("u1/", "1g.10gb", ["mig:MIG-a"], ["MIG-a"], [0]).to_state()
    ledger.restore(Allocation.from_state(saved))
    with pytest.raises(NoCapacity):
        ledger.allocate("u2/", "1g.10gb")
    with pytest.raises(NoCapacity, match="no longer on this machine"):
        ledger.restore(Allocation("u9/", "1g.10gb", ["mig:MIG-gone"], ["MIG-gone"], [0]))


def test_process_env_for_mig_mps_and_cpu():
    assert process_env(Allocation("u/", "cpu", [], [], [])) == {"CUDA_VISIBLE_DEVICES": "", "ASTRAGO_SLICE": "cpu"}
    assert process_env(Allocation("u/", "1g.10gb", ["mig:MIG-a"], ["MIG-a"], [0])) == {
        "CUDA_VISIBLE_DEVICES": "MIG-a", "ASTRAGO_SLICE": "1g.10gb"}
    env = process_env(Allocation("u/", "mps-25", ["mps:GPU-0"], ["GPU-0"], [0], 25, 20.0),
                      mps_pipe_dir="/tmp/nvidia-mps", mps_log_dir="/var/log/nvidia-mps")
    assert env == {
        "CUDA_VISIBLE_DEVICES": "GPU-0", "ASTRAGO_SLICE": "mps-25",
        "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": "25", "CUDA_MPS_PIPE_DIRECTORY": "/tmp/nvidia-mps",
        "CUDA_MPS_LOG_DIRECTORY": "/var/log/nvidia-mps", "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": "0=20G",
    }


def test_cpu_only_machine_offers_only_cpu():
    offers = LocalDeviceLedger([], [25]).offers("CPU only")
    assert [(o.name, o.kind, o.gpu_units) for o in offers] == [("cpu", "cpu", 0)]
