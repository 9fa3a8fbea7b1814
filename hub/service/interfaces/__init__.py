"""The interfaces areas meet through (see astrago.hub.service.contract).

One module per interface family; each names its provider area and its consumers. An
interface is a `typing.Protocol` plus the plain value types that cross it: no ORM objects,
no area's private classes. Calls that take `session` run on the service's database thread
and join the caller's transaction, so a job and its allocation commit together (were an
area to become its own service, those calls would become HTTP calls carrying the
`client_key` idempotency key the admissions API already has).
"""
from .accounting import AccountingReader, AccountingSnapshot, HeldAllocation, UsageReader
from .admission import (CLUSTER_HOLDER, DRAIN_HOLDER, AdmissionError, AdmissionLedger, AdmissionOutcome,
                        AdmissionRequest, AllocationRecord, InventoryRebuild)
from .jobs import JobsReader, JobsSnapshot
from .metrics import MetricsSource
from .storage import StorageLimits
from .teams import DatasetCatalog, DatasetUsage, TeamStorageLimits

__all__ = [
    "AccountingReader", "AccountingSnapshot", "HeldAllocation", "UsageReader",
    "AdmissionError", "AdmissionLedger", "AdmissionOutcome", "AdmissionRequest", "AllocationRecord",
    "CLUSTER_HOLDER", "DRAIN_HOLDER", "InventoryRebuild", "JobsReader", "JobsSnapshot", "MetricsSource",
    "StorageLimits", "DatasetCatalog", "DatasetUsage", "TeamStorageLimits",
]
