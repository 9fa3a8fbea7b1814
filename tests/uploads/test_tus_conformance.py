"""tus 1.0.0 conformance of the AstraGo upload service, one test per protocol rule, on the real platform."""
from __future__ import annotations

import base64
import hashlib
import os
import socket
import time
import zlib
from email.utils import parsedate_to_datetime
from urllib.parse import urlparse

import pytest
import requests

from tuskit import OCTET, TUS, age, metadata, sha256_file, upload_id

pytestmark = pytest.mark.e2e

EXTENSIONS = {"creation", "creation-with-upload", "creation-defer-length", "expiration", "checksum",
              "termination", "concatenation"}


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


# -- core protocol ----------------------------------------------------------------

def test_options_advertises_exactly_what_is_implemented(platform):
    r = requests.options(f"{platform.service_url}api/uploads/", timeout=30)
    assert r.status_code == 204
    assert r.headers["Tus-Version"] == "1.0.0"
    assert set(r.headers["Tus-Extension"].split(",")) == EXTENSIONS
    assert int(r.headers["Tus-Max-Size"]) > 0
    assert set(r.headers["Tus-Checksum-Algorithm"].split(",")) == {"sha1", "sha256", "md5", "crc32"}


def test_wrong_or_missing_tus_version_is_412_with_tus_version(alice):
    for version in ("0.2.2", None):
        h = alice.headers(Upload_Length="3", Upload_Metadata=metadata({"filename": "v.bin"}))
        if version is None:
            del h["Tus-Resumable"]
        else:
            h["Tus-Resumable"] = version
        r = requests.post(alice.endpoint, headers=h, timeout=30)
        assert r.status_code == 412
        assert r.headers["Tus-Version"] == "1.0.0"
        assert "Location" not in r.headers


def test_every_response_carries_tus_resumable(alice):
    url = alice.new(4, filename="every.bin")
    responses = [alice.head(url), alice.patch(url, 0, b"ab"), alice.patch(url, 9, b"x"),
                 alice.head(url.replace(upload_id(url), "0" * 32))]
    for r in responses:
        assert r.headers["Tus-Resumable"] == "1.0.0", (r.status_code, r.headers)


def test_head_reports_offset_length_metadata_and_no_store(alice):
    url = alice.new(10, filename="head.bin", extra_meta={"note": "ünï"})
    alice.patch(url, 0, b"0123")
    r = alice.head(url)
    assert r.status_code == 200
    assert r.headers["Upload-Offset"] == "4"
    assert r.headers["Upload-Length"] == "10"
    assert r.headers["Cache-Control"] == "no-store"
    assert r.content == b""
    meta = dict(pair.split(" ") for pair in r.headers["Upload-Metadata"].split(","))
    assert base64.b64decode(meta["note"]).decode() == "ünï"
    assert base64.b64decode(meta["filename"]).decode() == "head.bin"


def test_head_of_unknown_upload_is_404_without_body(alice):
    r = alice.head(f"{alice.endpoint}{'a' * 32}")
    assert r.status_code == 404
    assert r.content == b""


def test_patch_appends_and_answers_204_with_new_offset(alice):
    url = alice.new(6, filename="append.bin")
    r = alice.patch(url, 0, b"abc")
    assert r.status_code == 204
    assert r.headers["Upload-Offset"] == "3"
    r = alice.patch(url, 3, b"def")
    assert r.status_code == 204
    assert r.headers["Upload-Offset"] == "6"
    assert (alice.home / "append.bin").read_bytes() == b"abcdef"


def test_patch_with_wrong_content_type_is_415_and_writes_nothing(alice, upload_store):
    url = alice.new(4, filename="ctype.bin")
    r = alice.patch(url, 0, b"abcd", Content_Type="application/octet-stream")
    assert r.status_code == 415
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert alice.head(url).headers["Upload-Offset"] == "0"
    assert (upload_store / f"{upload_id(url)}.part").stat().st_size == 0


def test_patch_offset_mismatch_is_409_and_writes_nothing(alice, upload_store):
    url = alice.new(8, filename="mismatch.bin")
    assert alice.patch(url, 0, b"abcd").status_code == 204
    for wrong in (0, 2, 6):
        r = alice.patch(url, wrong, b"XXXX")
        assert r.status_code == 409
        assert r.headers["Upload-Offset"] == "4"
    assert alice.head(url).headers["Upload-Offset"] == "4"
    assert (upload_store / f"{upload_id(url)}.part").read_bytes() == b"abcd"


def test_patch_without_upload_offset_is_400(alice):
    url = alice.new(4, filename="nooffset.bin")
    h = alice.headers(Content_Type=OCTET)
    r = requests.patch(url, headers=h, data=b"ab", timeout=30)
    assert r.status_code == 400
    assert alice.head(url).headers["Upload-Offset"] == "0"


def test_patch_longer_than_the_upload_is_413_and_writes_nothing(alice):
    url = alice.new(4, filename="toolong.bin")
    r = alice.patch(url, 0, b"abcdef")
    assert r.status_code == 413
    assert alice.head(url).headers["Upload-Offset"] == "0"


def test_patch_of_a_complete_upload_with_more_bytes_is_refused(alice):
    url = alice.new(2, filename="complete.bin")
    assert alice.patch(url, 0, b"ab").status_code == 204
    r = alice.patch(url, 2, b"c")
    assert r.status_code in (409, 413)
    assert (alice.home / "complete.bin").read_bytes() == b"ab"


# -- creation ---------------------------------------------------------------------

def test_creation_answers_201_with_location_and_expiry(alice):
    r = alice.create(5, filename="created.bin")
    assert r.status_code == 201
    location = r.headers["Location"]
    assert urlparse(location).path.startswith("/services/astrago/api/uploads/")
    assert alice.head(alice.url(location)).status_code == 200


def test_creation_without_length_or_deferral_is_400(alice):
    h = alice.headers(Upload_Metadata=metadata({"filename": "nolen.bin"}))
    r = requests.post(alice.endpoint, headers=h, timeout=30)
    assert r.status_code == 400
    assert "Upload-Length" in r.json()["detail"]


def test_creation_without_filename_is_400(alice):
    r = alice.create(3, filename=None)
    assert r.status_code == 400
    assert "filename" in r.json()["detail"]


def test_creation_larger_than_max_size_is_413(alice, platform):
    max_size = int(requests.options(f"{platform.service_url}api/uploads/", timeout=30).headers["Tus-Max-Size"])
    r = alice.create(max_size + 1, filename="huge.bin")
    assert r.status_code == 413


def test_creation_over_the_storage_quota_is_413(alice):
    r = alice.create(900 * 1024 ** 3, filename="overquota.bin")  # default quota is 100 GiB, max size 1 TiB
    assert r.status_code == 413
    body = r.json()
    assert body["type"].endswith("/quota-exceeded")
    assert "quota" in body["detail"]


def test_creation_with_upload_stores_the_body(alice):
    r = alice.create(6, filename="cwu.bin", body=b"hello!")
    assert r.status_code == 201
    assert r.headers["Upload-Offset"] == "6"
    assert (alice.home / "cwu.bin").read_bytes() == b"hello!"


def test_creation_with_partial_body_then_patch(alice):
    r = alice.create(6, filename="cwu2.bin", body=b"hel")
    assert r.status_code == 201
    assert r.headers["Upload-Offset"] == "3"
    url = alice.url(r.headers["Location"])
    assert alice.patch(url, 3, b"lo!").status_code == 204
    assert (alice.home / "cwu2.bin").read_bytes() == b"hello!"


# -- creation-defer-length -------------------------------------------------------

def test_deferred_length_is_announced_then_set_by_patch(alice):
    url = alice.new(None, filename="deferred.bin")
    r = alice.head(url)
    assert r.headers["Upload-Defer-Length"] == "1"
    assert "Upload-Length" not in r.headers
    assert alice.patch(url, 0, b"abc").status_code == 204
    r = alice.patch(url, 3, b"def", Upload_Length="6")
    assert r.status_code == 204
    assert r.headers["Upload-Offset"] == "6"
    assert alice.head(url).headers["Upload-Length"] == "6"
    assert (alice.home / "deferred.bin").read_bytes() == b"abcdef"


def test_deferred_length_running_total_over_quota_is_413(alice):
    url = alice.new(None, filename="deferred-big.bin")
    r = alice.patch(url, 0, b"abc", Upload_Length=str(900 * 1024 ** 3))
    assert r.status_code == 413
    assert alice.head(url).headers["Upload-Defer-Length"] == "1"
    assert alice.head(url).headers["Upload-Offset"] == "0"


# -- expiration ------------------------------------------------------------------

def test_upload_expires_is_an_http_date_in_the_future(alice):
    r = alice.create(4, filename="expires.bin")
    url = alice.url(r.headers["Location"])
    for resp in (r, alice.patch(url, 0, b"ab"), alice.head(url)):
        when = parsedate_to_datetime(resp.headers["Upload-Expires"])
        assert when.timestamp() > time.time()
        assert resp.headers["Upload-Expires"].endswith("GMT")


def test_expired_upload_is_410_then_404(alice, upload_store):
    url = alice.new(4, filename="expired.bin")
    uid = upload_id(url)
    age([upload_store / f"{uid}.part", upload_store / f"{uid}.info"], 3 * 24 * 3600)
    r = alice.patch(url, 0, b"ab")
    assert r.status_code == 410
    assert r.json()["type"].endswith("/gone")
    assert alice.head(url).status_code == 404
    assert not (upload_store / f"{uid}.part").exists()


def test_expired_upload_answers_head_with_410(alice, upload_store):
    url = alice.new(4, filename="expired2.bin")
    uid = upload_id(url)
    age([upload_store / f"{uid}.part", upload_store / f"{uid}.info"], 3 * 24 * 3600)
    assert alice.head(url).status_code == 410


# -- checksum --------------------------------------------------------------------

@pytest.mark.parametrize("algo", ["sha1", "sha256", "md5", "crc32"])
def test_checksum_that_matches_is_accepted(alice, algo):
    data = os.urandom(3000)
    digest = zlib.crc32(data).to_bytes(4, "big") if algo == "crc32" else hashlib.new(algo, data).digest()
    url = alice.new(len(data), filename=f"sum-{algo}.bin")
    r = alice.patch(url, 0, data, Upload_Checksum=f"{algo} {b64(digest)}")
    assert r.status_code == 204
    assert (alice.home / f"sum-{algo}.bin").read_bytes() == data


def test_checksum_mismatch_is_460_and_keeps_nothing_of_the_body(alice, upload_store):
    url = alice.new(8, filename="badsum.bin")
    assert alice.patch(url, 0, b"abcd").status_code == 204
    r = alice.patch(url, 4, b"efgh", Upload_Checksum=f"sha1 {b64(hashlib.sha1(b'other').digest())}")
    assert r.status_code == 460
    assert r.json()["type"].endswith("/checksum-mismatch")
    assert alice.head(url).headers["Upload-Offset"] == "4"
    assert (upload_store / f"{upload_id(url)}.part").read_bytes() == b"abcd"


def test_unknown_checksum_algorithm_is_400(alice):
    url = alice.new(4, filename="unknownsum.bin")
    r = alice.patch(url, 0, b"abcd", Upload_Checksum="sha3-512 AAAA")
    assert r.status_code == 400
    assert alice.head(url).headers["Upload-Offset"] == "0"


# -- termination -----------------------------------------------------------------

def test_delete_terminates_the_upload_and_its_data(alice, upload_store):
    url = alice.new(8, filename="terminated.bin")
    alice.patch(url, 0, b"abcd")
    r = alice.delete(url)
    assert r.status_code == 204
    assert alice.head(url).status_code == 404
    assert not (upload_store / f"{upload_id(url)}.part").exists()
    assert not (upload_store / f"{upload_id(url)}.info").exists()
    assert not (alice.home / "terminated.bin").exists()


# -- concatenation ---------------------------------------------------------------

def _partial(alice, data: bytes) -> str:
    r = alice.create(len(data), filename=None, headers={"Upload-Concat": "partial"})
    assert r.status_code == 201, r.text
    url = alice.url(r.headers["Location"])
    assert alice.patch(url, 0, data).status_code == 204
    assert alice.head(url).headers["Upload-Concat"] == "partial"
    return url


def test_concatenation_of_partials_makes_the_final_file(alice, upload_store):
    a, b = _partial(alice, b"first-"), _partial(alice, b"second")
    final = f"final;{urlparse(a).path} {b}"
    h = alice.headers(Upload_Concat=final, Upload_Metadata=metadata({"filename": "concat.bin", "dir": "cc"}))
    r = requests.post(alice.endpoint, headers=h, timeout=30)
    assert r.status_code == 201, r.text
    url = alice.url(r.headers["Location"])
    head = alice.head(url)
    assert head.headers["Upload-Concat"].startswith("final;")
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == "12"
    assert (alice.home / "cc" / "concat.bin").read_bytes() == b"first-second"
    assert not (upload_store / f"{upload_id(a)}.part").exists()


def test_patch_on_a_final_upload_is_403(alice):
    a = _partial(alice, b"x")
    h = alice.headers(Upload_Concat=f"final;{a}", Upload_Metadata=metadata({"filename": "final403.bin"}))
    r = requests.post(alice.endpoint, headers=h, timeout=30)
    assert r.status_code == 201, r.text
    r = alice.patch(alice.url(r.headers["Location"]), 1, b"y")
    assert r.status_code == 403


def test_final_with_an_unfinished_partial_is_400(alice):
    r = alice.create(10, filename=None, headers={"Upload-Concat": "partial"})
    part = alice.url(r.headers["Location"])
    alice.patch(part, 0, b"abc")
    h = alice.headers(Upload_Concat=f"final;{part}", Upload_Metadata=metadata({"filename": "unfinished.bin"}))
    r = requests.post(alice.endpoint, headers=h, timeout=30)
    assert r.status_code == 400
    assert "not complete" in r.json()["detail"]
    assert not (alice.home / "unfinished.bin").exists()


def test_partial_of_another_user_cannot_be_concatenated(alice, bob):
    part = _partial(alice, b"mine")
    h = bob.headers(Upload_Concat=f"final;{part}", Upload_Metadata=metadata({"filename": "stolen.bin"}))
    r = requests.post(bob.endpoint, headers=h, timeout=30)
    assert r.status_code == 403
    assert not (bob.home / "stolen.bin").exists()


# -- finishing and durability ----------------------------------------------------

def test_finished_file_lands_in_the_owners_storage_owned_by_their_account(alice):
    import pwd

    data = os.urandom(200_000)
    url = alice.new(len(data), filename="owned.bin", dir="datasets/2024")
    offset = 0
    for i in range(0, len(data), 65536):
        piece = data[i:i + 65536]
        r = alice.patch(url, offset, piece)
        assert r.status_code == 204
        offset += len(piece)
    target = alice.home / "datasets" / "2024" / "owned.bin"
    assert sha256_file(target) == hashlib.sha256(data).hexdigest()
    account = pwd.getpwnam(f"astrago-{alice.name}")
    for path in (target, target.parent, target.parent.parent):
        assert path.stat().st_uid == account.pw_uid
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".astrago-upload-")]
    info = alice.info(url)
    assert info["state"] == "finished"
    assert info["path"] == "datasets/2024/owned.bin"
    assert alice.head(url).headers["Upload-Offset"] == str(len(data))


def test_a_new_request_takes_over_from_a_stalled_connection(alice, platform):
    """The lock cannot wedge: a PATCH whose client vanished mid-body is interrupted by the next request."""
    data = os.urandom(1 << 20)
    url = alice.new(len(data), filename="takeover.bin")
    path = urlparse(url).path
    stalled = socket.create_connection(("127.0.0.1", platform.port))
    stalled.settimeout(60)
    head = (f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1:{platform.port}\r\nAuthorization: token {alice.token}\r\n"
            f"Tus-Resumable: 1.0.0\r\nContent-Type: {OCTET}\r\nUpload-Offset: 0\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode()
    stalled.sendall(head + data[: 300_000])  # ... and then nothing more, connection left open
    part = platform.data_dir / "uploads" / f"{upload_id(url)}.part"
    deadline = time.monotonic() + 20
    while part.stat().st_size == 0 and time.monotonic() < deadline:  # the stalled PATCH is being served
        time.sleep(0.05)
    r = alice.head(url)  # a HEAD never interrupts the PATCH (it may still be alive)
    assert r.status_code == 200
    offset = int(r.headers["Upload-Offset"])
    assert 0 <= offset <= 300_000
    deadline = time.monotonic() + 30
    while True:  # a PATCH gets 423 while the stalled one might be alive, then takes over from it
        r = alice.head(url)
        offset = int(r.headers["Upload-Offset"])
        r = alice.patch(url, offset, data[offset:])
        if r.status_code == 204 or time.monotonic() > deadline:
            break
        assert r.status_code in (409, 423), r.text
        assert r.headers["Content-Type"].startswith("application/problem+json")
        time.sleep(0.5)
    assert r.status_code == 204, r.text
    try:  # the server let go of the stalled request by closing its connection
        rest = stalled.recv(65536)
        while rest and b"\r\n\r\n" not in rest:
            rest += stalled.recv(65536)
        assert not rest or rest.startswith(b"HTTP/1.1 ")
    except (ConnectionResetError, TimeoutError):
        pass
    stalled.close()
    assert sha256_file(alice.home / "takeover.bin") == hashlib.sha256(data).hexdigest()


def test_dropped_connection_keeps_what_arrived_and_resumes(alice, platform):
    data = os.urandom(3 << 20)
    url = alice.new(len(data), filename="dropped.bin")
    path = urlparse(url).path
    conn = socket.create_connection(("127.0.0.1", platform.port))
    conn.sendall((f"PATCH {path} HTTP/1.1\r\nHost: x\r\nAuthorization: token {alice.token}\r\n"
                  f"Tus-Resumable: 1.0.0\r\nContent-Type: {OCTET}\r\nUpload-Offset: 0\r\n"
                  f"Content-Length: {len(data)}\r\n\r\n").encode() + data[: 2 << 20])
    conn.shutdown(socket.SHUT_RDWR)
    conn.close()
    for _ in range(20):  # as tus clients do: HEAD, PATCH the rest; 409/423 mean ask again
        r = alice.head(url)
        assert (r.status_code, r.headers.get("Tus-Resumable")) == (200, "1.0.0"), dict(r.headers)  # never HTML
        offset = int(r.headers["Upload-Offset"])
        assert offset <= 2 << 20
        r = alice.patch(url, offset, data[offset:])
        assert r.headers.get("Tus-Resumable") == "1.0.0", (r.status_code, dict(r.headers), r.text[:300])
        if r.status_code == 204:
            break
        assert r.status_code in (409, 423), r.text
        time.sleep(0.5)
    assert r.status_code == 204, r.text
    assert sha256_file(alice.home / "dropped.bin") == hashlib.sha256(data).hexdigest()


def test_full_disk_during_patch_leaves_a_consistent_upload_that_resumes(alice, platform, upload_store):
    """A small tmpfs over the upload store: the PATCH runs out of space, the upload stays resumable."""
    if os.system(f"mount -t tmpfs -o size=1m,mode=0700 astrago-test-tmpfs {upload_store}") != 0:
        pytest.fail("could not mount a tmpfs over the upload store (this test runs as root)")
    try:
        data = os.urandom(3 << 20)
        url = alice.new(len(data), filename="fulldisk.bin")
        r = alice.patch(url, 0, data)
        assert r.status_code == 507
        assert r.json()["type"].endswith("/insufficient-storage")
        offset = int(alice.head(url).headers["Upload-Offset"])
        assert offset < len(data)
        assert (upload_store / f"{upload_id(url)}.part").read_bytes() == data[:offset]
        assert os.system(f"mount -o remount,size=16m {upload_store}") == 0  # space is freed
        r = alice.patch(url, offset, data[offset:])
        assert r.status_code == 204, r.text
        assert sha256_file(alice.home / "fulldisk.bin") == hashlib.sha256(data).hexdigest()
    finally:
        os.system(f"umount {upload_store}")
