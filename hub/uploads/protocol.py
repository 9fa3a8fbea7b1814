"""The tus 1.0.0 request life shared by the collection and the upload resource.

Every answer carries `Tus-Resumable`; a tus request (POST, HEAD, PATCH, DELETE) without
`Tus-Resumable: 1.0.0` gets 412 with `Tus-Version`; errors use the statuses tus fixes, with
`application/problem+json` bodies (none on HEAD). Bodies stream onto disk as they arrive
(`BodyWriter`); a request that writes holds the upload's lock (`UploadLocks`) and keeps
what arrived when its client goes away. A refusal decided before a small body is read is
answered after reading it, so a proxy passes the tus answer on.
"""
from __future__ import annotations

import asyncio
import copy
import json
import logging
import time

from tornado import iostream

from .. import scopes
from ..service.base import APIHandler
from ..service.problems import PROBLEM_CONTENT_TYPE, Problem
from . import finishing, tus
from .config import GIB
from .store import FINISHED, UNPLACED, UploadRecord
from .writer import BodyWriter

TUS_METHODS = ("POST", "HEAD", "PATCH", "DELETE")


class TusHandler(APIHandler):
    """tus protocol plumbing; `self.area` is the UploadsArea."""

    log = logging.getLogger("astrago.uploads")

    def initialize(self, area=None):
        super().initialize(area)
        self._writer: BodyWriter | None = None
        self._hold = None
        self._hold_id: str | None = None
        self._deferred: Problem | None = None
        self._gone = False
        self._cleaned = False
        self._problem_headers: dict[str, str] = {}
        self._watchdog: asyncio.Task | None = None

    @property
    def config(self):
        return self.area.uploads_config

    def upload_url(self, upload_id: str) -> str:
        return self.area.base_path + upload_id

    def set_default_headers(self):
        self.set_header("Tus-Resumable", tus.TUS_VERSION)
        self.set_header("Cache-Control", "no-store")

    def advertise(self) -> None:
        """What this server implements (OPTIONS)."""
        self.set_header("Tus-Version", tus.TUS_VERSION)
        self.set_header("Tus-Extension", ",".join(tus.EXTENSIONS))
        self.set_header("Tus-Checksum-Algorithm", ",".join(tus.CHECKSUM_ALGORITHMS))

    # -- errors the tus way ------------------------------------------------

    def _write_problem(self, problem: Problem):
        self.clear()
        self.set_status(problem.status, reason=problem.title)
        if problem.status == 405:
            self.set_header("Allow", self.allowed_methods())
        if problem.type == "precondition-failed":
            self.set_header("Tus-Version", tus.TUS_VERSION)
        for key, value in self._problem_headers.items():
            self.set_header(key, value)
        if self.request.method == "HEAD":
            self.finish()  # HEAD answers carry no body
            return
        self.set_header("Content-Type", PROBLEM_CONTENT_TYPE)
        self.finish(json.dumps(problem.to_dict(instance=self.request.path)))

    async def require_any(self, scope=None, *, action=None):
        # a request refused while its headers were checked (prepare) answers that refusal,
        # once its body is read: `@needs_scope` neither checks nor audits it a second time
        if self._deferred is not None:
            raise self._deferred
        return await super().require_any(scope, action=action)

    # -- the request's life --------------------------------------------------

    async def prepare(self):
        await super().prepare()
        self.request.connection.set_max_body_size(int(self.config.max_upload_size_gib * GIB) + 1)
        self.request.connection.set_body_timeout(3600)
        if self.request.method in ("PATCH", "POST"):
            self._read_in_larger_pieces()
        method = self.request.method
        try:
            if method in TUS_METHODS:
                version = self.request.headers.get("Tus-Resumable")
                if version != tus.TUS_VERSION:
                    raise Problem("precondition-failed", f"This server speaks tus {tus.TUS_VERSION}; the request "
                                  f"said Tus-Resumable: {version or '(missing)'}.")
            prep = getattr(self, f"prepare_{method.lower()}", None)
            if prep is not None:
                await prep()
        except Problem as problem:
            if self._can_drain():
                self._deferred = problem  # answered once the (small) body is read, so the client sees it
            else:
                raise
        if self._gone:
            await self._cleanup()

    def _read_in_larger_pieces(self) -> None:
        """Read the body in pieces of `body_read_kib` instead of tornado's 64 KiB: fewer Python calls per byte."""
        size = self.config.body_read_kib * 1024
        conn = self.request.connection
        params = getattr(conn, "params", None)
        stream = getattr(conn, "stream", None)
        if params is None or stream is None or size <= params.chunk_size:
            return
        conn.params = copy.copy(params)  # this connection's own; the server's stay as they are
        conn.params.chunk_size = size
        stream.read_chunk_size = size

    def _can_drain(self) -> bool:
        # any method: a refusal sent before a body is read makes tornado close the connection,
        # and the proxy, reusing it, answers the next request with its own HTML 503
        length = self.request.headers.get("Content-Length")
        if length is None:
            return "chunked" not in self.request.headers.get("Transfer-Encoding", "").lower()
        try:
            return int(length) <= self.config.drain_limit_kib * 1024
        except ValueError:
            return False

    def data_received(self, chunk: bytes):
        if self._hold is not None:
            self._hold.touch()
        if self._writer is not None and self._deferred is None:
            return self._writer.feed(chunk)
        return None  # a refused or bodiless request: what it sends is discarded

    def on_connection_close(self):
        self._gone = True
        if self._hold is not None:
            self._hold.closing = True  # a HEAD now waits for what arrived to be kept; a PATCH takes over
        body = getattr(self.request, "_body_future", None)
        if body is None or not body.done():
            asyncio.ensure_future(self._cleanup())
        super().on_connection_close()  # ends the wait for the body: the handler finishes, nothing hangs

    def _handle_request_exception(self, e):
        if isinstance(e, iostream.StreamClosedError) or (self._gone and not isinstance(e, Problem)):
            # the client went away mid-body: nobody to answer; keep what arrived, no error logged
            self._finished = True
            asyncio.ensure_future(self._cleanup())
            return
        super()._handle_request_exception(e)

    async def _watch_idle(self):
        """Close a connection that sends nothing for `body_idle_seconds` (a client that vanished
        without TCP noticing, e.g. a page reload behind a proxy): what arrived is kept, the lock
        freed, and the request ends instead of staying open for an hour."""
        limit = self.config.body_idle_seconds
        while self._hold is not None and not self._cleaned:
            idle = self._hold.idle_for()
            if idle >= limit:
                self.log.info("upload %s: no data for %.0f s, closing the connection", self._hold_id, idle)
                stream = getattr(self.request.connection, "stream", None)
                if stream is not None and not stream.closed():
                    stream.close()
                return
            await asyncio.sleep(min(limit - idle + 0.05, 5.0))

    def on_finish(self):
        if self._writer is not None or self._hold is not None:
            asyncio.ensure_future(self._cleanup())

    async def _cleanup(self):
        """Keep what arrived, let go of the lock. Safe to call more than once."""
        if self._cleaned:
            return
        self._cleaned = True
        if self._watchdog is not None and self._watchdog is not asyncio.current_task():
            self._watchdog.cancel()
        writer, self._writer = self._writer, None
        try:
            if writer is not None:
                try:
                    await writer.abort()
                except Exception:  # noqa: BLE001
                    self.log.exception("upload %s: keeping the received bytes failed", self._hold_id)
                finally:
                    self.area.metrics.active_writes.dec()
        finally:
            self._release()

    async def _lock(self, upload_id: str):
        def interrupt():
            stream = getattr(self.request.connection, "stream", None)
            if stream is not None and not stream.closed():
                stream.close()

        self._hold = await self.area.locks.acquire(upload_id, interrupt)
        self._hold_id = upload_id

    def _release(self):
        if self._hold is not None:
            self.area.locks.release(self._hold_id, self._hold)
            self._hold = None

    # -- helpers shared by the methods -----------------------------------------

    async def _load(self, upload_id: str) -> UploadRecord:
        record = await self.area.io(self.area.store.load, upload_id)
        if record is None:
            raise Problem("not-found", f"There is no upload {upload_id} (it never existed, was deleted, or "
                          "expired and was removed). Start a new upload.")
        return record

    async def _load_owned(self, upload_id: str, action: str) -> UploadRecord:
        record = await self._load(upload_id)
        await self.require(scopes.UPLOADS, user=record.owner, action=action)
        return record

    async def _refuse_if_expired(self, record: UploadRecord) -> None:
        area = self.area
        expired = await area.io(area.store.is_expired, record, area.receiving_ttl, area.finished_ttl)
        if expired:
            await area.io(area.store.remove, record.id)
            if record.state != FINISHED:
                area.metrics.expired.inc()
            raise Problem("gone", f"The upload {record.id} expired (no data for {self.config.expiry_hours:g} "
                          "hours) and was removed. Start a new upload.")

    async def _expires_header(self, record: UploadRecord) -> None:
        if record.state == FINISHED:
            return
        area = self.area
        at = await area.io(area.store.expires_at, record, area.receiving_ttl, area.finished_ttl)
        self.set_header("Upload-Expires", tus.http_date(at))

    def _body_length(self) -> int | None:
        value = self.request.headers.get("Content-Length")
        if value is None:
            if "chunked" in self.request.headers.get("Transfer-Encoding", "").lower():
                return None
            return 0
        return tus.parse_size(value, "Content-Length")

    def _check_content_type(self) -> None:
        ctype = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != tus.OFFSET_CONTENT_TYPE:
            raise Problem("unsupported-media-type", f"A tus PATCH body must be Content-Type: "
                          f"{tus.OFFSET_CONTENT_TYPE} (got {ctype or 'none'}).")

    async def _start_writer(self, record: UploadRecord, offset: int, limit: int | None) -> None:
        area = self.area
        checksum = tus.parse_checksum(self.request.headers.get("Upload-Checksum"))
        writer = BodyWriter(area.store.data_path(record.id), offset, limit, area.executor,
                            buffer_size=self.config.write_buffer_kib * 1024, checksum=checksum,
                            on_bytes=area.metrics.bytes_received.inc)
        await writer.open()
        self._writer = writer
        area.metrics.active_writes.inc()
        if self._hold is not None and self._watchdog is None:
            self._watchdog = asyncio.ensure_future(self._watch_idle())

    async def _close_writer(self) -> int:
        writer, self._writer = self._writer, None
        try:
            return await writer.close()
        except Problem as problem:
            if problem.type == "checksum-mismatch":
                self.area.metrics.checksum_mismatches.inc()
            self._problem_headers["Upload-Offset"] = str(writer.pos)
            raise
        finally:
            self.area.metrics.active_writes.dec()

    async def _finish(self, record: UploadRecord) -> UploadRecord:
        """All bytes are in: check the quota again and place the file in the owner's storage."""
        area = self.area
        if record.concat == "partial":
            return record  # parts wait for a final upload
        try:
            record.path = await area.io(finishing.place, area, record)
        except Problem as problem:
            record.state, record.error = UNPLACED, problem.detail
            await area.io(area.store.save, record)
            area.metrics.failed.inc()
            self._problem_headers["Upload-Offset"] = str(record.length)
            raise
        except OSError as exc:
            record.state, record.error = UNPLACED, f"placing the file failed: {exc.strerror}"
            await area.io(area.store.save, record)
            area.metrics.failed.inc()
            raise Problem("internal-error", f"All bytes arrived but the file could not be placed in your storage "
                          f"({exc.strerror}). Resume the upload (an empty PATCH) to retry.") from None
        record.state, record.error, record.finished_at = FINISHED, "", time.time()
        await area.io(area.store.save, record)
        await area.io(finishing.unlink_quietly, area.store.data_path(record.id))
        area.metrics.finished.inc()
        self.log.info("upload %s of %s finished: %s (%d bytes)", record.id, record.owner, record.path, record.length)
        return record
