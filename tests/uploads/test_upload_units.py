"""The pure parts (tus grammar, names) by exact comparison; the writer, locks and cleaner on real files."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from astrago.hub.service.problems import Problem
from astrago.hub.uploads import tus
from astrago.hub.uploads.config import UploadsConfig
from astrago.hub.uploads.metrics import UploadMetrics
from astrago.hub.uploads.expiry import GRACE_SECONDS, sweep
from astrago.hub.uploads.locks import UploadLocks
from astrago.hub.uploads.names import check_filename, split_dir
from astrago.hub.uploads.store import FINISHED, UploadRecord, UploadStore, new_upload_id
from astrago.hub.uploads.writer import BodyWriter


# -- tus grammar ----------------------------------------------------------------------

def test_metadata_round_trip_and_flags():
    header = "filename ZGF0YS50YXI=,dir ZGF0YXNldHMv,is_confidential"
    assert tus.parse_metadata(header) == {"filename": "data.tar", "dir": "datasets/", "is_confidential": None}
    assert tus.format_metadata({"filename": "data.tar", "flag": None}) == "filename ZGF0YS50YXI=,flag"
    assert tus.parse_metadata("") == {}


@pytest.mark.parametrize("bad", ["filename !!!", "a b c", "dup YQ==,dup Yg==", "k\u00e9y YQ=="])
def test_malformed_metadata_is_refused(bad):
    with pytest.raises(Problem) as exc:
        tus.parse_metadata(bad)
    assert exc.value.status == 400


def test_sizes_checksums_and_concat_headers():
    assert tus.parse_size("42", "Upload-Length") == 42
    assert tus.parse_size(None, "Upload-Length") is None
    for bad in ("-1", "1.5", "0x10", "", "1e3"):
        with pytest.raises(Problem):
            tus.parse_size(bad, "Upload-Length")
    digest = hashlib.sha1(b"abc").digest()
    assert tus.parse_checksum("sha1 " + base64.b64encode(digest).decode()) == ("sha1", digest)
    with pytest.raises(Problem):
        tus.parse_checksum("whirlpool AAAA")
    assert tus.parse_concat("partial") == ("partial", [])
    assert tus.parse_concat("final;/a/b http://x/c") == ("final", ["/a/b", "http://x/c"])
    with pytest.raises(Problem):
        tus.parse_concat("final;")
    base = "/services/astrago/api/uploads/"
    assert tus.upload_id_from_url("http://h/services/astrago/api/uploads/" + "a" * 32, base) == "a" * 32
    assert tus.upload_id_from_url("/elsewhere/" + "a" * 32, base) is None
    assert tus.upload_id_from_url(base + "../x", base) is None


def test_crc32_checksum_is_the_big_endian_value():
    assert tus.format_checksum("crc32", b"hello") == "crc32 " + base64.b64encode(bytes.fromhex("3610a686")).decode()


def test_http_date_is_imf_fixdate():
    assert tus.http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"


# -- names ------------------------------------------------------------------------------

def test_dir_components():
    assert split_dir(None) == []
    assert split_dir("") == []
    assert split_dir("./") == []
    assert split_dir("datasets/") == ["datasets"]
    assert split_dir("datasets/2024/raw") == ["datasets", "2024", "raw"]
    for bad in ("/etc", "../x", "a/../b", "a//b", "~", "a/./b", "a/\x00"):
        with pytest.raises(Problem):
            split_dir(bad)


def test_filenames():
    assert check_filename("data.tar") == "data.tar"
    assert check_filename(".bashrc") == ".bashrc"
    assert check_filename("späß €.txt") == "späß €.txt"
    for bad in (None, "", ".", "..", "a/b", "x\n", "x" * 256, ".astrago-upload-abc"):
        with pytest.raises(Problem):
            check_filename(bad)


# -- the writer on real files ------------------------------------------------------------

@pytest.fixture
def executor():
    ex = ThreadPoolExecutor(2)
    yield ex
    ex.shutdown()


async def _write(path, start, pieces, executor, checksum=None, buffer_size=4096):
    w = BodyWriter(path, start, None, executor, buffer_size=buffer_size, checksum=checksum)
    await w.open()
    for piece in pieces:
        pending = w.feed(piece)
        if pending is not None:
            await pending
    return w


async def test_writer_streams_in_bounded_buffers_and_makes_it_durable(tmp_path, executor):
    path = tmp_path / "u.part"
    path.write_bytes(b"head")
    data = os.urandom(50_000)
    w = await _write(path, 4, [data[i:i + 1000] for i in range(0, len(data), 1000)], executor)
    assert len(w._buf) < 4096 + 1000  # never more than one buffer (plus one piece) gathered
    assert await w.close() == 4 + len(data)
    assert path.read_bytes() == b"head" + data


async def test_writer_checksum_mismatch_cuts_back_to_the_start(tmp_path, executor):
    path = tmp_path / "u.part"
    path.write_bytes(b"kept")
    w = await _write(path, 4, [os.urandom(10_000)], executor, checksum=("sha256", b"\0" * 32))
    with pytest.raises(Problem) as exc:
        await w.close()
    assert exc.value.status == 460
    assert path.read_bytes() == b"kept"


async def test_writer_abort_keeps_received_bytes_without_checksum(tmp_path, executor):
    path = tmp_path / "u.part"
    path.write_bytes(b"")
    w = await _write(path, 0, [b"a" * 5000, b"b" * 100], executor)
    assert await w.abort() == 5100
    assert path.read_bytes() == b"a" * 5000 + b"b" * 100


async def test_writer_abort_with_checksum_keeps_nothing_of_the_body(tmp_path, executor):
    path = tmp_path / "u.part"
    path.write_bytes(b"xy")
    w = await _write(path, 2, [b"a" * 9000], executor, checksum=("md5", hashlib.md5(b"a" * 20000).digest()))
    assert await w.abort() == 2
    assert path.read_bytes() == b"xy"


async def test_writer_refuses_more_than_its_limit(tmp_path, executor):
    path = tmp_path / "u.part"
    path.write_bytes(b"")
    w = BodyWriter(path, 0, 10, executor, buffer_size=4096)
    await w.open()
    w.feed(b"12345678")
    w.feed(b"9abc")
    with pytest.raises(Problem) as exc:
        await w.close()
    assert exc.value.status == 413
    assert path.read_bytes() == b"12345678"


# -- locks ------------------------------------------------------------------------------------

async def test_a_live_holder_is_not_interrupted_the_newcomer_gets_423():
    """A PATCH receiving bytes keeps the upload: a competing PATCH is refused (tus clients retry 423)."""
    locks = UploadLocks(takeover_seconds=5, stall_seconds=30)
    interrupted = []
    first = await locks.acquire("u", lambda: interrupted.append(True))
    with pytest.raises(Problem) as exc:
        await locks.acquire("u", None)
    assert exc.value.status == 423 and exc.value.type == "locked"
    assert interrupted == [] and locks.held("u")
    await locks.settled("u")  # a reader (HEAD) neither waits for a live holder nor interrupts it
    assert interrupted == [] and locks.holder("u") is first


async def test_a_stalled_holder_is_taken_over():
    locks = UploadLocks(takeover_seconds=5, stall_seconds=0.05)
    interrupted = []
    first = await locks.acquire("u", lambda: interrupted.append(True) or locks.release("u", first))
    await asyncio.sleep(0.1)  # nothing received for longer than stall_seconds: dead
    second = await locks.acquire("u", None)
    assert interrupted == [True]
    assert locks.holder("u") is second
    locks.release("u", second)
    assert not locks.held("u")


async def test_a_closed_holder_is_waited_for_by_head_and_patch():
    locks = UploadLocks(takeover_seconds=5, stall_seconds=30)
    first = await locks.acquire("u", None)
    first.closing = True  # its connection went away: it is keeping what arrived
    asyncio.get_running_loop().call_later(0.05, locks.release, "u", first)
    await locks.settled("u")
    assert not locks.held("u")
    second = await locks.acquire("u", None)
    assert locks.holder("u") is second


async def test_a_holder_that_never_lets_go_gives_423_not_a_wedge():
    locks = UploadLocks(takeover_seconds=0.05, stall_seconds=0)
    await locks.acquire("u", lambda: None)
    with pytest.raises(Problem) as exc:
        await locks.acquire("u", None)
    assert exc.value.status == 423


# -- expiry ----------------------------------------------------------------------------------

class _Area:
    def __init__(self, root):
        self.uploads_config = UploadsConfig(data_dir=str(root), expiry_hours=1, finished_record_hours=2)
        self.metrics = UploadMetrics()
        self.store = UploadStore(root)
        self.store.ensure()
        self.locks = UploadLocks()
        self.receiving_ttl = 3600
        self.finished_ttl = 7200


def _make(store, state="receiving"):
    rec = UploadRecord(id=new_upload_id(), owner="u", length=10, created=time.time(), state=state)
    store.create(rec)
    return rec


def test_cleaner_removes_expired_uploads_only(tmp_path):
    area = _Area(tmp_path / "uploads")
    old, fresh, held = _make(area.store), _make(area.store), _make(area.store)
    done = _make(area.store, state=FINISHED)
    area.locks._holds[held.id] = object()
    before = area.metrics.expired._value.get()
    now = time.time() + 3600 + GRACE_SECONDS + 5  # an hour later: receiving uploads expired, the finished record not
    removed = sweep(area, now=now)
    assert set(removed) == {old.id, fresh.id}  # "fresh" was made at the same moment: an hour on, it expired too
    assert area.store.load(held.id) is not None  # a request holds it: left alone
    assert area.store.load(done.id) is not None
    assert area.metrics.expired._value.get() == before + 2
    assert not area.store.data_path(old.id).exists()
    removed = sweep(area, now=time.time() + 7200 + GRACE_SECONDS + 5)
    assert done.id in removed


def test_metrics_live_in_their_own_registry():
    names = {m.name for m in UploadMetrics().registry.collect()}
    assert {"astrago_upload_bytes_received", "astrago_uploads_started", "astrago_uploads_finished",
            "astrago_uploads_failed", "astrago_uploads_expired"} <= names
