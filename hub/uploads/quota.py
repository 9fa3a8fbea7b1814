"""How much a user may store, and how much they use.

The limit is the user's `storage_gib` quota when the quota area provides `StorageLimits`
(an interface, handed over at setup), else `UploadsConfig.default_storage_quota_gib`. What a
user uses is their storage directory plus what their unfinished uploads have declared (or
received, when the length is deferred). Everything here blocks: the I/O threads call it.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

from ..service.interfaces import StorageLimits
from ..service.problems import Problem
from .config import GIB
from .store import RECEIVING, UploadRecord

log = logging.getLogger("astrago.uploads")


def reservation(record: UploadRecord, store) -> int:
    """Bytes an unfinished upload holds against the quota: its length, or what arrived when deferred."""
    if record.length is not None:
        return record.length
    return store.offset(record)


def pending_bytes(user: str, store, exclude=()) -> int:
    return sum(reservation(r, store) for r in store.all()
               if r.owner == user and r.state == RECEIVING and r.id not in exclude)


class StorageQuota:
    def __init__(self, config, store, storage, limits: Callable[[], StorageLimits | None] = lambda: None):
        self.config = config
        self.store = store
        self.storage = storage
        #: the provider of StorageLimits, looked up when used (it may be set up after this area)
        self.limits = limits
        # one lock per user: checking the room and recording the upload that takes it happen together,
        # so simultaneous creations cannot each see the same free space (the I/O threads run in parallel)
        self._room_locks: dict[str, threading.Lock] = {}
        self._room_locks_guard = threading.Lock()

    def limit_bytes(self, user: str) -> int:
        """The user's storage limit in bytes: their quota's `storage_gib`, else the uploads default."""
        provider = self.limits()
        if provider is not None:
            try:
                found = provider.storage_limit_bytes(user)
            except Exception:  # the quota lookup failing must not stop uploads: fall back, say so
                log.exception("storage quota lookup failed for %s", user)
                found = None
            if found is not None:
                return found
        return int(self.config.default_storage_quota_gib * GIB)

    def usage(self, user: str, exclude=()) -> dict:
        """Quota, bytes in storage, bytes held by unfinished uploads, and what is left."""
        quota = self.limit_bytes(user)
        stored = self.storage.usage_bytes(user)
        pending = pending_bytes(user, self.store, exclude)
        return {"quota_bytes": quota, "stored_bytes": stored, "pending_bytes": pending,
                "free_bytes": max(0, quota - stored - pending)}

    def check_room(self, user: str, needed: int, *, exclude=(), freed: int = 0, count_pending: bool = True) -> None:
        """Refuse (413, as tus wants) when `needed` more bytes would take the user past their quota."""
        quota = self.limit_bytes(user)
        stored = self.storage.usage_bytes(user)
        pending = pending_bytes(user, self.store, exclude) if count_pending else 0
        if stored - freed + pending + needed > quota:
            left = max(0, quota - stored - pending)
            raise Problem("quota-exceeded", f"This upload needs {_fmt(needed)} but only {_fmt(left)} of your "
                          f"{_fmt(quota)} storage quota is left (files: {_fmt(stored)}, unfinished uploads: "
                          f"{_fmt(pending)}). Delete files or unfinished uploads, or ask for a larger quota.",
                          status=413, extra={"quota_bytes": quota, "free_bytes": left})

    def room_lock(self, user: str) -> threading.Lock:
        with self._room_locks_guard:
            return self._room_locks.setdefault(user, threading.Lock())

    def reserve(self, user: str, needed: int, record, *, exclude=()) -> None:
        """Check the room and create the upload's record (which holds `needed` against the quota
        from then on, until it finishes, is terminated or expires), as one step."""
        with self.room_lock(user):
            self.check_room(user, needed, exclude=exclude)
            self.store.create(record)

    def reserve_length(self, user: str, record, new_length: int) -> None:
        """A deferred length becomes known: check it and record it, as one step."""
        with self.room_lock(user):
            self.check_room(user, new_length, exclude={record.id})
            record.length = new_length
            self.store.save(record)


def _fmt(n: int) -> str:
    for unit, size in (("GiB", GIB), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"
