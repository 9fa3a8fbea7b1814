"""The AstraGo realm in Keycloak itself: the export in config/keycloak/ imported by Keycloak,
the deployment's URLs filled in (pure, against literals), and `astrago realm ...` through
Keycloak's admin API, with mistakes said in one plain sentence."""
import json
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from astrago.hub.realm.admin import (
    REALM_EXPORT,
    RealmError,
    RealmSpec,
    check_group_path,
    check_username,
    realm_representation,
)
from support.fixtures import require
from support.keycloak import BareRealm, keycloak_available
from support.platform import BrowserSession

ASTRAGO = str(Path(sys.prefix) / "bin" / "astrago")

SPEC = RealmSpec(name="ml", frontend_url="https://astrago.example.org/services/realm",
                 hub_url="https://astrago.example.org",
                 backchannel_logout_url="http://127.0.0.1:8081/hub/backchannel-logout",
                 client_secret="s3cret", access_token_ttl=120)


def run(*args, stdin=None):
    return subprocess.run([ASTRAGO, *args], capture_output=True, text=True, input=stdin, timeout=120)


@pytest.fixture(scope="module")
def realm(tmp_path_factory):
    require(keycloak_available(), "Keycloak (make test builds it)")
    r = BareRealm(tmp_path_factory.mktemp("realm"))
    yield r
    r.remove()


def test_realm_representation_fills_in_the_deployment():
    export = json.loads(REALM_EXPORT.read_text())
    rep = realm_representation(export, SPEC)
    assert rep["realm"] == "ml" and rep["attributes"]["frontendUrl"] == "https://astrago.example.org/services/realm"
    assert rep["accessTokenLifespan"] == 120 and rep["displayName"] == "AstraGo"
    hub = next(c for c in rep["clients"] if c["clientId"] == "astrago")
    assert hub["redirectUris"] == ["https://astrago.example.org/hub/oauth_callback"]
    assert hub["secret"] == "s3cret" and hub["rootUrl"] == "https://astrago.example.org"
    assert hub["attributes"]["post.logout.redirect.uris"] == (
        "https://astrago.example.org/hub/logged-out##https://astrago.example.org/hub/login"
        "##https://astrago.example.org/hub/")
    assert hub["attributes"]["backchannel.logout.url"] == "http://127.0.0.1:8081/hub/backchannel-logout"
    assert hub["attributes"]["backchannel.logout.session.required"] == "true"
    assert "frontendUrl" not in export.get("attributes", {})  # the export itself is left alone


@pytest.mark.parametrize("name", ["", "Alice", "-x", "a b", "x" * 65, "ä"])
def test_invalid_user_names_are_one_sentence(name):
    with pytest.raises(RealmError, match="not a valid user name"):
        check_username(name)


@pytest.mark.parametrize("path", ["team", "/", "//a", "/a/", "/a/../b"])
def test_invalid_group_paths_are_one_sentence(path):
    with pytest.raises(RealmError, match="write it like /team-a"):
        check_group_path(path)


def test_keycloak_imported_the_export_with_its_mappers_roles_and_groups(realm):
    api = realm.admin.api
    hub = api.get_client(api.get_client_id("astrago"))
    mappers = {m["name"]: m for m in hub["protocolMappers"]}
    assert mappers["groups"]["protocolMapper"] == "oidc-group-membership-mapper"
    assert mappers["groups"]["config"]["full.path"] == "true"
    assert mappers["audience astrago"]["config"]["included.client.audience"] == "astrago"
    assert hub["attributes"]["backchannel.logout.url"] == f"{realm.HUB_URL}/hub/backchannel-logout"
    assert {"admin", "gpu-user", "quota-admin", "fleet-admin", "astrago-auditor"} <= {
        r["name"] for r in api.get_realm_roles()}
    assert {g["path"] for g in api.get_groups()} >= {"/ml", "/astrago-admins"}
    assert api.get_client_id("astrago-cli")
    # the administrator made at the first start: the realm's admin role and its console
    users = {u["username"]: u for u in realm.admin.list_users()}
    assert "admin" in users["admin"]["realm_roles"]


def test_cli_adds_a_user_who_logs_in_with_groups_and_roles_in_the_tokens(realm):
    d = str(realm.data_dir)
    r = run("realm", "--data-dir", d, "add-user", "maria", "--email", "maria@example.org")
    assert r.returncode == 0, r.stderr
    password = r.stdout.split("Password (shown once):")[1].strip()
    assert run("realm", "--data-dir", d, "add-to-group", "maria", "/team-a/vision").returncode == 0
    assert run("realm", "--data-dir", d, "add-role", "maria", "gpu-user").returncode == 0
    listing = run("realm", "--data-dir", d, "list").stdout
    assert "maria\tgroups=/team-a/vision\troles=gpu-user" in listing
    with BrowserSession() as browser:
        tokens = realm.login(browser, "maria", password)
    access = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert access["preferred_username"] == "maria"
    assert access["groups"] == ["/team-a/vision"]  # full paths, from the group-membership mapper
    assert "gpu-user" in access["realm_access"]["roles"]


def test_cli_password_from_stdin_disable_and_mistakes(realm):
    d = str(realm.data_dir)
    name, _ = realm.add_user("pia")
    r = run("realm", "--data-dir", d, "passwd", name, "--password-stdin", stdin="long-enough-pw\n")
    assert r.returncode == 0, r.stderr
    with BrowserSession() as browser:
        assert realm.login(browser, name, "long-enough-pw")["access_token"]
    assert run("realm", "--data-dir", d, "disable", name).returncode == 0
    assert [u for u in realm.admin.list_users() if u["username"] == name][0]["enabled"] is False
    r = run("realm", "--data-dir", d, "passwd", "ghost", "--password-stdin", stdin="long-enough-pw\n")
    assert r.returncode == 1
    assert r.stderr.startswith("astrago: ") and "There is no user ghost" in r.stderr and "Traceback" not in r.stderr
    r = run("realm", "--data-dir", d, "add-user", name)
    assert r.returncode == 1 and "already exists" in r.stderr
    r = run("realm", "--data-dir", d, "add-role", name, "no-such-role")
    assert r.returncode == 1 and "no-such-role" in r.stderr and "Traceback" not in r.stderr
    r = run("realm", "--data-dir", str(realm.data_dir / "nowhere"), "list")
    assert r.returncode == 1 and "astrago up" in r.stderr
