"""Single sign-on end to end: a real `astrago up` (hub, proxy, service) with its realm in Keycloak
itself, driven over HTTP.

One platform for the module, configured through its ASTRAGO_* settings: logins allowed to the
group `ml` (and its subgroups) and the role `gpu-user` (admins always), users' tokens refreshed
once 5 seconds have passed, 10-second access tokens (set on the realm), the access token passed to
users' servers.
"""
import html
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import jwt
import pytest
import requests

from support.fixtures import new_platform
from support.kernel import run_code
from support.platform import BrowserSession, api_token, login, start_server, stop_server

from ssokit import (
    ACCESS_TOKEN_TTL,
    REFRESH_AGE,
    access_claims,
    confirm_realm_logout,
    hub_page_status,
    hub_user,
    import_signing_key,
    is_login_page,
    logout_claims,
    other_key,
    own_scopes,
    realm_tokens,
    require,
    sign,
    unsigned,
)

SSO_ENV = {
    "ASTRAGO_ACCESS_TOKEN_TTL": str(ACCESS_TOKEN_TTL),
    "ASTRAGO_AUTH_REFRESH_AGE": str(REFRESH_AGE),
    "ASTRAGO_PASS_ACCESS_TOKEN": "1",
    "ASTRAGO_ALLOWED_GROUPS": "ml",
    "ASTRAGO_ALLOWED_ROLES": "gpu-user",
}


@pytest.fixture(scope="module")
def sso_platform():
    require(os.geteuid() == 0, "root (the local spawner makes a system account per user)")
    tmp = Path(tempfile.mkdtemp(prefix="astrago-sso-"))
    p = new_platform(tmp)
    p.extra_env = dict(SSO_ENV)
    p.startup_output = p.start()
    p.signing = import_signing_key(p)  # before the hub first fetches the realm's keys
    yield p
    p.stop()
    p.remove_system_accounts()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def sso_admin_token(sso_platform):
    session, _ = login(sso_platform, "admin", sso_platform.admin_password)
    return api_token(sso_platform, session, "admin")


def _logged_in(status_location) -> bool:
    status, location = status_location
    if status == 200:
        return True
    assert status == 302 and "/hub/login" in location, status_location
    return False


def test_login_maps_groups_roles_and_admin(sso_platform, sso_admin_token):
    p = sso_platform
    name, pw = p.add_user("mia", groups=["/ml/vision", "/team-x"], roles=["gpu-user"])
    p.realm_admin.add_role(name, "quota-admin", client_id="astrago")
    session, r = login(p, name, pw)
    assert r.status_code == 200, r.text[:500]
    model = hub_user(p, sso_admin_token, name)
    assert sorted(model["groups"]) == ["ml", "ml/vision", "team-x"]  # nested: the parent too
    assert sorted(model["roles"]) == ["gpu-user", "quota-admin", "user"]  # realm and client role
    assert model["admin"] is False
    mine = own_scopes(p, api_token(p, session, name))
    assert {"custom:astrago:quota:admin", f"custom:astrago:gpus!user={name}"} <= mine
    assert "custom:astrago:admin" not in mine

    admin = hub_user(p, sso_admin_token, "admin")  # the realm role `admin`
    assert admin["admin"] is True
    assert "astrago-admins" in admin["groups"]
    assert {"admin", "astrago-admin", "user"} <= set(admin["roles"])
    assert "custom:astrago:admin" in own_scopes(p, sso_admin_token)


def test_user_outside_the_allowed_groups_sees_why_and_can_switch_account(sso_platform, sso_admin_token):
    p = sso_platform
    name, pw = p.add_user("olga", groups=["/finance"])
    session, r = login(p, name, pw)
    assert r.status_code == 403
    assert r.url.startswith(f"{p.url}/hub/oauth_callback")
    assert f"The account {name} is not allowed to use AstraGo" in html.unescape(r.text)
    assert "one of the groups ml" in r.text and "gpu-user" in r.text
    assert hub_user(p, sso_admin_token, name) is None  # no hub user was made
    assert "jupyterhub-hub-login" not in session.cookies.get_dict()

    switch = html.unescape(re.search(r'id="astrago-switch-account"[^>]*href="([^"]+)"', r.text).group(1))
    assert switch.startswith(f"{p.realm_url}/protocol/openid-connect/logout?")
    assert parse_qs(urlparse(switch).query)["id_token_hint"]
    done = confirm_realm_logout(session, session.get(switch, timeout=30))
    assert done.url == f"{p.url}/hub/logged-out" and "Successfully logged out" in done.text
    r = session.get(f"{p.url}/hub/login", timeout=30)
    assert is_login_page(r)  # Keycloak asks who it is again

    # a role may let people in too
    holder, holder_pw = p.add_user("gina", roles=["gpu-user"])
    _, r = login(p, holder, holder_pw)
    assert r.status_code == 200
    assert sorted(hub_user(p, sso_admin_token, holder)["roles"]) == ["gpu-user", "user"]


def test_leaving_groups_removes_hub_groups_and_their_scopes_at_the_next_refresh(sso_platform, sso_admin_token):
    p = sso_platform
    name, pw = p.add_user("rita", groups=["/ml", "/astrago-admins", "/team-y"])
    session, _ = login(p, name, pw)
    token = api_token(p, session, name)
    before = hub_user(p, sso_admin_token, name)
    assert before["admin"] is True  # by the Keycloak group /astrago-admins
    assert sorted(before["groups"]) == ["astrago-admins", "ml", "team-y"]
    assert "custom:astrago:admin" in own_scopes(p, token)

    p.realm_admin.remove_from_group(name, "/astrago-admins")
    p.realm_admin.remove_from_group(name, "/team-y")
    time.sleep(REFRESH_AGE + 1)
    scopes_now = own_scopes(p, token)  # this request is the refresh
    assert "custom:astrago:admin" not in scopes_now
    assert f"custom:astrago:read!user={name}" in scopes_now
    after = hub_user(p, sso_admin_token, name)
    assert after["groups"] == ["ml"]
    assert after["admin"] is False
    assert sorted(after["roles"]) == ["user"]
    assert _logged_in(hub_page_status(session, p))  # still allowed: in ml
    # rights are never dropped in silence: the hub log says what Keycloak changed
    assert f"Keycloak changed the rights of {name} at refresh: groups removed: astrago-admins, team-y" in p.log()
    assert "no longer an admin" in p.log()


def test_disabled_user_must_log_in_again_when_the_refresh_fails(sso_platform):
    p = sso_platform
    name, pw = p.add_user("dora", groups=["/ml"])
    session, _ = login(p, name, pw)
    assert _logged_in(hub_page_status(session, p))
    p.realm_admin.set_enabled(name, False)
    time.sleep(REFRESH_AGE + 1)
    assert not _logged_in(hub_page_status(session, p))
    _, r = login(p, name, pw)
    assert "Account is disabled" in r.text  # Keycloak's own words


def test_hub_logout_ends_the_realm_session(sso_platform, sso_admin_token):
    p = sso_platform
    name, pw = p.add_user("lena", groups=["/ml"])
    session, _ = login(p, name, pw)
    sub = hub_user(p, sso_admin_token, name)["auth_state"]["sub"]
    r = session.get(f"{p.url}/hub/logout", allow_redirects=False, timeout=30)
    assert r.status_code == 302
    end_session = r.headers["Location"]
    assert end_session.startswith(f"{p.realm_url}/protocol/openid-connect/logout?")
    query = parse_qs(urlparse(end_session).query)
    assert query["post_logout_redirect_uri"] == [f"{p.url}/hub/logged-out"]
    assert jwt.decode(query["id_token_hint"][0], options={"verify_signature": False})["sub"] == sub

    done = confirm_realm_logout(session, session.get(end_session, timeout=30))
    assert done.url == f"{p.url}/hub/logged-out" and "Successfully logged out" in done.text
    # the realm session is over: logging in asks for the password again
    r = session.get(f"{p.url}/hub/login", timeout=30)
    assert is_login_page(r)
    assert not _logged_in(hub_page_status(session, p))
    # and the hub no longer keeps the realm tokens of that login
    state = hub_user(p, sso_admin_token, name)["auth_state"]
    assert not {"access_token", "refresh_token", "id_token"} & set(state)


def test_logout_at_the_realm_ends_the_hub_session_over_the_back_channel(sso_platform, sso_admin_token):
    p = sso_platform
    name, pw = p.add_user("bea", groups=["/ml"])
    session, _ = login(p, name, pw)
    assert _logged_in(hub_page_status(session, p))
    hub_cookie = session.cookies.get("jupyterhub-hub-login")
    # the user signs out at the realm itself (another application's logout button, say)
    page = session.get(f"{p.realm_url}/protocol/openid-connect/logout", timeout=30,
                       params={"client_id": "astrago", "post_logout_redirect_uri": f"{p.url}/hub/logged-out"})
    confirm_realm_logout(session, page)
    # the hub heard from the realm: the hub cookie the browser held is refused now
    with BrowserSession() as same_browser:
        same_browser.cookies.set("jupyterhub-hub-login", hub_cookie, path="/hub/")
        assert not _logged_in(hub_page_status(same_browser, p))
    assert re.search(rf"Back-channel logout \(sid \S+\): ended the hub sessions of {name}", p.log())
    state = hub_user(p, sso_admin_token, name)["auth_state"]
    assert "refresh_token" not in state


def test_back_channel_endpoint_refuses_forged_logout_tokens(sso_platform, sso_admin_token):
    p = sso_platform
    name, pw = p.add_user("fay", groups=["/ml"])
    session, _ = login(p, name, pw)
    state = hub_user(p, sso_admin_token, name)["auth_state"]
    sid, sub = state["sid"], state["sub"]
    kid, key = p.signing
    iss = p.realm_url
    endpoint = f"{p.url}/hub/backchannel-logout"

    def post(token):
        return requests.post(endpoint, data={"logout_token": token} if token else {}, timeout=30)

    forged = [
        sign(logout_claims(iss, sub, sid), other_key(), kid, typ="logout+jwt"),  # bad signature
        sign(logout_claims(iss, sub, sid, events={}), key, kid, typ="logout+jwt"),  # no event
        sign(logout_claims(iss, sub, sid, nonce="abc"), key, kid, typ="logout+jwt"),
        sign(logout_claims("http://evil.example/realms/astrago", sub, sid), key, kid, typ="logout+jwt"),
        sign(logout_claims(iss, sub, sid, aud="grafana"), key, kid, typ="logout+jwt"),
        sign(logout_claims(iss, None, None), key, kid, typ="logout+jwt"),
        sign(access_claims(iss, name, sub=sub, sid=sid), key, kid),  # an access token is no logout token
        unsigned(logout_claims(iss, sub, sid), kid),
        "not-a-token",
        None,
    ]
    for token in forged:
        r = post(token)
        assert r.status_code == 400, (token, r.text)
        assert r.json()["error"] == "invalid_request"
    assert _logged_in(hub_page_status(session, p))  # nothing happened

    good = sign(logout_claims(iss, sub, sid), key, kid, typ="logout+jwt")
    assert post(good).status_code == 200
    assert not _logged_in(hub_page_status(session, p))
    assert post(good).status_code == 400  # a replay


def test_service_takes_a_keycloak_access_token_as_bearer(sso_platform, sso_admin_token):
    p = sso_platform
    whoami = f"{p.service_url}api/whoami"
    name, pw = p.add_user("tara", groups=["/ml"])
    p.realm_admin.add_role(name, "quota-admin", client_id="astrago")
    session, _ = login(p, name, pw)  # the hub knows tara from now on
    with BrowserSession() as browser:  # a tool gets its own token from the realm
        tokens = realm_tokens(p, browser, name, pw)
    r = requests.get(whoami, headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=30)
    assert r.status_code == 200, r.text
    by_keycloak = r.json()
    assert by_keycloak["name"] == name and by_keycloak["astrago_admin"] is False
    hub_token = api_token(p, session, name)
    by_hub = requests.get(whoami, headers={"Authorization": f"token {hub_token}"}, timeout=30).json()
    assert {"custom:astrago:quota:admin", f"custom:astrago:jobs!user={name}"} <= set(by_keycloak["scopes"])
    assert set(by_keycloak["scopes"]) == set(by_hub["scopes"])  # the same powers either way
    assert by_keycloak["groups"] == by_hub["groups"] == ["ml"]
    # a JupyterHub token sent as "Bearer" still works
    assert requests.get(whoami, headers={"Authorization": f"Bearer {hub_token}"}, timeout=30).status_code == 200

    kid, key = p.signing
    iss = p.realm_url
    sub = hub_user(p, sso_admin_token, name)["auth_state"]["sub"]
    now = int(time.time())
    forged = [
        unsigned(access_claims(iss, name, sub=sub), kid),
        sign(access_claims(iss, name, sub=sub), other_key(), kid),
        sign(access_claims(iss, name, sub=sub), other_key(), "unknown-kid"),
        sign(access_claims(iss, name, sub=sub, aud="grafana", azp="grafana"), key, kid),
        sign(access_claims("http://evil.example/realms/astrago", name, sub=sub), key, kid),
        sign(access_claims(iss, name, sub=sub, iat=now - 600, exp=now - 300), key, kid),
        sign(access_claims(iss, name, sub=sub, nbf=now + 300), key, kid),
    ]
    for token in forged:
        r = requests.get(whoami, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert r.status_code == 401, r.text
    # a valid token of a realm user who never used AstraGo gets nowhere either
    stranger, stranger_pw = p.add_user("sven", groups=["/ml"])
    with BrowserSession() as browser:
        theirs = realm_tokens(p, browser, stranger, stranger_pw)
    r = requests.get(whoami, headers={"Authorization": f"Bearer {theirs['access_token']}"}, timeout=30)
    assert r.status_code == 401
    # an admin's token carries the admin scopes
    with BrowserSession() as browser:
        admins = realm_tokens(p, browser, "admin", p.admin_password)
    r = requests.get(whoami, headers={"Authorization": f"Bearer {admins['access_token']}"}, timeout=30)
    assert r.json()["astrago_admin"] is True


def test_spawn_after_the_access_token_expired_passes_a_fresh_one(sso_platform, sso_admin_token):
    p = sso_platform
    name, pw = p.add_user("sam", groups=["/ml"])
    session, _ = login(p, name, pw)
    token = api_token(p, session, name)
    first = hub_user(p, sso_admin_token, name)["auth_state"]["access_token"]
    claims = jwt.decode(first, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == ACCESS_TOKEN_TTL  # the lifetime set on the test realm
    userinfo = f"{p.realm_url}/protocol/openid-connect/userinfo"

    time.sleep(max(0.0, claims["exp"] + 1 - time.time()))  # a lifetime, not a fixed minute
    assert requests.get(userinfo, headers={"Authorization": f"Bearer {first}"}, timeout=30).status_code == 401
    start_server(p, token, name)  # the hub refreshes the tokens before it spawns
    try:
        out = run_code(p.url, name, token, "import os; print(os.environ.get('ASTRAGO_ACCESS_TOKEN', ''))")
        passed = out["stdout"].strip()
        assert passed and passed != first
        fresh = jwt.decode(passed, options={"verify_signature": False})
        assert fresh["iat"] > claims["iat"] and fresh["preferred_username"] == name
        # it is a live token of the user's realm session
        r = requests.get(userinfo, headers={"Authorization": f"Bearer {passed}"}, timeout=30)
        assert r.status_code == 200 and r.json()["preferred_username"] == name
        # only the access token reaches the server
        out = run_code(p.url, name, token, "import os; print(sorted(k for k, v in os.environ.items() "
                       "if v.count('.') == 2 and len(v) > 200))")
        assert out["stdout"].strip() == "['ASTRAGO_ACCESS_TOKEN']"
    finally:
        stop_server(p, token, name)


def test_back_channel_logout_finds_the_user_after_a_hub_restart(sso_platform, sso_admin_token):
    """The realm session -> hub user index is rebuilt from auth_state after a restart.
    (Kept last: it restarts the shared platform.)"""
    p = sso_platform
    name, pw = p.add_user("ida", groups=["/ml"])
    login(p, name, pw)
    state = hub_user(p, sso_admin_token, name)["auth_state"]
    p.stop()
    p.start()
    kid, key = p.signing
    token = sign(logout_claims(p.realm_url, None, state["sid"]), key, kid, typ="logout+jwt")
    r = requests.post(f"{p.url}/hub/backchannel-logout", data={"logout_token": token}, timeout=30)
    assert r.status_code == 200
    assert f"ended the hub sessions of {name}" in p.log()
    assert "refresh_token" not in hub_user(p, sso_admin_token, name)["auth_state"]
