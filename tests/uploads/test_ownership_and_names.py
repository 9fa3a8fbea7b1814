"""An upload belongs to its creator; files land only in their own storage, under names they may use."""
from __future__ import annotations

import os

import pytest
import requests

from tuskit import TUS, metadata

pytestmark = pytest.mark.e2e


def test_another_user_cannot_head_patch_or_delete_an_upload(alice, bob, admin_token, platform):
    url = alice.new(8, filename="private.bin")
    assert alice.patch(url, 0, b"abcd").status_code == 204
    r = bob.head(url)
    assert r.status_code == 403
    r = bob.patch(url, 4, b"EVIL")
    assert r.status_code == 403
    assert r.json()["type"].endswith("/forbidden")
    assert bob.delete(url).status_code == 403
    r = requests.get(url, headers={"Authorization": f"token {bob.token}"}, timeout=30)
    assert r.status_code == 403
    assert alice.head(url).headers["Upload-Offset"] == "4"
    assert alice.patch(url, 4, b"efgh").status_code == 204
    assert (alice.home / "private.bin").read_bytes() == b"abcdefgh"
    assert not (bob.home / "private.bin").exists()
    audit = requests.get(f"{platform.service_url}api/audit", params={"actor": bob.name, "outcome": "denied"},
                         headers={"Authorization": f"token {admin_token}"}, timeout=30).json()["entries"]
    actions = {e["action"] for e in audit}
    assert {"uploads.head", "uploads.patch", "uploads.delete"} <= actions
    assert all(e["target"] == alice.name for e in audit if e["action"].startswith("uploads."))


def test_without_credentials_tus_requests_are_401(alice):
    url = alice.new(4, filename="anon.bin")
    assert requests.head(url, headers=TUS, timeout=30).status_code == 401
    r = requests.patch(url, headers={**TUS, "Content-Type": "application/offset+octet-stream",
                                     "Upload-Offset": "0"}, data=b"abcd", timeout=30)
    assert r.status_code == 401
    r = requests.post(alice.endpoint, headers={**TUS, "Upload-Length": "1",
                                               "Upload-Metadata": metadata({"filename": "x"})}, timeout=30)
    assert r.status_code == 401
    assert alice.head(url).headers["Upload-Offset"] == "0"


def test_a_token_without_the_uploads_scope_cannot_create(platform, alice):
    from support.platform import api_token

    token = api_token(platform, alice.session, alice.name,
                      scopes=[f"access:services!service=astrago", f"custom:astrago:read!user={alice.name}"])
    r = requests.post(alice.endpoint, headers={**TUS, "Authorization": f"token {token}", "Upload-Length": "1",
                                               "Upload-Metadata": metadata({"filename": "noscope.bin"})}, timeout=30)
    assert r.status_code == 403
    assert "custom:astrago:uploads" in r.json()["detail"]


def test_admin_may_delete_a_users_upload_and_it_is_audited(alice, admin_token, platform):
    url = alice.new(4, filename="admin-deletes.bin")
    r = requests.delete(url, headers={**TUS, "Authorization": f"token {admin_token}"}, timeout=30)
    assert r.status_code == 204
    assert alice.head(url).status_code == 404
    audit = requests.get(f"{platform.service_url}api/audit", params={"actor": "admin", "outcome": "allowed"},
                         headers={"Authorization": f"token {admin_token}"}, timeout=30).json()["entries"]
    assert any(e["action"] == "uploads.delete" and e["target"] == alice.name for e in audit)


@pytest.mark.parametrize("filename,dir", [
    ("../escape.bin", None),
    ("..", None),
    (".", None),
    ("a/b.bin", None),
    ("a\\b.bin", None),
    ("ok.bin", "../.."),
    ("ok.bin", "../../etc"),
    ("ok.bin", "/etc"),
    ("ok.bin", "data/../../x"),
    ("ok.bin", "~root"),
    ("ok.bin", "a//b"),
    ("bad\x01name", None),
    (".astrago-upload-123", None),
])
def test_traversal_and_odd_names_are_refused(alice, filename, dir):
    r = alice.create(4, filename=filename, dir=dir)
    assert r.status_code == 400, (filename, dir, r.text)
    assert r.json()["type"].endswith("/invalid-request")


def test_a_symlink_in_the_destination_is_not_followed(alice, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    home = alice.ensure_home()
    os.symlink(outside, home / "sneaky")
    r = alice.create(4, filename="x.bin", dir="sneaky")
    assert r.status_code == 409
    assert "link" in r.json()["detail"]
    os.symlink(outside / "target.bin", home / "file-link")
    r = alice.create(4, filename="file-link")  # a link where the file would go: taken, and never followed
    assert r.status_code == 409
    url = alice.new(4, filename="file-link", overwrite=True)
    assert alice.patch(url, 0, b"abcd").status_code == 204
    assert not (home / "file-link").is_symlink()
    assert (home / "file-link").read_bytes() == b"abcd"
    assert list(outside.iterdir()) == []


def test_a_link_planted_after_creation_is_refused_at_finish(alice, tmp_path):
    outside = tmp_path / "planted"
    outside.mkdir()
    home = alice.ensure_home()
    url = alice.new(4, filename="late.bin", dir="later")
    os.symlink(outside, home / "later")
    r = alice.patch(url, 0, b"abcd")
    assert r.status_code == 409
    assert list(outside.iterdir()) == []
    info = alice.info(url)
    assert info["state"] == "unplaced"
    (alice.home / "later").unlink()
    r = alice.patch(url, 4, b"")  # resuming an unplaced upload retries placing it
    assert r.status_code == 204
    assert (alice.home / "later" / "late.bin").read_bytes() == b"abcd"
    assert alice.info(url)["state"] == "finished"


def test_an_existing_file_is_not_overwritten_unless_asked(alice):
    url = alice.new(3, filename="keep.bin")
    assert alice.patch(url, 0, b"one").status_code == 204
    r = alice.create(3, filename="keep.bin")
    assert r.status_code == 409
    assert "overwrite" in r.json()["detail"]
    url = alice.new(3, filename="keep.bin", overwrite=True)
    assert alice.patch(url, 0, b"two").status_code == 204
    assert (alice.home / "keep.bin").read_bytes() == b"two"


def test_a_name_taken_while_uploading_is_not_overwritten(alice):
    home = alice.ensure_home()
    url = alice.new(3, filename="race.bin")
    (home / "race.bin").write_bytes(b"theirs")
    r = alice.patch(url, 0, b"new")
    assert r.status_code == 409
    assert (alice.home / "race.bin").read_bytes() == b"theirs"


def test_list_shows_own_uploads_and_storage(alice, bob):
    url = alice.new(5, filename="listed.bin")
    r = requests.get(alice.endpoint, headers={"Authorization": f"token {alice.token}"}, timeout=30)
    assert r.status_code == 200
    body = r.json()
    assert body["user"] == alice.name
    assert body["storage"]["root"] == str(alice.home)
    assert body["storage"]["quota_bytes"] > body["storage"]["free_bytes"] >= 0
    assert url.rsplit("/", 1)[-1] in {u["id"] for u in body["uploads"]}
    r = requests.get(alice.endpoint, params={"user": alice.name},
                     headers={"Authorization": f"token {bob.token}"}, timeout=30)
    assert r.status_code == 403
