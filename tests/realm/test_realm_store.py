"""The Python realm store (hub/realm/store.py) and its password hashes, checked in Node too."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import subprocess
import uuid

import pytest

from astrago.hub.realm import store
from astrago.hub.realm.store import RealmError
from realmkit import NODE, REPO

PASSWORD_MJS = REPO / "hub" / "realm" / "password.mjs"


@pytest.fixture
def realm_file(tmp_path):
    path = tmp_path / "data" / "realm.json"
    store.ensure_realm(
        path,
        redirect_uris=["http://127.0.0.1:8000/hub/oauth_callback"],
        post_logout_redirect_uris=["http://127.0.0.1:8000/hub/login"],
    )
    return path


def node_verify(pairs: list[tuple[str, str]]) -> list[bool]:
    """Run password.mjs's verifyPassword in Node on (password, hash) pairs."""
    script = (
        f"import {{ verifyPassword, verifyPasswordSync }} from {json.dumps(PASSWORD_MJS.as_uri())};\n"
        "const pairs = JSON.parse(process.argv[1]);\n"
        "const out = [];\n"
        "for (const [pw, hash] of pairs) {\n"
        "  const a = await verifyPassword(pw, hash);\n"
        "  if (a !== verifyPasswordSync(pw, hash)) throw new Error('sync and async disagree');\n"
        "  out.push(a);\n"
        "}\n"
        "console.log(JSON.stringify(out));\n"
    )
    r = subprocess.run(
        [NODE, "--input-type=module", "-e", script, json.dumps(pairs)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    return json.loads(r.stdout)


def test_python_hashes_verify_in_node(realm_file):
    hashed = store.hash_password("pässwörd 🔑 long enough")
    scheme, n, r, p, salt, key = hashed.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    import base64

    assert len(base64.b64decode(salt)) == 16 and len(base64.b64decode(key)) == 64
    stored = store.read_realm(realm_file)["users"]["admin"]["password"]
    assert node_verify(
        [
            ["pässwörd 🔑 long enough", hashed],
            ["pässwörd 🔑 long enougH", hashed],
            ["", hashed],
            ["anything", "scrypt$16384$8$1$bm90LWEtaGFzaA==$"],
            ["anything", "plain"],
            ["wrong", stored],
        ]
    ) == [True, False, False, False, False, False]
    assert store.verify_password("pässwörd 🔑 long enough", hashed)
    assert not store.verify_password("nope", hashed)


def test_node_hashes_verify_in_python():
    script = (
        f"import {{ hashPassword }} from {json.dumps(PASSWORD_MJS.as_uri())};\n"
        "console.log(await hashPassword('from node 123'));\n"
    )
    r = subprocess.run([NODE, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60, check=True)
    hashed = r.stdout.strip()
    assert store.verify_password("from node 123", hashed)
    assert not store.verify_password("from node 124", hashed)


def test_ensure_realm_creates_admin_once(tmp_path):
    path = tmp_path / "sub" / "realm.json"
    password = store.ensure_realm(path, redirect_uris=["http://h:8000/hub/oauth_callback"],
                                  post_logout_redirect_uris=["http://h:8000/hub/login"])
    assert isinstance(password, str) and len(password) >= 16
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = store.read_realm(path)
    admin = data["users"]["admin"]
    uuid.UUID(admin["id"], version=4)
    assert admin["enabled"] is True and admin["realm_roles"] == ["admin"]
    assert admin["client_roles"] == {"astrago": []}
    assert store.verify_password(password, admin["password"])
    assert password not in path.read_text()
    assert data["roles"] == ["admin"] and data["realm"] == "astrago"
    secret = store.client_secret(path, "astrago")
    assert len(secret) >= 32
    # second call: no password, same admin, same secret
    assert store.ensure_realm(path, redirect_uris=["http://h:8000/hub/oauth_callback"],
                              post_logout_redirect_uris=["http://h:8000/hub/login"]) is None
    assert store.read_realm(path)["users"]["admin"] == admin
    assert store.client_secret(path, "astrago") == secret
    # changed redirect URIs are updated in place
    assert store.ensure_realm(path, redirect_uris=["https://hub.example/hub/oauth_callback"],
                              post_logout_redirect_uris=["https://hub.example/hub/login"]) is None
    client = store.read_realm(path)["clients"]["astrago"]
    assert client["redirect_uris"] == ["https://hub.example/hub/oauth_callback"]
    assert client["post_logout_redirect_uris"] == ["https://hub.example/hub/login"]
    assert client["secret"] == secret
    with pytest.raises(RealmError, match="redirect URI"):
        store.ensure_realm(path, redirect_uris=["javascript:alert(1)"])


def test_add_user_and_edits(realm_file):
    password = store.add_user(realm_file, "bob", email="bob@example.org", first_name="Bob", last_name="B")
    assert len(password) >= 16
    user = store.read_realm(realm_file)["users"]["bob"]
    assert user["email"] == "bob@example.org" and user["first_name"] == "Bob" and user["enabled"] is True
    assert store.verify_password(password, user["password"])
    assert store.add_user(realm_file, "carol", password="carols password") == "carols password"
    with pytest.raises(RealmError, match="already exists"):
        store.add_user(realm_file, "bob")

    new = store.set_password(realm_file, "bob")
    assert new != password
    assert store.verify_password(new, store.read_realm(realm_file)["users"]["bob"]["password"])
    assert store.set_password(realm_file, "bob", "chosen password") == "chosen password"
    with pytest.raises(RealmError, match="at least 8"):
        store.set_password(realm_file, "bob", "short")

    store.add_to_group(realm_file, "bob", "/team-a/vision/detection")
    store.add_to_group(realm_file, "bob", "/team-a/vision/detection")  # idempotent
    data = store.read_realm(realm_file)
    assert data["groups"] == ["/team-a", "/team-a/vision", "/team-a/vision/detection"]
    assert data["users"]["bob"]["groups"] == ["/team-a/vision/detection"]
    store.remove_from_group(realm_file, "bob", "/team-a/vision/detection")
    assert store.read_realm(realm_file)["users"]["bob"]["groups"] == []
    with pytest.raises(RealmError, match="not a member"):
        store.remove_from_group(realm_file, "bob", "/team-a")

    store.add_role(realm_file, "bob", "gpu-user")
    store.add_role(realm_file, "bob", "viewer", client_id="astrago")
    data = store.read_realm(realm_file)
    assert "gpu-user" in data["roles"]
    assert data["users"]["bob"]["realm_roles"] == ["gpu-user"]
    assert data["users"]["bob"]["client_roles"] == {"astrago": ["viewer"]}
    with pytest.raises(RealmError, match="No client 'other'"):
        store.add_role(realm_file, "bob", "x", client_id="other")
    store.remove_role(realm_file, "bob", "gpu-user")
    store.remove_role(realm_file, "bob", "viewer", client_id="astrago")
    with pytest.raises(RealmError, match="does not have the role"):
        store.remove_role(realm_file, "bob", "gpu-user")
    user = store.read_realm(realm_file)["users"]["bob"]
    assert user["realm_roles"] == [] and user["client_roles"] == {"astrago": []}

    store.set_enabled(realm_file, "bob", False)
    assert store.read_realm(realm_file)["users"]["bob"]["enabled"] is False
    store.set_enabled(realm_file, "bob", True)
    assert store.read_realm(realm_file)["users"]["bob"]["enabled"] is True

    store.delete_user(realm_file, "bob")
    assert "bob" not in store.read_realm(realm_file)["users"]
    assert stat.S_IMODE(realm_file.stat().st_mode) == 0o600
    # no temporary files are left behind
    assert sorted(p.name for p in realm_file.parent.iterdir()) == ["realm.json", "realm.json.lock"]


def test_unknown_user_error_says_what_to_do(realm_file):
    with pytest.raises(RealmError) as e:
        store.set_password(realm_file, "bob")
    assert str(e.value) == "No user 'bob' in realm 'astrago'. Add one with: astrago realm add-user bob"
    for call in (
        lambda: store.add_to_group(realm_file, "bob", "/g"),
        lambda: store.add_role(realm_file, "bob", "r"),
        lambda: store.set_enabled(realm_file, "bob", False),
        lambda: store.delete_user(realm_file, "bob"),
    ):
        with pytest.raises(RealmError, match="No user 'bob'"):
            call()
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize(
    "username",
    ["", "Bob", "1bob", "-bob", "bob smith", "bob/x", "a" * 33, "bob\n", "böb", "_bob", ".bob", "root;rm"],
)
def test_invalid_usernames_raise(realm_file, username):
    with pytest.raises(RealmError, match="Invalid username"):
        store.add_user(realm_file, username)
    assert set(store.read_realm(realm_file)["users"]) == {"admin"}


@pytest.mark.parametrize("username", ["a", "bob", "b0b", "bob.smith", "bob_smith", "bob-smith", "a" * 32])
def test_valid_usernames(realm_file, username):
    store.add_user(realm_file, username)
    assert username in store.read_realm(realm_file)["users"]


@pytest.mark.parametrize(
    "group", ["", "team", "/", "//a", "/a/", "/a//b", "/a b", "/../x", "/.hidden", "a/b", "/a/b\n", "/" + "x" * 300]
)
def test_invalid_group_paths_raise(realm_file, group):
    with pytest.raises(RealmError, match="Invalid group path"):
        store.add_to_group(realm_file, "admin", group)
    assert store.read_realm(realm_file)["groups"] == []


def test_other_validation(realm_file):
    with pytest.raises(RealmError, match="Invalid email"):
        store.add_user(realm_file, "dave", email="not an email")
    with pytest.raises(RealmError, match="Invalid role"):
        store.add_role(realm_file, "admin", "bad role")
    with pytest.raises(RealmError, match="at least 8"):
        store.add_user(realm_file, "dave", password="short")
    assert "dave" not in store.read_realm(realm_file)["users"]


def test_missing_realm_file(tmp_path):
    with pytest.raises(RealmError, match="No realm file at"):
        store.read_realm(tmp_path / "nope.json")
    with pytest.raises(RealmError, match="No realm file at"):
        store.add_user(tmp_path / "nope.json", "bob")


def _add_users(args):
    path, prefix, count = args
    for i in range(count):
        store.add_user(path, f"{prefix}{i}", password="same password")
        store.add_to_group(path, f"{prefix}{i}", f"/{prefix}")
    return count


def test_concurrent_add_user_loses_nothing(realm_file):
    workers, each = 6, 5
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers) as pool:
        done = pool.map(_add_users, [(str(realm_file), f"p{w}x", each) for w in range(workers)])
    assert sum(done) == workers * each
    data = store.read_realm(realm_file)
    expected = {f"p{w}x{i}" for w in range(workers) for i in range(each)}
    assert expected <= set(data["users"])
    assert len(data["users"]) == workers * each + 1
    assert all(data["users"][u]["groups"] == [f"/{u[:3]}"] for u in expected)
    assert sorted(data["groups"]) == sorted(f"/p{w}x" for w in range(workers))
    assert len({data["users"][u]["id"] for u in expected}) == workers * each
    assert stat.S_IMODE(os.stat(realm_file).st_mode) == 0o600
