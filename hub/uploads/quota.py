"""How much a user may store, and how much they use: the one place the quota area replaces.

`storage_quota_bytes(user)` is the limit (today one default for everyone, from
`UploadsConfig.default_storage_quota_gib`); `used_bytes` counts the user's storage
directory plus what their unfinished uploads have declared (or received, when the
length is deferred). The quota area plugs its lookup in (`storage_limit_lookup`): a `storage_gib` quota wins
over the uploads default.
"""
from __future__ import annotations

import threading

from ..service.problems import Problem
from .config import GIB
from .store import RECEIVING, UploadRecord


#: set by the quota area (astrago.hub.quota.storage_limit): user -> the `storage_gib` of their
#: effective quota in bytes, or None when no quota sets it
storage_limit_lookup = None


def storage_quota_bytes(user: str, config) -> int:
    """The user's storage limit in bytes: their quota's `storage_gib`, else the uploads default."""
    if storage_limit_lookup is not None:
        try:
            found = storage_limit_lookup(user)
        except Exception:  # the quota lookup failing must not stop uploads: fall back, say so
            import logging

            logging.getLogger("astrago.uploads").exception("storage quota lookup failed for %s", user)
            found = None
        if found is not None:
            return found
    return int(config.default_storage_quota_gib * GIB)


def reservation(record: UploadRecord, store) -> int:
    """Bytes an unfinished upload holds against the quota: its length, or what arrived when deferred."""
    if record.length is not None:
        return record.length
    return store.offset(record)


def pending_bytes(user: str, store, exclude=()) -> int:
    return sum(reservation(r, store) for r in store.all()
               if r.owner == user and r.state == RECEIVING and r.id not in exclude)


def usage(user: str, *, config, store, storage, exclude=()) -> dict:
    """Quota, bytes in storage, bytes held by unfinished uploads, and what is left (blocking)."""
    quota = storage_quota_bytes(user, config)
    stored = storage.usage_bytes(user)
    pending = pending_bytes(user, store, exclude)
    return {"quota_bytes": quota, "stored_bytes": stored, "pending_bytes": pending,
            "free_bytes": max(0, quota - stored - pending)}


def check_room(user: str, needed: int, *, config, store, storage, exclude=(), freed: int = 0,
               count_pending: bool = True) -> None:
    """Refuse (413, as tus wants) when `needed` more bytes would take the user past their quota."""
    quota = storage_quota_bytes(user, config)
    stored = storage.usage_bytes(user)
    pending = pending_bytes(user, store, exclude) if count_pending else 0
    if stored - freed + pending + needed > quota:
        left = max(0, quota - stored - pending)
        raise Problem("quota-exceeded", f"This upload needs {_fmt(needed)} but only {_fmt(left)} of your "
                      f"{_fmt(quota)} storage quota is left (files: {_fmt(stored)}, unfinished uploads: "
                      f"{_fmt(pending)}). Delete files or unfinished uploads, or ask for a larger quota.",
                      status=413, extra={"quota_bytes": quota, "free_bytes": left})


def _fmt(n: int) -> str:
    for unit, size in (("GiB", GIB), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


#: one lock per user: checking the room and recording the upload that takes it happen together,
#: so simultaneous creations cannot each see the same free space (the I/O threads run in parallel)
_ROOM_LOCKS: dict[str, threading.Lock] = {}
_ROOM_LOCKS_GUARD = threading.Lock()


def room_lock(user: str) -> threading.Lock:
    with _ROOM_LOCKS_GUARD:
        return _ROOM_LOCKS.setdefault(user, threading.Lock())


def reserve(user: str, needed: int, record, *, config, store, storage, exclude=()) -> None:
    """Check the room and create the upload's record (which holds `needed` against the quota
    from then on, until it finishes, is terminated or expires), as one step (blocking)."""
    with room_lock(user):
        check_room(user, needed, config=config, store=store, storage=storage, exclude=exclude)
        store.create(record)


def reserve_length(user: str, record, new_length: int, *, config, store, storage) -> None:
    """A deferred length becomes known: check it and record it, as one step (blocking)."""
    with room_lock(user):
        check_room(user, new_length, config=config, store=store, storage=storage, exclude={record.id})
        record.length = new_length
        store.save(record)
