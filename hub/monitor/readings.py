"""What a collector reports: readings of devices (whole GPUs and MIG instances) and of servers.

Plain data, no I/O. Utilisation is a ratio in [0, 1] (Prometheus convention), None when the
source cannot measure it (a MIG instance on a GPU without GPM, a simulated GPU without a
reading): None is "unknown", never "idle".
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class ProcessReading:
    """A compute process on a device, as NVML sees it (single machine)."""

    pid: int
    memory_used_bytes: int | None = None
    sm_utilization: float | None = None  # ratio, from NVML's per-process samples
    user: str | None = None  # hub user owning the process (from its system account), when known


@dataclass(slots=True)
class DeviceReading:
    """One device: a whole GPU (`kind` "gpu") or a MIG instance (`kind` "mig")."""

    uuid: str
    kind: str  # gpu | mig
    node: str = ""
    gpu_uuid: str = ""  # the physical GPU (itself for kind "gpu")
    gpu_index: int | None = None
    gi_id: int | None = None  # MIG GPU instance id (DCGM's GPU_I_ID)
    profile: str = ""  # MIG profile ("3g.40gb"), "" for a whole GPU
    utilization: float | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    processes: list[ProcessReading] = field(default_factory=list)
    allocation_hint: str | None = None  # cluster: the pod's astrago.io/allocation label


@dataclass(slots=True)
class ServerReading:
    """A user's server as JupyterHub reports it."""

    user: str
    name: str  # "" for the default server
    ready: bool
    pending: str | None
    last_activity: float | None  # unix seconds


@dataclass
class CollectorResult:
    """One round of one collector."""

    name: str
    ok: bool
    at: float
    duration_s: float = 0.0
    error: str = ""
    devices: list[DeviceReading] = field(default_factory=list)
    servers: list[ServerReading] | None = None
    note: str = ""  # a sentence for the dashboards ("simulated readings from ...")
