"""Unfinished uploads on disk: `<id>.part` (the bytes) beside `<id>.info` (JSON), as tusd keeps them.

The offset of an upload is the size of its data file: no separate counter exists, so
a crash can never leave an offset that disagrees with the data. Every function here
blocks (file I/O): the handlers call them through the uploads I/O executor.
"""
from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

RECEIVING = "receiving"  # bytes still to come (or a partial upload waiting to be concatenated)
FINISHED = "finished"    # all bytes received and, unless partial, placed in the owner's storage
UNPLACED = "unplaced"    # all bytes received, placing them failed (error says why); a retry may succeed


@dataclass
class UploadRecord:
    id: str
    owner: str
    length: int | None            # None while the length is deferred
    metadata: dict = field(default_factory=dict)
    created: float = 0.0
    concat: str | None = None     # None | "partial" | "final"
    parts: list = field(default_factory=list)  # ids of a final upload's partial uploads
    state: str = RECEIVING
    path: str = ""                # where it landed, relative to the owner's storage root
    error: str = ""
    finished_at: float | None = None

    @property
    def filename(self) -> str | None:
        return self.metadata.get("filename") or self.metadata.get("name")

    @property
    def dir(self) -> str | None:
        return self.metadata.get("dir")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "UploadRecord":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def new_upload_id() -> str:
    return secrets.token_hex(16)


class UploadStore:
    """One directory (mode 0700) holding every unfinished upload of the service."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)

    def data_path(self, upload_id: str) -> Path:
        return self.root / f"{upload_id}.part"

    def info_path(self, upload_id: str) -> Path:
        return self.root / f"{upload_id}.info"

    # -- records --------------------------------------------------------

    def create(self, record: UploadRecord) -> None:
        fd = os.open(self.data_path(record.id), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.close(fd)
        self.save(record)

    def save(self, record: UploadRecord) -> None:
        """Write the record atomically (temp file, fsync, rename, fsync the directory)."""
        final = self.info_path(record.id)
        tmp = final.with_suffix(f".info.tmp{os.getpid()}")
        data = json.dumps(record.to_json(), sort_keys=True).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        self._fsync_dir()

    def load(self, upload_id: str) -> UploadRecord | None:
        try:
            with open(self.info_path(upload_id), "rb") as fh:
                return UploadRecord.from_json(json.loads(fh.read()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            return None  # a torn or foreign file: treated as absent, the cleaner removes it

    def all(self) -> list[UploadRecord]:
        out = []
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return out
        for name in names:
            if name.endswith(".info"):
                rec = self.load(name[: -len(".info")])
                if rec is not None:
                    out.append(rec)
        return out

    def remove(self, upload_id: str) -> None:
        for path in (self.data_path(upload_id), self.info_path(upload_id)):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self._fsync_dir()

    # -- derived facts ----------------------------------------------------

    def offset(self, record: UploadRecord) -> int:
        """Bytes received: the data file's size (its length once finished and moved away)."""
        if record.state != RECEIVING and record.length is not None:
            return record.length
        try:
            return os.stat(self.data_path(record.id)).st_size
        except FileNotFoundError:
            return 0

    def last_activity(self, record: UploadRecord) -> float:
        """When data last arrived (the data file's mtime), or when the record last changed (its mtime)."""
        times = [0.0]
        for path in (self.data_path(record.id), self.info_path(record.id)):
            try:
                times.append(os.stat(path).st_mtime)
            except FileNotFoundError:
                pass
        return max(times) if len(times) > 1 else record.created

    def expires_at(self, record: UploadRecord, receiving_ttl: float, finished_ttl: float) -> float:
        ttl = receiving_ttl if record.state != FINISHED else finished_ttl
        return self.last_activity(record) + ttl

    def is_expired(self, record: UploadRecord, receiving_ttl: float, finished_ttl: float,
                   now: float | None = None) -> bool:
        return (now or time.time()) >= self.expires_at(record, receiving_ttl, finished_ttl)

    def stray_files(self) -> list[Path]:
        """Data or temp files without a readable record (left by a crash between two steps)."""
        out = []
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return out
        for name in names:
            path = self.root / name
            if name.endswith(".part") and not self.info_path(name[: -len(".part")]).exists():
                out.append(path)
            elif ".info.tmp" in name:
                out.append(path)
            elif name.endswith(".info") and self.load(name[: -len(".info")]) is None:
                out.append(path)
        return out

    def _fsync_dir(self) -> None:
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
