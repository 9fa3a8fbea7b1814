"""The last step of an upload: its bytes become a file in the owner's storage (blocking: I/O threads).

A single upload's data file is placed under its name; a final upload (tus concatenation)
first gets its parts' bytes, in order, into its own data file.
"""
from __future__ import annotations

import os

from .names import is_true
from .storage import copy_fd
from .store import UploadRecord, UploadStore


def place(area, record: UploadRecord) -> str:
    """Check the quota again (what an overwrite replaces is freed) and place the file; returns
    where it landed, relative to the owner's storage root."""
    overwrite = is_true(record.metadata.get("overwrite"))
    with area.quota.room_lock(record.owner):
        freed = area.storage.existing_size(record.owner, record.dir, record.filename) if overwrite else 0
        area.quota.check_room(record.owner, record.length, freed=freed, count_pending=False)
        return area.storage.place(record.owner, record.id, str(area.store.data_path(record.id)),
                                  record.dir, record.filename, overwrite)


def concatenate(store: UploadStore, record: UploadRecord, parts: list[UploadRecord]) -> None:
    """The parts' bytes, in order, into the final upload's data file (made durable)."""
    out = os.open(store.data_path(record.id), os.O_WRONLY | os.O_NOFOLLOW)
    try:
        at = 0
        for part in parts:
            src = os.open(store.data_path(part.id), os.O_RDONLY | os.O_NOFOLLOW)
            try:
                at += copy_fd(src, out, at)
            finally:
                os.close(src)
        os.fsync(out)
    finally:
        os.close(out)


def unlink_quietly(path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
