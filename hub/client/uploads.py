"""Resumable uploads from Python: the AstraGo service's tus 1.0.0 API through tuspy.

tuspy (`tusclient`) makes the tus requests: creation, the offset (HEAD) and each chunk's PATCH
with a `sha1` Upload-Checksum (a chunk cut off midway keeps nothing; it is sent again). Around
it, what the CLI (`astrago upload`) and the notebook helper (`astrago.upload`) need: the
caller's token, retries with backoff on dropped connections, 5xx, 409 and 423 (each retry asks
the server's offset first), progress after each chunk, a refusal as `AstraGoError` with the
service's words, and resumption in a later run: upload URLs are kept in
`~/.cache/astrago/uploads.json`, keyed by the file's path, size and mtime (no read of the file
to fingerprint it).

tuspy holds one chunk in memory while it sends it (64 MiB by default here) and sets no
timeout of its own: a link that dies silently ends with TCP's retransmission limit, then the
chunk is retried.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from pathlib import Path

from .session import AstraGoError, ServiceSession

MIB = 1024 * 1024
DEFAULT_CHUNK = 64 * MIB
CACHE_FILE = Path("~/.cache/astrago/uploads.json")
#: answers after which the chunk is tried again from the server's offset (423: another request
#: still holds the upload; 409: the offset moved; 460: the chunk arrived damaged)
RETRY_STATUSES = {409, 423, 460, 500, 502, 503, 504, 507}
#: answers to HEAD after which it is asked again
RETRY_OFFSET_STATUSES = {423, 500, 502, 503, 504, 507}


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


def refusal(exc, what: str) -> AstraGoError:
    """The AstraGoError a tuspy error stands for: the service's problem detail when it sent one."""
    status = getattr(exc, "status_code", None)
    detail, kind = None, None
    try:
        body = json.loads(getattr(exc, "response_content", None) or b"")
        if isinstance(body, dict):
            detail = body.get("detail")
            kind = (body.get("type") or "").rsplit("/", 1)[-1] or None
    except (TypeError, ValueError):
        pass
    if not detail:
        detail = (f"The AstraGo service answered {status} to {what}." if status is not None
                  else f"Cannot reach the AstraGo service ({what}): {exc}")
    return AstraGoError(detail, status=status, type=kind)


@functools.lru_cache(maxsize=None)
def _uploader_class(checksum: str):
    """tuspy's Uploader with `checksum` (a hashlib name) as its Upload-Checksum algorithm."""
    from tusclient.uploader import Uploader

    return type("AstraGoUploader", (Uploader,),
                {"CHECKSUM_ALGORITHM_PAIR": (checksum, functools.partial(hashlib.new, checksum))})


class UploadsClient:
    def __init__(self, client: ServiceSession):
        self.client = client

    def upload(self, path, dir: str = "", *, overwrite: bool = False, chunk_size: int = DEFAULT_CHUNK,
               progress=None, cache: ResumeCache | None = None, max_retries: int = 12,
               checksum: str | None = "sha1", sleep=time.sleep) -> dict:
        """Upload `path` into the caller's storage under `dir`; resumes an earlier attempt of the same file.

        `progress(sent, total)` is called as chunks arrive. Returns the service's record of the
        finished upload (`path` is where it landed, relative to `storage_root`).
        """
        from tusclient.client import TusClient
        from tusclient.exceptions import TusCommunicationError

        path = Path(path)
        if not path.is_file():
            raise AstraGoError(f"{path} is not a file.")
        cache = cache or ResumeCache()
        key = ResumeCache.key(path)
        size = path.stat().st_size
        dir = (dir or "").strip()
        progress = progress or (lambda sent, total: None)
        own = self.client.session.headers  # the caller's token and who is asking
        tus = TusClient(self.client.absolute("api/uploads/"),
                        headers={k: own[k] for k in ("Authorization", "User-Agent") if k in own})
        metadata = {"filename": path.name, "dir": dir or None, "overwrite": "true" if overwrite else None}

        with open(path, "rb") as fh:
            uploader = _uploader_class(checksum or "sha1")(
                file_stream=fh, client=tus, chunk_size=chunk_size, upload_checksum=checksum is not None,
                metadata={k: v for k, v in metadata.items() if v is not None})
            if not self._resume(uploader, cache, key, dir, overwrite, sleep):
                try:
                    uploader.set_url(uploader.create_url())
                except TusCommunicationError as exc:
                    raise refusal(exc, f"the creation of an upload of {path.name}") from None
                uploader.offset = 0
                cache.put(key, {"url": uploader.url, "dir": dir, "overwrite": overwrite, "service": self.client.url,
                                "created": time.time()})
            progress(uploader.offset, size)
            self._send(uploader, path.name, size, progress, max_retries, sleep)
        url = uploader.url
        record = self.client.get_json(url)
        if record.get("state") != "finished":
            # placement is retried by an empty PATCH once its cause (a taken name, the quota) is gone
            raise AstraGoError(record.get("error") or f"The upload of {path.name} is complete but not yet placed.")
        cache.put(key, None)
        return record

    def _resume(self, uploader, cache: ResumeCache, key: str, dir: str, overwrite: bool, sleep) -> bool:
        """Point `uploader` at this file's earlier upload, at the server's offset; False when there is none."""
        entry = cache.get(key)
        if not entry or entry.get("service") != self.client.url or entry.get("dir") != dir \
                or bool(entry.get("overwrite")) != overwrite:
            return False
        uploader.set_url(entry["url"])
        try:
            uploader.offset = self._offset(uploader, sleep)
        except AstraGoError as exc:
            if exc.status in (403, 404, 410):
                cache.put(key, None)  # expired, deleted or not ours: start again
                uploader.url = None
                return False
            raise
        return True

    def _send(self, uploader, name: str, size: int, progress, max_retries: int, sleep) -> None:
        """PATCH chunk after chunk until the server has every byte."""
        from tusclient.exceptions import TusCommunicationError

        failures = 0
        while uploader.offset < size:
            try:
                uploader.upload_chunk()
            except TusCommunicationError as exc:
                if exc.status_code is not None and exc.status_code not in RETRY_STATUSES:
                    raise refusal(exc, f"a chunk of {name}") from None
                failures += 1
                if failures > max_retries:
                    why = f"{exc.status_code} {refusal(exc, 'a chunk').detail}" if exc.status_code else str(exc)
                    raise AstraGoError(f"The upload of {name} keeps failing ({why}); run the same command again "
                                       "to resume it.") from None
                sleep(min(30.0, 0.5 * 2 ** (failures - 1)))
                uploader.offset = self._offset(uploader, sleep)
            else:
                failures = 0
            progress(uploader.offset, size)

    def _offset(self, uploader, sleep) -> int:
        """The server's offset (HEAD), asked again a few times while the service is unreachable or busy."""
        from tusclient.exceptions import TusCommunicationError

        for attempt in range(6):
            try:
                return uploader.get_offset()
            except TusCommunicationError as exc:
                if exc.status_code is not None and exc.status_code not in RETRY_OFFSET_STATUSES:
                    err = refusal(exc, "the offset of an upload")
                    if exc.status_code == 404:
                        err.detail = "The upload is gone on the server (it expired or was deleted)."
                    raise err from None
            sleep(min(10, 0.5 * 2 ** attempt))
        raise AstraGoError(f"Cannot reach the AstraGo service at {self.client.url} to resume the upload.",
                           status=503)


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

