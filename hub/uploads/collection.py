"""`api/uploads/`: what the server implements (OPTIONS), creating an upload (tus creation,
creation-with-upload, creation-defer-length, concatenation: POST), and the caller's uploads (GET)."""
from __future__ import annotations

import time

from tornado import web

from .. import scopes
from ..service.declare import PUBLIC, needs_scope, operation
from ..service.problems import Problem
from . import finishing, tus
from .config import GIB
from .names import is_true
from .protocol import TusHandler
from .schemas import (CAPABILITY_HEADERS, EMPTY, EMPTY_CONTENT, EXPIRES_HEADER, SIZE, TUS_BODY, TUS_BODY_CONTENT,
                      TUS_ERRORS, TUS_RESUMABLE)
from .store import UploadRecord, new_upload_id

CREATION_HEADERS = (
    TUS_RESUMABLE,
    ("Upload-Length", False, f"the upload's size in bytes, {SIZE} (or Upload-Defer-Length)"),
    ("Upload-Defer-Length", False, "1: the length is sent with a later PATCH"),
    ("Upload-Metadata", False, "comma-separated `key base64(value)` pairs: `filename` (required unless "
                               "partial), `dir` (relative to your storage), `overwrite` (true replaces a file)"),
    ("Upload-Concat", False, "`partial`, or `final;<url> <url> ...` to join finished partial uploads"),
    ("Upload-Checksum", False, "`<algorithm> <base64 digest>` of a body sent with the creation"),
)


@web.stream_request_body
class UploadsCollectionHandler(TusHandler):
    @operation("tusOptions", "tus: what the server implements", ok=204, errors=(),
               headers=CAPABILITY_HEADERS + (("Tus-Max-Size", "the largest upload, in bytes"),))
    @needs_scope(PUBLIC)
    async def options(self):
        self.advertise()
        self.set_header("Tus-Max-Size", str(int(self.config.max_upload_size_gib * GIB)))
        self.set_status(204)
        self.finish()

    # -- the caller's uploads -------------------------------------------------

    @operation("listUploads", "The caller's uploads (or ?user= for admins), their storage root and quota",
               response="UploadList", errors=(400, 401, 403), query=[("user", "string")])
    @needs_scope(scopes.READ, action="uploads.list")
    async def get(self):
        owner = self.get_argument("user", None) or self.caller_name
        await self.require(scopes.READ, user=owner, action="uploads.list")
        if owner != self.caller_name:
            await self.audit("uploads.list", "allowed", target=owner)
        area = self.area

        def collect():
            records = [r for r in area.store.all() if r.owner == owner]
            return [self._describe(r) for r in records], area.quota.usage(owner)

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
        await area.io(area.quota.reserve, owner, needed, record)
        area.metrics.started.inc()
        self._record = record
        self.log.info("upload %s created by %s (%s bytes)", record.id, owner, length if length is not None else "deferred")
        if body is None or body > 0:
            await self._lock(record.id)
            limit = length if length is not None else max_size
            await self._start_writer(record, 0, limit)

    @operation("createUpload", "tus creation (with upload, deferred length, concatenation): start an upload",
               ok=201, response=EMPTY, content=EMPTY_CONTENT, body=TUS_BODY, body_content=TUS_BODY_CONTENT,
               body_required=False, request_headers=CREATION_HEADERS,
               headers=(("Tus-Resumable", "1.0.0"), ("Location", "the new upload's URL"),
                        ("Upload-Offset", "bytes kept of a body sent with the creation"), EXPIRES_HEADER),
               errors=TUS_ERRORS + (400, 404, 409, 413, 415, 423, 500),
               description="A body (Content-Type: application/offset+octet-stream) is the upload's first bytes "
                           "(creation-with-upload). A final upload (Upload-Concat: final;...) is placed at once.")
    @needs_scope(scopes.UPLOADS, action="uploads.create")
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
        self._answer_in_headers(201)

    def _answer_in_headers(self, status: int) -> None:
        self.clear_header("Content-Type")  # no body: nothing to type
        self.set_status(status)
        self.finish()

    async def _create_final(self):
        area = self.area
        owner = self.caller_name
        parts = []
        for url in self._concat[1]:
            part_id = tus.upload_id_from_url(url, area.base_path)
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
            record = UploadRecord(id=new_upload_id(), owner=owner, length=total, metadata=self._metadata,
                                  created=time.time(), concat="final", parts=[p.id for p in parts])
            await area.io(area.quota.reserve, owner, total, record, exclude={p.id for p in parts})
            area.metrics.started.inc()
            await area.io(finishing.concatenate, area.store, record, parts)
            self.set_header("Location", self.upload_url(record.id))
            record = await self._finish(record)
            for part in parts:
                await area.io(area.store.remove, part.id)
        finally:
            for part_id, hold in holds:
                area.locks.release(part_id, hold)
        self._answer_in_headers(201)
