"""The uploads area of the service: a tus 1.0.0 server at `api/uploads/`, plus JSON views.

tus requests: OPTIONS and POST (creation, creation-with-upload, creation-defer-length,
concatenation) on `api/uploads/`; HEAD, PATCH (checksum, expiration), DELETE
(termination) on `api/uploads/<id>`. Every answer carries `Tus-Resumable`; errors use
the statuses tus fixes with `application/problem+json` bodies (none on HEAD).
`GET api/uploads/` lists the caller's uploads with their storage quota, and
`GET api/uploads/<id>` says where a finished upload landed.
"""
from __future__ import annotations

import asyncio
import copy
import json
import logging
import time

from tornado import iostream, web

from .. import scopes
from ..service.base import APIHandler
from ..service.problems import PROBLEM_CONTENT_TYPE, Problem
from . import metrics, page, quota, tus
from .area import UploadsArea
from .config import GIB
from .names import is_true
from .store import FINISHED, RECEIVING, UNPLACED, UploadRecord, new_upload_id
from .writer import BodyWriter

COLLECTION = "api/uploads/"
UPLOAD_ID = r"(?P<upload_id>[0-9a-f]{32})"
TUS_METHODS = ("POST", "HEAD", "PATCH", "DELETE")


class TusHandler(APIHandler):
    """tus protocol plumbing shared by the collection and the upload resource."""

    log = logging.getLogger("astrago.uploads")

    def initialize(self):
        self._writer: BodyWriter | None = None
        self._hold = None
        self._hold_id: str | None = None
        self._deferred: Problem | None = None
        self._gone = False
        self._cleaned = False
        self._problem_headers: dict[str, str] = {}
        self._watchdog: asyncio.Task | None = None

    @property
    def area(self) -> UploadsArea:
        return UploadsArea.of(self.service)

    @property
    def config(self):
        return self.area.config

    @property
    def base_path(self) -> str:
        return self.service.prefix + COLLECTION

    def upload_url(self, upload_id: str) -> str:
        return self.base_path + upload_id

    def set_default_headers(self):
        self.set_header("Tus-Resumable", tus.TUS_VERSION)
        self.set_header("Cache-Control", "no-store")

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
        if self.request.method not in ("PATCH", "POST"):
            return False
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
                    metrics.ACTIVE_WRITES.dec()
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
                metrics.EXPIRED.inc()
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
                            on_bytes=metrics.BYTES_RECEIVED.inc)
        await writer.open()
        self._writer = writer
        metrics.ACTIVE_WRITES.inc()
        if self._hold is not None and self._watchdog is None:
            self._watchdog = asyncio.ensure_future(self._watch_idle())

    async def _close_writer(self) -> int:
        writer, self._writer = self._writer, None
        try:
            return await writer.close()
        except Problem as problem:
            if problem.type == "checksum-mismatch":
                metrics.CHECKSUM_MISMATCHES.inc()
            self._problem_headers["Upload-Offset"] = str(writer.pos)
            raise
        finally:
            metrics.ACTIVE_WRITES.dec()

    async def _finish(self, record: UploadRecord) -> UploadRecord:
        """All bytes are in: check the quota again and place the file in the owner's storage."""
        area = self.area
        if record.concat == "partial":
            return record  # parts wait for a final upload
        overwrite = is_true(record.metadata.get("overwrite"))

        def place():
            with quota.room_lock(record.owner):
                freed = area.storage.existing_size(record.owner, record.dir, record.filename) if overwrite else 0
                quota.check_room(record.owner, record.length, config=area.config, store=area.store,
                                 storage=area.storage, freed=freed, count_pending=False)
                return area.storage.place(record.owner, record.id, str(area.store.data_path(record.id)),
                                          record.dir, record.filename, overwrite)

        try:
            record.path = await area.io(place)
        except Problem as problem:
            record.state, record.error = UNPLACED, problem.detail
            await area.io(area.store.save, record)
            metrics.FAILED.inc()
            self._problem_headers["Upload-Offset"] = str(record.length)
            raise
        except OSError as exc:
            record.state, record.error = UNPLACED, f"placing the file failed: {exc.strerror}"
            await area.io(area.store.save, record)
            metrics.FAILED.inc()
            raise Problem("internal-error", f"All bytes arrived but the file could not be placed in your storage "
                          f"({exc.strerror}). Resume the upload (an empty PATCH) to retry.") from None
        record.state, record.error, record.finished_at = FINISHED, "", time.time()
        await area.io(area.store.save, record)
        await area.io(_unlink_quietly, area.store.data_path(record.id))
        metrics.FINISHED.inc()
        self.log.info("upload %s of %s finished: %s (%d bytes)", record.id, record.owner, record.path, record.length)
        return record


def _unlink_quietly(path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


@web.stream_request_body
class UploadsCollectionHandler(TusHandler):
    """`api/uploads/`: OPTIONS (what is implemented), POST (create), GET (the caller's uploads)."""

    async def options(self):
        self.set_header("Tus-Version", tus.TUS_VERSION)
        self.set_header("Tus-Extension", ",".join(tus.EXTENSIONS))
        self.set_header("Tus-Max-Size", str(int(self.config.max_upload_size_gib * GIB)))
        self.set_header("Tus-Checksum-Algorithm", ",".join(tus.CHECKSUM_ALGORITHMS))
        self.set_status(204)
        self.finish()

    async def get(self):
        user = self.get_argument("user", None)
        caller = await self.require()
        owner = user or caller["name"]
        await self.require(scopes.READ, user=owner, action="uploads.list")
        if owner != caller["name"]:
            await self.audit("uploads.list", "allowed", target=owner)
        area = self.area

        def collect():
            records = [r for r in area.store.all() if r.owner == owner]
            usage = quota.usage(owner, config=area.config, store=area.store, storage=area.storage)
            return [self._describe(r) for r in records], usage

        uploads, usage = await area.io(collect)
        uploads.sort(key=lambda u: u["created"], reverse=True)
        self.write_json({"user": owner, "storage": {"root": area.storage.root_path(owner), **usage},
                         "limits": {"max_upload_bytes": int(self.config.max_upload_size_gib * GIB),
                                    "expiry_hours": self.config.expiry_hours},
                         "uploads": uploads})

    def _describe(self, r: UploadRecord) -> dict:  # executor
        store = self.area.store
        return {"id": r.id, "url": self.upload_url(r.id), "state": r.state, "offset": store.offset(r),
                "length": r.length, "filename": r.filename, "dir": r.dir or "", "path": r.path, "error": r.error,
                "concat": r.concat, "created": r.created,
                "expires": store.expires_at(r, self.area.receiving_ttl, self.area.finished_ttl)}

    # -- creation -------------------------------------------------------------

    async def prepare_post(self):
        caller = await self.require(scopes.UPLOADS, user=self.caller_name, action="uploads.create")
        headers = self.request.headers
        area = self.area
        owner = caller["name"]
        concat = tus.parse_concat(headers.get("Upload-Concat"))
        metadata = tus.parse_metadata(headers.get("Upload-Metadata"))
        length = tus.parse_size(headers.get("Upload-Length"), "Upload-Length")
        defer = headers.get("Upload-Defer-Length")
        body = self._body_length()
        max_size = int(self.config.max_upload_size_gib * GIB)
        self._concat = concat
        self._metadata = metadata
        if concat and concat[0] == "final":
            if body:
                raise Problem("invalid-request", "A final (concatenated) upload takes no body.")
            if length is not None or defer is not None:
                raise Problem("invalid-request", "A final upload's length is the sum of its parts: send neither "
                              "Upload-Length nor Upload-Defer-Length.")
            await area.io(area.storage.check_destination, owner, metadata.get("dir"),
                          metadata.get("filename") or metadata.get("name"), is_true(metadata.get("overwrite")))
            return
        if defer is not None:
            if defer.strip() != "1":
                raise Problem("invalid-request", "Upload-Defer-Length must be 1.")
            if length is not None:
                raise Problem("invalid-request", "Send Upload-Length or Upload-Defer-Length, not both.")
        elif length is None:
            raise Problem("invalid-request", "Creating an upload needs Upload-Length (or Upload-Defer-Length: 1).")
        if length is not None and length > max_size:
            raise Problem("payload-too-large", f"Uploads are limited to {max_size} bytes (Tus-Max-Size); this "
                          f"one declares {length}.")
        if body is None or body > 0:
            self._check_content_type()
            if length is not None and body is not None and body > length:
                raise Problem("payload-too-large", "The body is longer than Upload-Length.")
            tus.parse_checksum(headers.get("Upload-Checksum"))
        if not (concat and concat[0] == "partial"):
            await area.io(area.storage.check_destination, owner, metadata.get("dir"),
                          metadata.get("filename") or metadata.get("name"), is_true(metadata.get("overwrite")))
        needed = length if length is not None else (body or 0)
        record = UploadRecord(id=new_upload_id(), owner=owner, length=length, metadata=metadata,
                              created=time.time(), concat=concat[0] if concat else None)
        # the declared length is reserved as the record is made, under the owner's lock
        await area.io(quota.reserve, owner, needed, record, config=area.config, store=area.store,
                      storage=area.storage)
        metrics.STARTED.inc()
        self._record = record
        self.log.info("upload %s created by %s (%s bytes)", record.id, owner, length if length is not None else "deferred")
        if body is None or body > 0:
            await self._lock(record.id)
            limit = length if length is not None else max_size
            await self._start_writer(record, 0, limit)

    async def post(self):
        if self._deferred is not None:
            raise self._deferred
        if self._concat and self._concat[0] == "final":
            return await self._create_final()
        record = self._record
        self.set_header("Location", self.upload_url(record.id))
        offset = 0
        if self._writer is not None:
            try:
                offset = await self._close_writer()
            except Problem as problem:
                self.log.warning("upload %s: body of the creation request refused: %s", record.id, problem.detail)
                offset = int(self._problem_headers.pop("Upload-Offset", "0"))
            self.set_header("Upload-Offset", str(offset))
        if record.length is not None and offset == record.length:
            record = await self._finish(record)  # all there already (a body, or an empty file)
        await self._expires_header(record)
        self.set_status(201)
        self.finish()

    async def _create_final(self):
        area = self.area
        owner = self.caller_name
        urls = self._concat[1]
        parts = []
        for url in urls:
            part_id = tus.upload_id_from_url(url, self.base_path)
            if part_id is None:
                raise Problem("invalid-request", f"{url!r} is not an upload of this server.")
            part = await self._load(part_id)
            if part.owner != owner:
                await self.audit("uploads.concat", "denied", target=part.owner, reason="partial upload of another user")
                raise Problem("forbidden", f"The partial upload {part_id} is not yours.")
            if part.concat != "partial":
                raise Problem("invalid-request", f"The upload {part_id} is not a partial upload (Upload-Concat: partial).")
            parts.append(part)
        holds = []
        try:
            for part in parts:
                hold = await area.locks.acquire(part.id, None)
                holds.append((part.id, hold))
            sizes = [await area.io(area.store.offset, p) for p in parts]
            for part, size in zip(parts, sizes):
                if part.length is None or size != part.length:
                    raise Problem("invalid-request", f"The partial upload {part.id} is not complete "
                                  f"({size} of {part.length if part.length is not None else '?'} bytes).")
            total = sum(sizes)
            exclude = {p.id for p in parts}
            record = UploadRecord(id=new_upload_id(), owner=owner, length=total, metadata=self._metadata,
                                  created=time.time(), concat="final", parts=[p.id for p in parts])
            await area.io(quota.reserve, owner, total, record, config=area.config, store=area.store,
                          storage=area.storage, exclude=exclude)
            metrics.STARTED.inc()
            await area.io(_concatenate, area.store, record, parts)
            self.set_header("Location", self.upload_url(record.id))
            record = await self._finish(record)
            for part in parts:
                await area.io(area.store.remove, part.id)
        finally:
            for part_id, hold in holds:
                area.locks.release(part_id, hold)
        self.set_status(201)
        self.finish()


def _concatenate(store, record: UploadRecord, parts: list[UploadRecord]) -> None:  # executor
    import os

    from .storage import copy_fd

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


@web.stream_request_body
class UploadHandler(TusHandler):
    """`api/uploads/<id>`: HEAD (offset), PATCH (append), DELETE (terminate), GET (JSON status)."""

    async def options(self, upload_id):
        self.set_header("Tus-Version", tus.TUS_VERSION)
        self.set_header("Tus-Extension", ",".join(tus.EXTENSIONS))
        self.set_header("Tus-Checksum-Algorithm", ",".join(tus.CHECKSUM_ALGORITHMS))
        self.set_status(204)
        self.finish()

    async def head(self, upload_id):
        record = await self._load_owned(upload_id, "uploads.head")
        await self._refuse_if_expired(record)
        # never takes the lock (a PATCH in progress goes on); a writer whose client is gone is
        # waited for, so the offset includes what it keeps
        await self.area.locks.settled(upload_id)
        record = await self._load(upload_id)
        offset = await self.area.io(self.area.store.offset, record)
        self.set_header("Upload-Offset", str(offset))
        if record.length is None:
            self.set_header("Upload-Defer-Length", "1")
        else:
            self.set_header("Upload-Length", str(record.length))
        if record.metadata:
            self.set_header("Upload-Metadata", tus.format_metadata(record.metadata))
        if record.concat == "partial":
            self.set_header("Upload-Concat", "partial")
        elif record.concat == "final":
            self.set_header("Upload-Concat", "final;" + " ".join(self.upload_url(p) for p in record.parts))
        await self._expires_header(record)
        self.set_status(200)
        self.finish()

    async def get(self, upload_id):
        record = await self._load(upload_id)
        await self.require(scopes.READ, user=record.owner, action="uploads.get")
        area = self.area

        def describe():
            return {"id": record.id, "owner": record.owner, "state": record.state,
                    "offset": area.store.offset(record), "length": record.length, "metadata": record.metadata,
                    "concat": record.concat, "path": record.path, "error": record.error,
                    "storage_root": area.storage.root_path(record.owner),
                    "expires": area.store.expires_at(record, area.receiving_ttl, area.finished_ttl)}

        self.write_json(await area.io(describe))

    async def prepare_patch(self):
        upload_id = self.path_kwargs["upload_id"]
        record = await self._load_owned(upload_id, "uploads.patch")
        if record.concat == "final":
            raise Problem("forbidden", "A final (concatenated) upload cannot be patched; it is complete.")
        self._check_content_type()
        client_offset = tus.parse_size(self.request.headers.get("Upload-Offset"), "Upload-Offset")
        if client_offset is None:
            raise Problem("invalid-request", "PATCH needs Upload-Offset.")
        tus.parse_checksum(self.request.headers.get("Upload-Checksum"))
        await self._refuse_if_expired(record)
        await self._lock(upload_id)
        area = self.area
        record = await self._load(upload_id)  # it may have changed while we waited
        offset = await area.io(area.store.offset, record)
        self._record = record
        self._problem_headers["Upload-Offset"] = str(offset)
        if client_offset != offset:
            raise Problem("conflict", f"Upload-Offset is {client_offset} but the server has {offset} bytes; "
                          "nothing was written. Ask with HEAD and resume from there.")
        new_length = tus.parse_size(self.request.headers.get("Upload-Length"), "Upload-Length")
        body = self._body_length()
        max_size = int(self.config.max_upload_size_gib * GIB)
        if new_length is not None:
            if record.length is not None and new_length != record.length:
                raise Problem("invalid-request", f"The upload's length is already {record.length}.")
            if record.length is None:
                if new_length < offset or new_length > max_size:
                    raise Problem("invalid-request" if new_length < offset else "payload-too-large",
                                  f"Upload-Length {new_length} is outside {offset}..{max_size}.")
                await area.io(quota.reserve_length, record.owner, record, new_length, config=area.config,
                              store=area.store, storage=area.storage)
        if record.state != RECEIVING:
            if body:
                raise Problem("conflict", "This upload is complete; it takes no more bytes.")
            return
        if record.length is not None:
            left = record.length - offset
            if body is not None and body > left:
                raise Problem("payload-too-large", f"The body ({body} bytes) is longer than what is left of the "
                              f"upload ({left} bytes).")
        else:
            left = max_size - offset
            if body is not None:  # running length: what would be there after this body
                await area.io(quota.check_room, record.owner, offset + body, config=area.config, store=area.store,
                              storage=area.storage, exclude={record.id})
        if body is None or body > 0:
            await self._start_writer(record, offset, left)

    async def patch(self, upload_id):
        if self._deferred is not None:
            raise self._deferred
        record = self._record
        area = self.area
        if self._writer is not None:
            offset = await self._close_writer()
        else:
            offset = await area.io(area.store.offset, record)
        self._problem_headers["Upload-Offset"] = str(offset)
        if record.length is not None and offset == record.length and record.state != FINISHED:
            record = await self._finish(record)
        self.set_header("Upload-Offset", str(offset))
        await self._expires_header(record)
        self.set_status(204)
        self.finish()

    async def delete(self, upload_id):
        record = await self._load_owned(upload_id, "uploads.delete")
        area = self.area
        await self._lock(upload_id)
        try:
            await area.io(area.store.remove, upload_id)
        finally:
            self._release()
        metrics.TERMINATED.inc()
        if record.owner != self.caller_name:
            await self.audit("uploads.delete", "allowed", target=record.owner, detail={"upload": upload_id})
        self.set_status(204)
        self.finish()


# -- OpenAPI -------------------------------------------------------------------

def _errors(*codes):
    return {str(c): {"$ref": "#/components/responses/Problem"} for c in codes}


# not `required`: the server answers a missing or other version itself, with 412 and Tus-Version (tus 1.0.0)
_TUS_HEADER = {"name": "Tus-Resumable", "in": "header", "required": False,
               "description": "the tus version, 1.0.0; missing or another one: 412 Precondition Failed with "
                              "Tus-Version", "schema": {"type": "string", "const": "1.0.0"}}
_ID = {"name": "upload_id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}

PATHS = {
    "/api/uploads/": {
        "options": {
            "summary": "tus: what the server implements (Tus-Version, Tus-Extension, Tus-Max-Size, "
                       "Tus-Checksum-Algorithm)",
            "operationId": "tusOptions",
            "security": [],
            "responses": {"204": {"description": "Capabilities in headers"}},
        },
        "post": {
            "summary": "tus creation (with upload, deferred length, concatenation): start an upload",
            "description": "Upload-Metadata: `filename` (required unless partial), `dir` (relative to your storage), "
                           "`overwrite` (true to replace an existing file).",
            "operationId": "createUpload",
            "parameters": [
                _TUS_HEADER,
                {"name": "Upload-Length", "in": "header", "schema": {"type": "integer", "minimum": 0}},
                {"name": "Upload-Defer-Length", "in": "header", "schema": {"type": "string", "const": "1"}},
                {"name": "Upload-Metadata", "in": "header", "schema": {"type": "string"}},
                {"name": "Upload-Concat", "in": "header", "schema": {"type": "string"}},
                {"name": "Upload-Checksum", "in": "header", "schema": {"type": "string"}},
            ],
            "requestBody": {"required": False,
                            "content": {"application/offset+octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
            "responses": {"201": {"description": "Created; Location names the upload"},
                          **_errors(400, 401, 403, 409, 412, 413, 415)},
        },
        "get": {
            "summary": "The caller's uploads (or ?user= for admins), their storage root and quota",
            "operationId": "listUploads",
            "parameters": [{"name": "user", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "Uploads and storage",
                                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/UploadList"}}}},
                          **_errors(401, 403)},
        },
    },
    "/api/uploads/{upload_id}": {
        "options": {
            "summary": "tus: capabilities",
            "operationId": "tusUploadOptions",
            "security": [],
            "parameters": [_ID],
            "responses": {"204": {"description": "Capabilities in headers"}},
        },
        "head": {
            "summary": "tus: how many bytes the server has (Upload-Offset), length, metadata, expiry",
            "operationId": "getUploadOffset",
            "parameters": [_ID, _TUS_HEADER],
            "responses": {"200": {"description": "Upload-Offset and Upload-Length in headers"},
                          "401": {"description": "No credentials"}, "403": {"description": "Not yours"},
                          "404": {"description": "No such upload"}, "410": {"description": "Expired"},
                          "412": {"description": "Wrong Tus-Resumable"}},
        },
        "patch": {
            "summary": "tus: append bytes at Upload-Offset",
            "operationId": "appendUpload",
            "parameters": [
                _ID, _TUS_HEADER,
                {"name": "Upload-Offset", "in": "header", "required": True, "schema": {"type": "integer", "minimum": 0}},
                {"name": "Upload-Length", "in": "header", "schema": {"type": "integer", "minimum": 0}},
                {"name": "Upload-Checksum", "in": "header", "schema": {"type": "string"}},
            ],
            "requestBody": {"required": True,
                            "content": {"application/offset+octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
            "responses": {"204": {"description": "Written; Upload-Offset is the new offset"},
                          **_errors(400, 401, 403, 404, 409, 410, 412, 413, 415, 423, 460, 507)},
        },
        "delete": {
            "summary": "tus termination: delete an unfinished upload (a placed file stays)",
            "operationId": "deleteUpload",
            "parameters": [_ID, _TUS_HEADER],
            "responses": {"204": {"description": "Deleted"}, **_errors(401, 403, 404, 412, 423)},
        },
        "get": {
            "summary": "One upload's state and, once finished, where the file landed",
            "operationId": "getUpload",
            "parameters": [_ID],
            "responses": {"200": {"description": "The upload",
                                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Upload"}}}},
                          **_errors(401, 403, 404)},
        },
    },
}

SCHEMAS = {
    "Upload": {
        "type": "object",
        "required": ["id", "state", "offset"],
        "properties": {
            "id": {"type": "string"},
            "owner": {"type": "string"},
            "state": {"type": "string", "enum": [RECEIVING, FINISHED, UNPLACED]},
            "offset": {"type": "integer"},
            "length": {"type": ["integer", "null"]},
            "metadata": {"type": "object"},
            "concat": {"type": ["string", "null"]},
            "path": {"type": "string", "description": "relative to the owner's storage root, once finished"},
            "error": {"type": "string"},
            "expires": {"type": "number"},
        },
    },
    "UploadList": {
        "type": "object",
        "required": ["user", "storage", "uploads"],
        "properties": {
            "user": {"type": "string"},
            "storage": {"type": "object", "properties": {
                "root": {"type": "string"}, "quota_bytes": {"type": "integer"}, "stored_bytes": {"type": "integer"},
                "pending_bytes": {"type": "integer"}, "free_bytes": {"type": "integer"}}},
            "limits": {"type": "object"},
            "uploads": {"type": "array", "items": {"$ref": "#/components/schemas/Upload"}},
        },
    },
}


PATHS.update(page.PAGE_PATHS)


def handlers(prefix: str) -> list:
    _start_cleaner_if_serving()
    return [
        (prefix + COLLECTION, UploadsCollectionHandler),
        (prefix + COLLECTION + UPLOAD_ID, UploadHandler),
        *page.handlers(prefix),
    ]


def _start_cleaner_if_serving() -> None:
    """Start the expiry cleaner with the service (not only at the first upload request)."""
    from ..service.app import AstraGoService

    if AstraGoService.initialized():
        UploadsArea.of(AstraGoService.instance())
