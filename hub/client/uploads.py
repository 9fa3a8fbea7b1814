"""Resumable uploads from Python: a small tus 1.0.0 client for the AstraGo service.

Why not tuspy: it reads each chunk whole into memory (by default the whole file),
reports no progress within a chunk and keys resumption on a content fingerprint it
must read the file for. This client streams each PATCH body from the file in small
blocks (memory stays flat whatever the chunk size), reports progress as bytes go out,
retries with backoff on dropped connections, 5xx and 423, re-asks the offset (HEAD)
after any failure, and remembers upload URLs in `~/.cache/astrago/uploads.json` keyed
by the file's path, size and mtime, so a new run resumes where the last one stopped.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path

import requests

from .session import AstraGoError, ServiceSession, problem_of

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = "application/offset+octet-stream"
MIB = 1024 * 1024
DEFAULT_CHUNK = 64 * MIB
CACHE_FILE = Path("~/.cache/astrago/uploads.json")
RETRY_STATUSES = {423, 500, 502, 503, 504, 507}


class ResumeCache:
    """Upload URLs of unfinished uploads, keyed by absolute path, size and mtime of the file."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path or CACHE_FILE).expanduser()

    @staticmethod
    def key(path: Path) -> str:
        st = path.stat()
        return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (FileNotFoundError, ValueError):
            return {}

    def get(self, key: str) -> dict | None:
        return self._read().get(key)

    def put(self, key: str, value: dict | None) -> None:
        data = self._read()
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)


class _BodyReader:
    """`length` bytes of a file from `start`, read in small blocks as requests sends them."""

    block = 1 * MIB

    def __init__(self, fh, start: int, length: int, on_read):
        self.fh = fh
        self.left = length
        self.on_read = on_read
        fh.seek(start)

    def __len__(self):
        return self.left

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        n = self.block if n is None or n < 0 else max(n, self.block)
        data = self.fh.read(min(n, self.left))
        self.left -= len(data)
        if data:
            self.on_read(len(data))
        return data


def _metadata(meta: dict) -> str:
    return ",".join(f"{k} {base64.b64encode(str(v).encode()).decode()}" for k, v in meta.items() if v is not None)


class UploadsClient:
    def __init__(self, client: ServiceSession):
        self.client = client

    def upload(self, path, dir: str = "", *, overwrite: bool = False, chunk_size: int = DEFAULT_CHUNK,
               progress=None, cache: ResumeCache | None = None, max_retries: int = 12,
               checksum: str | None = "sha1", sleep=time.sleep) -> dict:
        """Upload `path` into the caller's storage under `dir`; resumes an earlier attempt of the same file.

        `progress(sent, total)` is called as bytes go out. Returns the service's record of the
        finished upload (`path` is where it landed, relative to `storage_root`).
        """
        path = Path(path)
        if not path.is_file():
            raise AstraGoError(f"{path} is not a file.")
        cache = cache or ResumeCache()
        key = ResumeCache.key(path)
        size = path.stat().st_size
        dir = (dir or "").strip()
        progress = progress or (lambda sent, total: None)

        url, offset = self._resume(cache, key, dir, overwrite)
        if url is None:
            url = self._create(path.name, size, dir, overwrite)
            cache.put(key, {"url": url, "dir": dir, "overwrite": overwrite, "service": self.client.url,
                            "created": time.time()})
            offset = 0
        progress(offset, size)

        failures = 0
        with open(path, "rb") as fh:
            while offset < size:
                length = min(chunk_size, size - offset)
                try:
                    offset = self._patch(url, fh, offset, length, size, progress, checksum)
                    failures = 0
                    continue
                except _Retry as why:
                    failures += 1
                    if failures > max_retries:
                        raise AstraGoError(f"The upload of {path.name} keeps failing ({why}); run the same "
                                           "command again to resume it.") from None
                    sleep(min(30.0, 0.5 * 2 ** (failures - 1)))
                offset = self._offset(url)
                progress(offset, size)
        if size == 0 or offset == size:
            record = self.client.get_json(url)
            if record.get("state") != "finished":
                # placement is retried by an empty PATCH once its cause (a taken name, the quota) is gone
                raise AstraGoError(record.get("error") or f"The upload of {path.name} is complete but not yet placed.")
            cache.put(key, None)
            return record
        raise AstraGoError(f"The upload of {path.name} stopped at {offset} of {size} bytes.")

    # -- tus requests ---------------------------------------------------------

    def _resume(self, cache: ResumeCache, key: str, dir: str, overwrite: bool) -> tuple[str | None, int]:
        entry = cache.get(key)
        if not entry or entry.get("service") != self.client.url or entry.get("dir") != dir \
                or bool(entry.get("overwrite")) != overwrite:
            return None, 0
        try:
            return entry["url"], self._offset(entry["url"])
        except AstraGoError as exc:
            if exc.status in (403, 404, 410):
                cache.put(key, None)  # expired, deleted or not ours: start again
                return None, 0
            raise

    def _create(self, filename: str, size: int, dir: str, overwrite: bool) -> str:
        meta = {"filename": filename, "dir": dir or None, "overwrite": "true" if overwrite else None}
        r = self.client.request("POST", "api/uploads/", ok=(201,), headers={
            **TUS, "Upload-Length": str(size), "Upload-Metadata": _metadata(meta)})
        return self.client.absolute(r.headers["Location"])

    def _offset(self, url: str) -> int:
        for attempt in range(6):
            try:
                r = self.client.session.head(url, headers=TUS, timeout=self.client.timeout)
            except requests.RequestException:
                time.sleep(min(10, 0.5 * 2 ** attempt))
                continue
            if r.status_code == 200:
                return int(r.headers["Upload-Offset"])
            if r.status_code in RETRY_STATUSES:
                time.sleep(min(10, 0.5 * 2 ** attempt))
                continue
            err = problem_of(r)
            if r.status_code == 404:
                err.detail = "The upload is gone on the server (it expired or was deleted)."
            raise err
        raise AstraGoError(f"Cannot reach the AstraGo service at {self.client.url} to resume the upload.",
                           status=503)

    def _patch(self, url, fh, offset, length, size, progress, checksum) -> int:
        headers = {**TUS, "Content-Type": OCTET, "Upload-Offset": str(offset), "Content-Length": str(length)}
        if checksum:
            headers["Upload-Checksum"] = f"{checksum} {_digest(fh, offset, length, checksum)}"
        sent = [offset]

        def on_read(n):
            sent[0] += n
            progress(min(sent[0], size), size)

        body = _BodyReader(fh, offset, length, on_read)
        try:
            r = self.client.session.patch(url, data=body, headers=headers, timeout=(30, 600))
        except requests.RequestException as exc:
            raise _Retry(f"connection: {exc.__class__.__name__}") from None
        if r.status_code == 204:
            return int(r.headers["Upload-Offset"])
        if r.status_code in RETRY_STATUSES or r.status_code in (409, 460):
            raise _Retry(f"{r.status_code} {problem_of(r).detail}")
        raise problem_of(r)


class _Retry(Exception):
    pass


def _digest(fh, offset: int, length: int, algo: str) -> str:
    h = hashlib.new(algo)
    fh.seek(offset)
    left = length
    while left:
        block = fh.read(min(4 * MIB, left))
        if not block:
            break
        h.update(block)
        left -= len(block)
    return base64.b64encode(h.digest()).decode()


class ProgressBar:
    """`[#######.....]  58%  1.2 GiB / 2.0 GiB  85.3 MB/s` on one line of a terminal (or a notebook)."""

    def __init__(self, label: str, stream, width: int = 30, min_interval: float = 0.2):
        self.label = label
        self.stream = stream
        self.width = width
        self.min_interval = min_interval
        self.started = time.monotonic()
        self.first = None
        self._last = 0.0

    def __call__(self, sent: int, total: int) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = (now, sent)
        if sent < total and now - self._last < self.min_interval:
            return
        self._last = now
        frac = sent / total if total else 1.0
        done = int(self.width * frac)
        elapsed = now - self.first[0]
        rate = (sent - self.first[1]) / elapsed if elapsed > 0 else 0.0
        line = (f"\r{self.label} [{'#' * done}{'.' * (self.width - done)}] {frac * 100:5.1f}%  "
                f"{_human(sent)} / {_human(total)}  {rate / 1e6:6.1f} MB/s")
        self.stream.write(line)
        if sent >= total:
            self.stream.write("\n")
        self.stream.flush()


def _human(n: float) -> str:
    for unit, size in (("GiB", 1024 ** 3), ("MiB", MIB), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"

