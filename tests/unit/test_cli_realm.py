"""`astrago realm ...` manages the embedded realm; mistakes get one plain sentence."""
import json
import subprocess
import sys
from pathlib import Path

from astrago.hub.realm.store import ensure_realm

ASTRAGO = str(Path(sys.prefix) / "bin" / "astrago")


def run(*args, stdin=None):
    return subprocess.run([ASTRAGO, *args], capture_output=True, text=True, input=stdin, timeout=60)


def test_add_user_group_role_and_list(tmp_path):
    admin_pw = ensure_realm(tmp_path / "realm.json", redirect_uris=["http://127.0.0.1:8000/hub/oauth_callback"])
    assert admin_pw
    r = run("realm", "--data-dir", str(tmp_path), "add-user", "maria", "--email", "maria@example.org")
    assert r.returncode == 0, r.stderr
    assert "Password (shown once):" in r.stdout
    assert run("realm", "--data-dir", str(tmp_path), "add-to-group", "maria", "/team-a/vision").returncode == 0
    assert run("realm", "--data-dir", str(tmp_path), "add-role", "maria", "gpu-user").returncode == 0
    realm = json.loads((tmp_path / "realm.json").read_text())
    maria = realm["users"]["maria"]
    assert maria["groups"] == ["/team-a/vision"]
    assert "gpu-user" in maria["realm_roles"]
    assert maria["password"].startswith("scrypt$")
    listing = run("realm", "--data-dir", str(tmp_path), "list").stdout
    assert "maria\tgroups=/team-a/vision\troles=gpu-user" in listing


def test_password_from_stdin_and_mistakes_are_one_sentence(tmp_path):
    ensure_realm(tmp_path / "realm.json", redirect_uris=["http://127.0.0.1:8000/hub/oauth_callback"])
    r = run("realm", "--data-dir", str(tmp_path), "passwd", "ghost", "--password-stdin", stdin="long-enough-pw\n")
    assert r.returncode == 1
    assert r.stderr.startswith("astrago: ") and "ghost" in r.stderr
    assert "Traceback" not in r.stderr
    r = run("realm", "--data-dir", str(tmp_path / "nowhere"), "list")
    assert r.returncode == 1 and "astrago up" in r.stderr
