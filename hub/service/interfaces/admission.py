"""Admission: the allocation ledger. Provided by the quota area; used by jobs and fleet.

A request for a slice is admitted (placed on a device, charged to the user's quota),
queued (waiting for room, in fair-share order) or refused (`AdmissionError`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

#: holder id prefix of the GPUs the ledger keeps out of placement while they are re-cut
#: (`AdmissionLedger.replace_inventory(drained=...)`); fleet names them to tell them apart
DRAIN_HOLDER = "recut-in-progress:"
#: holder id prefix of the slices held for pods AstraGo did not admit (DaemonSets, tenants, kubectl)
CLUSTER_HOLDER = "held-in-cluster:"


@dataclass
class AdmissionRequest:
    owner_kind: str  # workspace | job
    owner_id: str  # e.g. "alice/" (user/server name) or a job id
    user: str
    groups: list[str]
    slice: str
    cpu: float = 0.0
    memory_gib: float = 0.0
    client_key: str = ""
    priority: int = 0
    # a job waits in the queue while over quota (with the reason); a workspace is refused.
    # A request over quota even with nothing held (or a slice not allowed) is refused either way.
    wait_over_quota: bool = False
    # a gang: this many replicas, each on its own `slice` (cpu and memory_gib are per replica),
    # admitted all or none and charged to the quota as `replicas` slices. The allocation's
    # placement then lists each replica's (`placement["replicas"]`, replica 0's also at the top).
    replicas: int = 1


class AdmissionError(Exception):
    """A refusal: `kind` is the problem type (invalid-slice, quota-exceeded, capacity-unavailable,
    not-found, conflict, ...), `detail` the sentence for people, `extra` machine-readable fields."""

    def __init__(self, kind: str, detail: str, extra: dict | None = None):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.extra = extra or {}


@dataclass
class AdmissionOutcome:
    allocation: dict  # the allocation as the API describes it
    created: bool = True  # False when `client_key` found an earlier request's allocation
    admitted_now: list = field(default_factory=list)  # ids of queued requests a release let in


@dataclass(frozen=True)
class AllocationRecord:
    """An allocation as other areas see it (never the ORM row)."""

    id: str
    user: str
    owner_kind: str
    owner_id: str
    slice: str
    status: str  # queued | admitted | released | cancelled
    placement: Mapping[str, Any] = field(default_factory=dict)  # node, model, gpu_uuids, mig_instance_uuids
    admitted_at: datetime | None = None
    released_at: datetime | None = None


def replica_placements(placement: Mapping[str, Any] | None, replicas: int = 1) -> list[dict]:
    """Each replica's placement of an allocation (pure): a gang's `placement["replicas"]`, else the
    one placement (for every one of `replicas` when the allocation holds no devices, e.g. cpu)."""
    placement = dict(placement or {})
    listed = placement.get("replicas")
    if isinstance(listed, list) and listed:
        return [dict(p) for p in listed]
    return [placement for _ in range(max(1, replicas))]


@dataclass
class InventoryRebuild:
    """What moving the ledger onto a new inventory did."""

    restored: int = 0
    moved: list[str] = field(default_factory=list)
    unplaced: list[str] = field(default_factory=list)
    admitted_now: list[str] = field(default_factory=list)


@runtime_checkable
class AdmissionLedger(Protocol):
    """The admission desk and its ledger. Every method runs on the database thread."""

    #: the inventory placement works on (spawners.inventory.ClusterInventory); read-only for callers
    inventory: Any
    #: where that inventory came from, a sentence for people (pages show it)
    inventory_note: str

    def admit(self, session, request: AdmissionRequest) -> AdmissionOutcome:
        """Admit, queue or refuse (AdmissionError). Idempotent per `client_key`."""

    def release(self, session, allocation_id: str, reason: str = "released") -> AdmissionOutcome:
        """Release an allocation (AdmissionError not-found for an unknown id)."""

    def schedule(self, session) -> list[str]:
        """Run one admission cycle over the queue; the ids admitted now."""

    def allocations(self, session, ids: Sequence[str]) -> dict[str, AllocationRecord]:
        """The allocations with these ids (unknown ids are absent)."""

    def held(self, session) -> list[AllocationRecord]:
        """Every admitted allocation, oldest first."""

    def describe(self, session, allocation_id: str, positions: Mapping[str, int] | None = None) -> dict | None:
        """The allocation as the API shows it (with its queue position and reason), or None."""

    def positions(self, session) -> dict[str, int]:
        """Queue position (1 = next) of every queued allocation."""

    def queued_jobs_limit(self, session, user: str, groups: Sequence[str]) -> int | None:
        """How many jobs the user may have waiting (None: no limit)."""

    def set_job_capacity(self, cpu: float, memory_gib: float) -> None:
        """What CPU-only jobs may use on this machine in all (embedded mode's local executor)."""

    def device_layout(self) -> list:
        """The placer's per-GPU snapshot (spawners.placement GPU snapshots: instances and holders)."""

    def replace_inventory(self, session, inventory, *, drained: Mapping[str, set[int]] | None = None,
                          node_objects: list[dict] | None = None, pods: list[dict] | None = None) -> InventoryRebuild:
        """Move the ledger onto a new inventory (cluster mode: the node watch saw a change),
        holding every admitted allocation, the GPUs being re-cut (`drained`: node -> GPU indices)
        and the slices of pods AstraGo did not admit; admit what now fits."""
