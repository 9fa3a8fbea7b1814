"""Unfinished uploads do not fill the disk forever: expired ones are removed.

An unfinished upload expires `UploadsConfig.expiry_hours` after data last arrived
(the data file's mtime, so every PATCH pushes it back); the record of a finished
one after `finished_record_hours`. Requests for an expired upload answer 410 Gone
(and remove it); the cleaner sweeps the rest every `cleanup_interval_seconds`.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time

from .store import FINISHED

log = logging.getLogger("astrago.uploads")

#: stray files (a crash between two steps) older than this are removed
STRAY_AGE_SECONDS = 3600
#: the cleaner waits this much past expiry, so it never races a request that just checked
GRACE_SECONDS = 60


def sweep(area, now: float | None = None) -> list[str]:
    """Remove expired uploads that no request holds (blocking); returns their ids."""
    now = now or time.time()
    removed = []
    for record in area.store.all():
        if area.locks.held(record.id):
            continue
        if area.store.is_expired(record, area.receiving_ttl, area.finished_ttl, now - GRACE_SECONDS):
            area.store.remove(record.id)
            removed.append(record.id)
            if record.state != FINISHED:
                area.metrics.expired.inc()
    for path in area.store.stray_files():
        try:
            if now - os.stat(path).st_mtime > STRAY_AGE_SECONDS:
                os.unlink(path)
        except FileNotFoundError:
            pass
    return removed


async def run_cleaner(area) -> None:
    while True:
        try:
            removed = await area.io(sweep, area)
            if removed:
                log.info("uploads cleaner removed %d expired upload(s)", len(removed))
        except Exception:  # noqa: BLE001 -- the cleaner must outlive one bad sweep
            log.exception("uploads cleaner failed")
        await asyncio.sleep(area.uploads_config.cleanup_interval_seconds)
