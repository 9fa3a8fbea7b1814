"""Pure parts of the teams area, against literals: names, paths, refs, manifest checksum, readability."""
import hashlib
import os

import pytest

from astrago.hub.jobs.spec import SpecError, parse_dataset_refs
from astrago.hub.teams import names
from astrago.hub.teams.manifest import Entry, manifest_checksum, manifest_text
from astrago.hub.teams.snapshot import readable_by


def test_team_names_and_posix_groups():
    assert names.posix_group("ml") == "astrago-team-ml"
    assert names.team_folder("/srv/teams", "vision-2") == "/srv/teams/vision-2"
    for bad in ("ML", "1team", "a" * 19, "ml/vision", "", "a_b"):
        with pytest.raises(names.NameError_):
            names.check_team_name(bad)


def test_dataset_paths_and_env_names():
    assert names.dataset_path("/srv/teams", "ml", "ada", "imagenet-mini", 2) == \
        "/srv/teams/.datasets/team-ml/imagenet-mini/2"
    assert names.dataset_path("/srv/teams", None, "ada", "notes", 1) == "/srv/teams/.datasets/user-ada/notes/1"
    assert names.env_name("imagenet-mini") == "ASTRAGO_DATASET_IMAGENET_MINI"
    assert names.env_name("v1.2_x") == "ASTRAGO_DATASET_V1_2_X"
    for bad in ("Images", "-x", "a/b", "x" * 64, ""):
        with pytest.raises(names.NameError_):
            names.check_dataset_name(bad)


def test_dataset_refs():
    assert names.parse_dataset_ref("imagenet-mini:2") == names.DatasetRef("imagenet-mini", 2, None)
    assert names.parse_dataset_ref("ml/tokens:10") == names.DatasetRef("tokens", 10, "ml")
    assert str(names.DatasetRef("tokens", 10, "ml")) == "ml/tokens:10"
    for bad in ("imagenet", "x:0", "x:v1", "ML/x:1"):
        with pytest.raises(names.NameError_):
            names.parse_dataset_ref(bad)
    assert parse_dataset_refs(["a:1", "ml/b:2", "a:1"]) == ("a:1", "ml/b:2")
    assert parse_dataset_refs("a:1") == ("a:1",)
    assert parse_dataset_refs(None) == ()
    with pytest.raises(SpecError):
        parse_dataset_refs(["a"])


def test_within():
    assert names.within("/srv/teams/ml/data", "/srv/teams/ml")
    assert names.within("/srv/teams/ml", "/srv/teams/ml/")
    assert not names.within("/srv/teams/ml2/data", "/srv/teams/ml")


def test_manifest_and_checksum():
    a = Entry("b/x.txt", 3, hashlib.sha256(b"abc").hexdigest())
    b = Entry("a.txt", 0, hashlib.sha256(b"").hexdigest())
    text = manifest_text([a, b])
    assert text == ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  0  a.txt\n"
                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  3  b/x.txt\n")
    assert manifest_checksum([a, b]) == hashlib.sha256(text.encode()).hexdigest() == manifest_checksum([b, a])


def test_readable_by():
    st = os.stat_result((0o100640, 0, 0, 1, 1000, 2000, 0, 0, 0, 0))
    assert readable_by(st, 1000, set())
    assert readable_by(st, 1001, {2000})
    assert not readable_by(st, 1001, {3000})
    st = os.stat_result((0o100004, 0, 0, 1, 1000, 2000, 0, 0, 0, 0))
    assert not readable_by(st, 1000, {2000})  # the owner bits decide for the owner
    assert readable_by(st, 1001, set())


def test_default_acl_bytes():
    from astrago.hub.teams.posix import default_acl_group_writable

    assert default_acl_group_writable().hex() == ("02000000" "01000700ffffffff" "04000700ffffffff" "20000000ffffffff")
