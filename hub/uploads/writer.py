"""One request body streamed onto the end of an upload's data file.

Bytes are gathered into a buffer of `buffer_size` and written by the uploads I/O
executor while the next buffer fills: at most two buffers per request are in memory
and the event loop never waits on the disk. tornado awaits what `feed` returns, so
a slow disk slows the client down instead of filling memory.

With an `Upload-Checksum` the chunk is all or nothing: on a mismatch, a dropped
connection or a full disk the file is cut back to where the request started. Without
one, every byte received stays (tus lets a client resume from what arrived).
"""
from __future__ import annotations

import asyncio
import errno
import os

from ..service.problems import Problem
from .tus import new_hasher


class BodyWriter:
    def __init__(self, path, start: int, limit: int | None, executor, *, buffer_size: int,
                 checksum: tuple[str, bytes] | None = None, on_bytes=None):
        self.path = path
        self.start = start
        self.pos = start               # where the next write lands
        self.limit = limit             # most bytes this body may carry (None: no limit)
        self.received = 0
        self.executor = executor
        self.buffer_size = buffer_size
        self.checksum = checksum
        self.hasher = new_hasher(checksum[0]) if checksum else None
        self.on_bytes = on_bytes       # metrics: called with each written byte count
        self.error: Problem | None = None  # set on the first failure; the rest of the body is discarded
        self._buf = bytearray()
        self._pending: asyncio.Future | None = None
        self._io = asyncio.Lock()
        self._fd: int | None = None
        self._closed = False

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._fd = await loop.run_in_executor(
            self.executor, lambda: os.open(self.path, os.O_WRONLY | os.O_NOFOLLOW))

    # -- the body, piece by piece ---------------------------------------------

    def feed(self, chunk: bytes):
        """Take a piece of the body; returns an awaitable when the writer wants the reader to wait."""
        if self.error is not None or self._closed:
            return None
        if self.limit is not None and self.received + len(chunk) > self.limit:
            self.error = Problem("payload-too-large", f"The request body is longer than the {self.limit} bytes "
                                 "left in this upload (Upload-Length).")
            return None
        self.received += len(chunk)
        self._buf += chunk
        if len(self._buf) >= self.buffer_size:
            return self._submit()
        return None

    async def _submit(self) -> None:
        async with self._io:
            await self._wait_pending()
            if self.error is not None or not self._buf:
                return
            data, self._buf = self._buf, bytearray()
            self._pending = asyncio.get_running_loop().run_in_executor(self.executor, self._write, data, self.pos)
            self.pos += len(data)

    async def _wait_pending(self) -> None:
        if self._pending is None:
            return
        pending, self._pending = self._pending, None
        try:
            await pending
        except OSError as exc:
            self.error = _problem_for_os_error(exc)
            self.pos = await asyncio.get_running_loop().run_in_executor(self.executor, self._size)

    def _write(self, data: bytearray, pos: int) -> None:  # executor
        if self.hasher is not None:
            self.hasher.update(data)
        view = memoryview(data)
        while view:
            n = os.pwrite(self._fd, view, pos)
            pos += n
            view = view[n:]
        if self.on_bytes:
            self.on_bytes(len(data))

    def _size(self) -> int:  # executor
        return os.fstat(self._fd).st_size

    # -- the end of the body ---------------------------------------------

    async def close(self) -> int:
        """The whole body arrived: write the rest, make it durable, check the checksum.

        Returns the new offset; raises the Problem that the body ran into.
        """
        async with self._io:
            await self._wait_pending()
            keep_buffer = self.error is None or (self.error.type == "payload-too-large" and self.hasher is None)
            if keep_buffer and self._buf:
                data, self._buf = self._buf, bytearray()
                self._pending = asyncio.get_running_loop().run_in_executor(self.executor, self._write, data, self.pos)
                self.pos += len(data)
                await self._wait_pending()
            loop = asyncio.get_running_loop()
            if self.error is None and self.hasher is not None and self.hasher.digest() != self.checksum[1]:
                self.error = Problem("checksum-mismatch", f"The {self.checksum[0]} checksum of the body does not "
                                     "match Upload-Checksum; nothing of it was kept.", title="Checksum Mismatch")
            cut = self.error is not None and self.hasher is not None
            offset = await loop.run_in_executor(self.executor, self._finish_file, cut)
            if self.error is not None:
                raise self.error
            return offset

    async def abort(self) -> int:
        """The connection went away mid-body: keep what arrived (or nothing, with a checksum)."""
        async with self._io:
            if self._closed:
                return self.pos
            await self._wait_pending()
            loop = asyncio.get_running_loop()
            if self.error is None and self.hasher is None and self._buf:
                data, self._buf = self._buf, bytearray()
                self._pending = loop.run_in_executor(self.executor, self._write, data, self.pos)
                self.pos += len(data)
                await self._wait_pending()
            return await loop.run_in_executor(self.executor, self._finish_file, self.hasher is not None)

    def _finish_file(self, cut_back: bool) -> int:  # executor
        if self._closed:
            return self.pos
        self._closed = True
        fd, self._fd = self._fd, None
        try:
            if cut_back:
                os.ftruncate(fd, self.start)
            os.fsync(fd)
            self.pos = os.fstat(fd).st_size
            return self.pos
        finally:
            os.close(fd)


def _problem_for_os_error(exc: OSError) -> Problem:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return Problem("insufficient-storage", "The server's disk is full; what arrived so far is kept. "
                       "Resume the upload later.")
    return Problem("internal-error", f"Writing the upload failed ({exc.strerror}); what arrived so far is kept.")
