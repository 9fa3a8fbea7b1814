"""Prometheus metrics of the uploads area, in a registry of its own.

The area provides the registry as a `MetricsSource`; the monitor area registers it in
the service's one registry (there is no /metrics route here).
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class UploadMetrics:
    """One set per area instance (two services in one process, as in tests, count apart)."""

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.bytes_received = Counter("astrago_upload_bytes_received", "Upload bytes written to disk", registry=r)
        self.started = Counter("astrago_uploads_started", "Uploads created (concatenated finals included)",
                               registry=r)
        self.finished = Counter("astrago_uploads_finished", "Uploads placed in their owner's storage", registry=r)
        self.failed = Counter("astrago_uploads_failed", "Uploads whose bytes arrived but could not be placed "
                              "(quota, name taken, I/O error)", registry=r)
        self.expired = Counter("astrago_uploads_expired", "Unfinished uploads removed after expiring", registry=r)
        self.terminated = Counter("astrago_uploads_terminated", "Uploads deleted by their owner or an admin",
                                  registry=r)
        self.checksum_mismatches = Counter("astrago_upload_checksum_mismatches",
                                           "PATCH bodies refused for a checksum mismatch", registry=r)
        self.active_writes = Gauge("astrago_upload_active_writes", "Request bodies being written right now",
                                   registry=r)
