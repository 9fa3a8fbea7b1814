"""Prometheus metrics of the uploads area, in a registry of its own.

The monitoring area exposes `REGISTRY` (no /metrics route here).
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry(auto_describe=True)

BYTES_RECEIVED = Counter("astrago_upload_bytes_received", "Upload bytes written to disk", registry=REGISTRY)
STARTED = Counter("astrago_uploads_started", "Uploads created (concatenated finals included)", registry=REGISTRY)
FINISHED = Counter("astrago_uploads_finished", "Uploads placed in their owner's storage", registry=REGISTRY)
FAILED = Counter("astrago_uploads_failed", "Uploads whose bytes arrived but could not be placed "
                 "(quota, name taken, I/O error)", registry=REGISTRY)
EXPIRED = Counter("astrago_uploads_expired", "Unfinished uploads removed after expiring", registry=REGISTRY)
TERMINATED = Counter("astrago_uploads_terminated", "Uploads deleted by their owner or an admin", registry=REGISTRY)
CHECKSUM_MISMATCHES = Counter("astrago_upload_checksum_mismatches", "PATCH bodies refused for a checksum mismatch",
                              registry=REGISTRY)
ACTIVE_WRITES = Gauge("astrago_upload_active_writes", "Request bodies being written right now", registry=REGISTRY)
