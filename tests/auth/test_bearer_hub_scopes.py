"""A Keycloak bearer caller at the AstraGo service gets exactly the scopes JupyterHub computes for
them: one RBAC implementation (astrago.hub.auth.bearer, through short-lived hub tokens).

A real `astrago up` (hub, proxy, service) with its realm in the session's Keycloak, driven over
HTTP. Its hub loads an operator's config file on top of AstraGo's, as a deployment would: a role
AstraGo does not know (`quota-steward`, granting `custom:astrago:quota:admin`) is defined in
`load_roles` and handed to members of the Keycloak group /ml/stewards through the authenticator's
`group_roles`. `astrago up` has no flag for such a file, so this harness starts it with its
CONFIG_FILE pointed at the operator's file, which loads AstraGo's own first (`load_subconfig`).
The service's own config file (`<data dir>/astrago_service_config.py`) keeps a user's scopes
SCOPES_TTL seconds, lets bridge tokens live HUB_TOKEN_TTL seconds and keeps at most CACHE_USERS
users (short, so the bounds show within a test).
"""
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path

import pytest
import requests

from support.fixtures import new_platform
from support.platform import REPO, BrowserSession, RunningPlatform, api_token, login

from ssokit import hub_user, own_scopes, realm_tokens, require

SCOPES_TTL = 12
HUB_TOKEN_TTL = 20
CACHE_USERS = 2
REFRESH_AGE = 3  # seconds: users' Keycloak tokens (groups, roles) are refreshed once this much has passed
RENEW_MARGIN = 5  # astrago.hub.auth.bearer.RENEW_MARGIN
STEWARD_GROUP = "/ml/stewards"
QUOTA_ADMIN = "custom:astrago:quota:admin"
BRIDGE_NOTE = "astrago bearer bridge"

OPERATOR_CONFIG = """\
c = get_config()  # noqa: F821
load_subconfig({astrago!r})  # noqa: F821 - AstraGo's embedded configuration first
c.JupyterHub.load_roles = c.JupyterHub.load_roles + [{{
    "name": "quota-steward",
    "description": "An operator's own role: sets quotas (AstraGo does not define it)",
    "scopes": [{scope!r}],
}}]
c.KeycloakAuthenticator.group_roles = {{{group!r}: ["quota-steward"]}}
"""

SERVICE_CONFIG = f"""\
c = get_config()  # noqa: F821
c.KeycloakBearerConfig.scopes_ttl = {SCOPES_TTL}
c.KeycloakBearerConfig.hub_token_ttl = {HUB_TOKEN_TTL}
c.KeycloakBearerConfig.cache_users = {CACHE_USERS}
"""

#: `astrago up`, with the hub's config file given as the first argument
LAUNCH = ("import sys; from astrago.hub.cli import main, up; up.CONFIG_FILE = sys.argv.pop(1); "
          "sys.exit(main(sys.argv[1:]))")


@dataclass
class OperatorConfiguredPlatform(RunningPlatform):
    config_file: str = ""

    def command(self) -> list[str]:
        return [sys.executable, "-c", LAUNCH, self.config_file, *super().command()[1:]]


@pytest.fixture(scope="module")
def hub():
    require(os.geteuid() == 0, "root (the local spawner makes a system account per user)")
    tmp = Path(tempfile.mkdtemp(prefix="astrago-bearer-"))
    config = tmp / "jupyterhub_config.py"
    config.write_text(OPERATOR_CONFIG.format(
        astrago=str(REPO / "config" / "jupyterhub_config.py"), scope=QUOTA_ADMIN, group=STEWARD_GROUP.lstrip("/")))
    base = new_platform(tmp)
    base.data_dir.mkdir(parents=True)
    (base.data_dir / "astrago_service_config.py").write_text(SERVICE_CONFIG)
    p = OperatorConfiguredPlatform(**{f.name: getattr(base, f.name) for f in fields(base)}, config_file=str(config))
    p.extra_env = {"ASTRAGO_AUTH_REFRESH_AGE": str(REFRESH_AGE)}
    p.start()
    yield p
    p.stop()
    p.remove_system_accounts()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def admin_token(hub):
    session, _ = login(hub, "admin", hub.admin_password)
    return api_token(hub, session, "admin")


def _member(p, base: str, groups) -> dict:
    """A realm user who logged in to the hub: their hub token and a Keycloak access token of their own."""
    name, pw = p.add_user(base, groups=groups)
    session, r = login(p, name, pw)
    assert r.status_code == 200, r.text[:500]
    with BrowserSession() as browser:
        access = realm_tokens(p, browser, name, pw)["access_token"]
    token = api_token(p, session, name)
    return {"name": name, "token": token, "hub": {"Authorization": f"token {token}"},
            "bearer": {"Authorization": f"Bearer {access}"}}


def _get(p, path: str, headers: dict) -> requests.Response:
    return requests.get(f"{p.service_url}api/{path}", headers=headers, timeout=30)


def _whoami(p, headers: dict) -> dict:
    r = _get(p, "whoami", headers)
    assert r.status_code == 200, r.text
    return r.json()


def _bridge_tokens(p, admin_token: str, name: str) -> list[dict]:
    r = requests.get(f"{p.url}/hub/api/users/{name}/tokens", headers={"Authorization": f"token {admin_token}"},
                     timeout=30)
    assert r.status_code == 200, r.text
    return [t for t in r.json()["api_tokens"] if t["note"] == BRIDGE_NOTE]


def _eventually(what: str, check, timeout: float = 15):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, what
            return value
        time.sleep(0.5)


def test_a_role_only_in_load_roles_works_for_bearer_callers_as_for_hub_tokens(hub, admin_token):
    p = hub
    steward = _member(p, "stella", [STEWARD_GROUP])
    plain = _member(p, "paul", ["/ml"])
    assert "quota-steward" in hub_user(p, admin_token, steward["name"])["roles"]  # given by the authenticator

    by_bearer, by_hub = _whoami(p, steward["bearer"]), _whoami(p, steward["hub"])
    assert by_bearer == by_hub  # name, kind, admin, groups, scopes, astrago_admin: all the same
    assert QUOTA_ADMIN in by_bearer["scopes"] and by_bearer["name"] == steward["name"]
    assert _get(p, "quotas", steward["bearer"]).status_code == 200
    assert _get(p, "quotas", steward["hub"]).status_code == 200

    assert _whoami(p, plain["bearer"]) == _whoami(p, plain["hub"])
    for headers in (plain["bearer"], plain["hub"]):
        r = _get(p, "quotas", headers)
        assert r.status_code == 403, r.text
        assert r.headers["Content-Type"].startswith("application/problem+json")
        assert r.json()["type"].endswith("forbidden") and QUOTA_ADMIN in r.json()["detail"]


def test_scopes_taken_away_in_the_hub_leave_bearer_calls_within_the_cache_bound(hub, admin_token):
    p = hub
    steward = _member(p, "sofia", [STEWARD_GROUP])
    read_at = time.monotonic()  # the service's read of her scopes is no earlier than this
    assert _get(p, "quotas", steward["bearer"]).status_code == 200

    p.realm_admin.remove_from_group(steward["name"], STEWARD_GROUP)
    time.sleep(REFRESH_AGE + 0.5)
    # her next hub request refreshes her Keycloak tokens: the hub takes the role away
    _eventually("the hub took quota-steward away",
                lambda: QUOTA_ADMIN not in own_scopes(p, steward["token"]))
    assert "quota-steward" not in hub_user(p, admin_token, steward["name"])["roles"]
    if time.monotonic() < read_at + SCOPES_TTL - 1:  # still within the bound: the service did not ask again
        assert QUOTA_ADMIN in _whoami(p, steward["bearer"])["scopes"]

    time.sleep(max(0.0, read_at + SCOPES_TTL + 0.5 - time.monotonic()))
    assert QUOTA_ADMIN not in _whoami(p, steward["bearer"])["scopes"]
    r = _get(p, "quotas", steward["bearer"])
    assert r.status_code == 403, r.text


def test_bridge_tokens_are_few_short_lived_and_bounded_in_number(hub, admin_token):
    p = hub
    first, second, third = (_member(p, base, ["/ml"]) for base in ("ada", "bo", "cy"))

    for _ in range(3):
        assert _get(p, "whoami", first["bearer"]).status_code == 200
    (token,) = _bridge_tokens(p, admin_token, first["name"])  # one hub token for many calls
    assert token["scopes"] and token["expires_at"]

    # two more users: the cache holds CACHE_USERS, the least recently seen one goes, its token revoked
    for member in (second, third):
        assert _get(p, "whoami", member["bearer"]).status_code == 200
    _eventually("the evicted user's bridge token was revoked", lambda: not _bridge_tokens(p, admin_token, first["name"]))
    assert [len(_bridge_tokens(p, admin_token, m["name"])) for m in (second, third)] == [1, 1]
    issued_at = time.monotonic()
    assert _whoami(p, first["bearer"])["name"] == first["name"]  # back again, with a new token
    (renewed,) = _bridge_tokens(p, admin_token, first["name"])
    assert renewed["id"] != token["id"]

    # a token close to its end is replaced at the next read, and the old one revoked
    time.sleep(max(0.0, issued_at + HUB_TOKEN_TTL - RENEW_MARGIN + 0.5 - time.monotonic()))
    assert _whoami(p, first["bearer"])["name"] == first["name"]

    def only_a_new_one():
        tokens = _bridge_tokens(p, admin_token, first["name"])
        return len(tokens) == 1 and tokens[0]["id"] != renewed["id"]

    _eventually("the old bridge token was replaced and revoked", only_a_new_one)


def test_a_hub_user_unknown_to_the_hub_is_refused(hub):
    p = hub
    name, pw = p.add_user("nils", groups=["/ml"])  # in the realm, never logged in to AstraGo
    with BrowserSession() as browser:
        access = realm_tokens(p, browser, name, pw)["access_token"]
    r = _get(p, "whoami", {"Authorization": f"Bearer {access}"})
    assert r.status_code == 401, r.text
