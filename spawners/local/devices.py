"""What this machine can hand out, and who holds what (pure, no I/O).

The local spawner turns the node's inventory (NVML, or a static file on hosts
without GPUs) into allocatable devices: whole GPUs, existing MIG instances and
MPS shares of GPUs run in MPS mode. The ledger makes sure two users never hold
the same MIG instance or GPU at once, and MPS shares never add up past 100%.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction

MPS_MAX_CLIENTS = 48  # per GPU, Volta and later (NVIDIA MPS docs)
_MIG_COMPUTE = re.compile(r"^(\d+)g\.")
_GPU_SLICE = re.compile(r"^gpu-([1-8])$")
_MPS_SLICE = re.compile(r"^mps-(\d{1,3})$")


@dataclass(frozen=True)
class LocalDevice:
    """One allocatable unit on this machine."""

    key: str  # stable id in the ledger: gpu:<uuid>, mig:<uuid>, mps:<gpu uuid>
    kind: str  # gpu | mig | mps
    gpu_index: int
    uuid: str  # what CUDA_VISIBLE_DEVICES names (GPU-..., MIG-...)
    profile: str  # MIG profile name, or "gpu" / "mps"
    model: str | None
    memory_gb: float
    compute_slices: int = 7  # of the parent GPU, for MIG GPU units


@dataclass(frozen=True)
class SliceOffer:
    """A line of the options form."""

    name: str  # cpu | gpu-N | <mig profile> | mps-P
    label: str
    kind: str
    gpu_units: Fraction
    memory_gb: float
    free: int
    total: int
    note: str = ""


@dataclass
class Allocation:
    owner: str
    slice_name: str
    device_keys: list[str]
    uuids: list[str]
    gpu_indices: list[int]
    mps_percent: int = 0
    mps_memory_gb: float = 0.0

    def to_state(self) -> dict:
        return {"owner": self.owner, "slice": self.slice_name, "device_keys": self.device_keys, "uuids": self.uuids,
                "gpu_indices": self.gpu_indices, "mps_percent": self.mps_percent, "mps_memory_gb": self.mps_memory_gb}

    @classmethod
    def from_state(cls, state: dict) -> "Allocation":
        return cls(owner=state["owner"], slice_name=state["slice"], device_keys=list(state["device_keys"]),
                   uuids=list(state["uuids"]), gpu_indices=list(state["gpu_indices"]),
                   mps_percent=int(state.get("mps_percent", 0)), mps_memory_gb=float(state.get("mps_memory_gb", 0)))


class NoCapacity(RuntimeError):
    """Nothing free for the request right now; the message says what."""


class InvalidSliceName(ValueError):
    pass


def devices_from_inventory(gpus) -> list[LocalDevice]:
    """Allocatable devices of one node's GPUs (astrago.spawners.inventory.GPUDevice objects)."""
    devices = []
    for gpu in gpus:
        memory_gb = round(gpu.memory_mib / 1024, 1)
        compute = 7
        if gpu.model:
            from ..slices import GPU_MODELS  # catalogue, pure

            if gpu.model in GPU_MODELS:
                compute = GPU_MODELS[gpu.model].compute_slices
        if gpu.mode == "mig":
            for inst in gpu.mig_instances:
                mem = _mig_memory_gb(inst.profile)
                devices.append(LocalDevice(f"mig:{inst.uuid}", "mig", gpu.index, inst.uuid, inst.profile, gpu.model,
                                           mem, compute))
        elif gpu.mode == "mps":
            devices.append(LocalDevice(f"mps:{gpu.uuid}", "mps", gpu.index, gpu.uuid, "mps", gpu.model, memory_gb))
        else:
            devices.append(LocalDevice(f"gpu:{gpu.uuid}", "gpu", gpu.index, gpu.uuid, "gpu", gpu.model, memory_gb))
    return devices


def _mig_memory_gb(profile: str) -> float:
    match = re.search(r"\.(\d+)gb", profile)
    return float(match.group(1)) if match else 0.0


def gpu_units(slice_name: str, device: LocalDevice | None = None) -> Fraction:
    """GPU units of a slice name (DESIGN.md: whole GPU 1, MIG compute/total, MPS percent/100)."""
    if slice_name == "cpu":
        return Fraction(0)
    if m := _GPU_SLICE.match(slice_name):
        return Fraction(int(m.group(1)))
    if m := _MPS_SLICE.match(slice_name):
        return Fraction(int(m.group(1)), 100)
    if m := _MIG_COMPUTE.match(slice_name):
        total = device.compute_slices if device else 7
        return Fraction(int(m.group(1)), total)
    raise InvalidSliceName(f"{slice_name!r} is not a slice name (cpu, gpu-N, mps-P or a MIG profile like 1g.10gb).")


class LocalDeviceLedger:
    """Who holds which device on this machine. In memory; rebuilt from spawner state at hub start."""

    def __init__(self, devices: list[LocalDevice], mps_shares: list[int]):
        self.devices = list(devices)
        self.mps_shares = sorted(set(mps_shares))
        self._by_key = {d.key: d for d in self.devices}
        self.allocations: dict[str, Allocation] = {}
        # key -> owners (MPS devices hold several)
        self._holders: dict[str, dict[str, int]] = {}

    # -- queries -------------------------------------------------------

    def _is_free(self, device: LocalDevice) -> bool:
        return not self._holders.get(device.key)

    def _mps_used(self, device: LocalDevice) -> tuple[int, int]:
        held = self._holders.get(device.key, {})
        return sum(held.values()), len(held)

    def offers(self, cpu_label: str) -> list[SliceOffer]:
        offers = [SliceOffer("cpu", cpu_label, "cpu", Fraction(0), 0.0, 1, 1, "no GPU")]
        whole = [d for d in self.devices if d.kind == "gpu"]
        free_whole = [d for d in whole if self._is_free(d)]
        for n in range(1, len(whole) + 1):
            mem = whole[0].memory_gb * n
            offers.append(SliceOffer(f"gpu-{n}", f"{n} whole GPU{'s' if n > 1 else ''}", "gpu", Fraction(n), mem,
                                     len(free_whole) // n, len(whole) // n))
        mig_profiles: dict[str, list[LocalDevice]] = {}
        for d in self.devices:
            if d.kind == "mig":
                mig_profiles.setdefault(d.profile, []).append(d)
        for profile in sorted(mig_profiles, key=lambda p: (gpu_units(p, mig_profiles[p][0]), p)):
            group = mig_profiles[profile]
            free = sum(1 for d in group if self._is_free(d))
            offers.append(SliceOffer(profile, f"MIG {profile}", "mig", gpu_units(profile, group[0]),
                                     group[0].memory_gb, free, len(group), "isolated slice of a GPU"))
        mps_devices = [d for d in self.devices if d.kind == "mps"]
        if mps_devices:
            for pct in self.mps_shares:
                free = 0
                for d in mps_devices:
                    used, clients = self._mps_used(d)
                    if clients < MPS_MAX_CLIENTS:
                        free += (100 - used) // pct
                offers.append(SliceOffer(
                    f"mps-{pct}", f"MPS share {pct}%", "mps", Fraction(pct, 100),
                    round(mps_devices[0].memory_gb * pct / 100, 1), free,
                    len(mps_devices) * (100 // pct),
                    "shares a GPU: a fatal error in one client stops all clients on that GPU"))
        return offers

    # -- changes -------------------------------------------------------

    def allocate(self, owner: str, slice_name: str) -> Allocation:
        """Take devices for `slice_name`; raises NoCapacity or InvalidSliceName."""
        if owner in self.allocations:
            return self.allocations[owner]  # idempotent: a retried spawn never allocates twice
        gpu_units(slice_name)  # validates the name
        if slice_name == "cpu":
            alloc = Allocation(owner, "cpu", [], [], [])
        elif m := _GPU_SLICE.match(slice_name):
            n = int(m.group(1))
            free = [d for d in self.devices if d.kind == "gpu" and self._is_free(d)]
            if len(free) < n:
                raise NoCapacity(f"{n} whole GPU(s) asked for, {len(free)} free on this machine right now.")
            chosen = free[:n]
            alloc = Allocation(owner, slice_name, [d.key for d in chosen], [d.uuid for d in chosen],
                               [d.gpu_index for d in chosen])
        elif m := _MPS_SLICE.match(slice_name):
            pct = int(m.group(1))
            if pct not in self.mps_shares:
                raise InvalidSliceName(f"MPS share {pct}% is not offered here (offered: {self.mps_shares}).")
            candidates = []
            for d in self.devices:
                if d.kind != "mps":
                    continue
                used, clients = self._mps_used(d)
                if used + pct <= 100 and clients < MPS_MAX_CLIENTS:
                    candidates.append((used, d))
            if not candidates:
                raise NoCapacity(f"No GPU has {pct}% of MPS capacity free right now.")
            # best fit: the fullest GPU that still fits keeps others free for big shares
            _, d = max(candidates, key=lambda c: (c[0], -c[1].gpu_index))
            alloc = Allocation(owner, slice_name, [d.key], [d.uuid], [d.gpu_index], pct,
                               round(d.memory_gb * pct / 100, 1))
        else:
            free = [d for d in self.devices if d.kind == "mig" and d.profile == slice_name and self._is_free(d)]
            if not free:
                exists = any(d.kind == "mig" and d.profile == slice_name for d in self.devices)
                if not exists:
                    raise InvalidSliceName(f"There is no MIG {slice_name} instance on this machine.")
                raise NoCapacity(f"No free MIG {slice_name} instance on this machine right now.")
            d = free[0]
            alloc = Allocation(owner, slice_name, [d.key], [d.uuid], [d.gpu_index])
        self._hold(alloc)
        return alloc

    def _hold(self, alloc: Allocation) -> None:
        for key in alloc.device_keys:
            self._holders.setdefault(key, {})[alloc.owner] = alloc.mps_percent
        self.allocations[alloc.owner] = alloc

    def restore(self, alloc: Allocation) -> None:
        """Re-register an allocation found in a running server's saved state."""
        if alloc.owner in self.allocations:
            return
        for key in alloc.device_keys:
            if key not in self._by_key:
                raise NoCapacity(f"Device {key} of {alloc.owner}'s server is no longer on this machine.")
        self._hold(alloc)

    def release(self, owner: str) -> Allocation | None:
        alloc = self.allocations.pop(owner, None)
        if alloc:
            for key in alloc.device_keys:
                holders = self._holders.get(key, {})
                holders.pop(owner, None)
                if not holders:
                    self._holders.pop(key, None)
        return alloc


def process_env(alloc: Allocation, *, mps_pipe_dir: str = "", mps_log_dir: str = "") -> dict[str, str]:
    """Environment of a user's server for its allocation (pure)."""
    env = {"CUDA_VISIBLE_DEVICES": ",".join(alloc.uuids), "ASTRAGO_SLICE": alloc.slice_name}
    if alloc.mps_percent:
        env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = str(alloc.mps_percent)
        if mps_pipe_dir:
            env["CUDA_MPS_PIPE_DIRECTORY"] = mps_pipe_dir
        if mps_log_dir:
            env["CUDA_MPS_LOG_DIRECTORY"] = mps_log_dir
        if alloc.mps_memory_gb:
            # the process sees one device, ordinal 0
            env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] = f"0={int(alloc.mps_memory_gb)}G"
    return env
