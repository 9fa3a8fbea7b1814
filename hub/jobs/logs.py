"""A job's log: reading it from any offset, and following it live as server-sent events."""
from __future__ import annotations

import asyncio
import json
import os
import time

CHUNK = 64 * 1024


def replica_log_path(path: str, replica: int) -> str:
    """Where replica `replica` of an attempt keeps its log, beside the attempt's own log (pure):
    replica 0 is the attempt's log itself (rank 0: the master, the launcher, the first process);
    .../attempt-2.log -> .../attempt-2.replica-1.log."""
    if not replica or not path:
        return path
    base, dot, ext = path.rpartition(".")
    return f"{base}.replica-{replica}.{ext}" if dot else f"{path}.replica-{replica}"


def split_utf8(data: bytes) -> tuple[str, int]:
    """Decode the longest prefix of `data` that ends on a character boundary (pure).
    Returns (text, bytes used): a character cut by the end of a chunk waits for the next read;
    bytes that are not UTF-8 at all come out as U+FFFD."""
    try:
        return data.decode("utf-8"), len(data)
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data" and exc.start >= len(data) - 3:
            return data[:exc.start].decode("utf-8"), exc.start
        return data.decode("utf-8", errors="replace"), len(data)


def read_from(path: str, offset: int, limit: int = CHUNK) -> tuple[bytes, int]:
    """(bytes from `offset`, the file's size now). Missing file: nothing yet."""
    if not path:
        return b"", 0
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return b"", 0
    try:
        size = os.fstat(fd).st_size
        if offset >= size:
            return b"", size
        os.lseek(fd, offset, os.SEEK_SET)
        return os.read(fd, min(limit, size - offset)), size
    finally:
        os.close(fd)


def sse(event: str, data: dict, event_id: str | None = None) -> str:
    """One server-sent event (pure). Data is one line of JSON, so it never needs splitting."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def parse_event_id(value: str | None) -> tuple[int | None, int]:
    """'<attempt>:<offset>' (what `id:` carries) -> (attempt, offset); a bare number is an offset."""
    if not value:
        return None, 0
    attempt, sep, offset = value.partition(":")
    try:
        if sep:
            return int(attempt), max(0, int(offset))
        return None, max(0, int(attempt))
    except ValueError:
        return None, 0


async def follow(handler, scheduler, load_state, job_id: str, offset: int, attempt_wanted: int | None,
                 keepalive_s: float = 15.0) -> None:
    """Stream log and status events until the job has ended and its log is sent, or the
    client goes away. `load_state()` -> (job dict, attempt, log path) from the database."""
    version = -1
    job, attempt, path = None, None, ""
    sent_status = None
    last_write = time.monotonic()
    if attempt_wanted is not None:
        attempt = attempt_wanted
    while not handler.closed:
        if scheduler.version != version or job is None:
            version = scheduler.version
            job, current_attempt, path_now = await load_state()
            if attempt is None:
                attempt = current_attempt
            if current_attempt != attempt:  # a retry started: follow the new attempt's log from its start
                if current_attempt > attempt:
                    attempt, offset = current_attempt, 0
            path = path_now if current_attempt == attempt else path
            key = (job["status"], job["reason"], job["attempt"])
            if key != sent_status:
                sent_status = key
                handler.write(sse("status", job))
                await handler.flush()
                last_write = time.monotonic()
        data, size = await asyncio.to_thread(read_from, path, offset)
        if data:
            text, used = split_utf8(data)
            if used:
                handler.write(sse("log", {"attempt": attempt, "offset": offset, "text": text},
                                  f"{attempt}:{offset + used}"))
                offset += used
                await handler.flush()
                last_write = time.monotonic()
                if offset < size:
                    continue
        if job["status"] in ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT") and offset >= size:
            # one more look: the last lines may have landed after the status changed
            data, size = await asyncio.to_thread(read_from, path, offset)
            if data:
                continue
            handler.write(sse("end", {"status": job["status"], "exit_code": job.get("exit_code"),
                                      "reason": job["reason"], "outputs": job.get("outputs", [])}))
            await handler.flush()
            return
        if time.monotonic() - last_write > keepalive_s:
            handler.write(": keepalive\n\n")
            await handler.flush()
            last_write = time.monotonic()
        await scheduler.wait_changed(0.25)
