"""`api/uploads/{upload_id}`: one upload. HEAD (its offset), PATCH (append bytes), DELETE (tus
termination), GET (its state as JSON and, once finished, where the file landed)."""
from __future__ import annotations

from tornado import web

from .. import scopes
from ..service.declare import PUBLIC, needs_scope, operation
from ..service.problems import Problem
from . import tus
from .config import GIB
from .protocol import TusHandler
from .schemas import (CAPABILITY_HEADERS, EMPTY, EMPTY_CONTENT, EXPIRES_HEADER, SIZE, TUS_BODY, TUS_BODY_CONTENT,
                      TUS_ERRORS, TUS_RESUMABLE, TUS_RESUMABLE_HEADER)
from .store import FINISHED, RECEIVING

#: how an upload is named in its URL
UPLOAD_ID = "[0-9a-f]{32}"


@web.stream_request_body
class UploadHandler(TusHandler):
    @operation("tusUploadOptions", "tus: what the server implements", ok=204, errors=(), headers=CAPABILITY_HEADERS)
    @needs_scope(PUBLIC)
    async def options(self, upload_id):
        self.advertise()
        self.set_status(204)
        self.finish()

    @operation("getUploadOffset", "tus: how many bytes the server has (Upload-Offset), length, metadata, expiry",
               response=EMPTY, content=EMPTY_CONTENT, request_headers=(TUS_RESUMABLE,),
               headers=TUS_RESUMABLE_HEADER + (
                   ("Upload-Offset", "bytes the server has (durably) received"),
                   ("Upload-Length", "the upload's size (absent while deferred)"),
                   ("Upload-Defer-Length", "1 while the length is deferred"),
                   ("Upload-Metadata", "the metadata given at creation"),
                   ("Upload-Concat", "`partial`, or `final;<url> ...` of a concatenated upload"),
                   EXPIRES_HEADER),
               errors=TUS_ERRORS + (404, 410),
               description="Never interrupts a PATCH in progress (it answers what is durably there).")
    @needs_scope(scopes.UPLOADS, action="uploads.head")
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
        self.clear_header("Content-Type")  # no body: nothing to type
        self.set_status(200)
        self.finish()

    @operation("getUpload", "One upload's state and, once finished, where the file landed", response="Upload",
               errors=(401, 403, 404))
    @needs_scope(scopes.READ, action="uploads.get")
    async def get(self, upload_id):
        record = await self._load(upload_id)
        await self.require(scopes.READ, user=record.owner, action="uploads.get")
        area = self.area

        def describe():
            return {"id": record.id, "owner": record.owner, "state": record.state,
                    "offset": area.store.offset(record), "length": record.length, "metadata": record.metadata,
                    "concat": record.concat, "path": record.path, "error": record.error,
                    "storage_root": area.storage.root_path(record.owner),
                    "expires": area.store.expires_at(record, area.receiving_ttl, area.finished_ttl),
                    "writing": area.locks.held(record.id)}

        self.write_json(await area.io(describe))

    # -- appending ------------------------------------------------------------

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
                await area.io(area.quota.reserve_length, record.owner, record, new_length)
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
                await area.io(area.quota.check_room, record.owner, offset + body, exclude={record.id})
        if body is None or body > 0:
            await self._start_writer(record, offset, left)

    @operation("appendUpload", "tus: append bytes at Upload-Offset", ok=204, body=TUS_BODY,
               body_content=TUS_BODY_CONTENT,
               request_headers=(TUS_RESUMABLE,
                                ("Upload-Offset", True, f"where the body goes: the server's offset, {SIZE}"),
                                ("Upload-Length", False, f"the length of a deferred-length upload, {SIZE}"),
                                ("Upload-Checksum", False, "`<algorithm> <base64 digest>` of the body: a "
                                                           "mismatch keeps none of it (460)")),
               headers=TUS_RESUMABLE_HEADER + (("Upload-Offset", "the new offset"), EXPIRES_HEADER),
               errors=TUS_ERRORS + (400, 404, 409, 410, 413, 415, 423, 460, 500, 507),
               description="The last byte places the file in the owner's storage; an empty PATCH retries a "
                           "placement that failed. A competing PATCH while one is writing gets 423 Locked.")
    @needs_scope(scopes.UPLOADS, action="uploads.patch")
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

    # -- termination ------------------------------------------------------------

    @operation("deleteUpload", "tus termination: delete an unfinished upload (a placed file stays)", ok=204,
               request_headers=(TUS_RESUMABLE,), headers=TUS_RESUMABLE_HEADER, errors=TUS_ERRORS + (404, 423))
    @needs_scope(scopes.UPLOADS, action="uploads.delete")
    async def delete(self, upload_id):
        record = await self._load_owned(upload_id, "uploads.delete")
        area = self.area
        await self._lock(upload_id)
        try:
            await area.io(area.store.remove, upload_id)
        finally:
            self._release()
        area.metrics.terminated.inc()
        if record.owner != self.caller_name:
            await self.audit("uploads.delete", "allowed", target=record.owner, detail={"upload": upload_id})
        self.set_status(204)
        self.finish()
