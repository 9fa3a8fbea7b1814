"""End-to-end tests of the local realm: the real Node server driven over HTTP.

Every test runs the browser side (requests.Session with cookies) and the client side (token,
userinfo, ...) against hub/realm/server.mjs started by the `realm` fixture.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer

import jwt
import requests

from astrago.hub.realm import store

from realmkit import CLIENT_ID, parse_html, start_realm, stop_realm

KEYCLOAK_PATHS = {
    "authorization_endpoint": "/protocol/openid-connect/auth",
    "token_endpoint": "/protocol/openid-connect/token",
    "userinfo_endpoint": "/protocol/openid-connect/userinfo",
    "end_session_endpoint": "/protocol/openid-connect/logout",
    "jwks_uri": "/protocol/openid-connect/certs",
    "introspection_endpoint": "/protocol/openid-connect/token/introspect",
    "revocation_endpoint": "/protocol/openid-connect/revoke",
}


def test_discovery_lists_keycloak_paths(realm):
    doc = realm.endpoints
    assert doc["issuer"] == realm.issuer
    assert realm.issuer.endswith("/services/realm/realms/astrago")
    for key, path in KEYCLOAK_PATHS.items():
        assert doc[key] == realm.issuer + path, key
    assert doc["response_types_supported"] == ["code"]
    assert {"openid", "profile", "email", "groups", "roles"} <= set(doc["scopes_supported"])
    assert {"preferred_username", "groups", "realm_access", "resource_access", "email"} <= set(
        doc["claims_supported"]
    )
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert set(doc["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post"}
    # the JWKS has public RSA keys only
    keys = requests.get(doc["jwks_uri"], timeout=10).json()["keys"]
    assert keys and all(k["kty"] == "RSA" and "d" not in k and k["alg"] == "RS256" for k in keys)
    # Keycloak's realm document at the issuer URL
    info = requests.get(realm.issuer, timeout=10).json()
    assert info["realm"] == "astrago"
    assert info["token-service"] == realm.issuer + "/protocol/openid-connect"
    # the service root JupyterHub probes answers
    assert requests.get(f"http://127.0.0.1:{realm.port}/services/realm/", timeout=10).status_code == 200


def test_code_flow_id_token_userinfo_and_refresh(realm, browser, alice):
    username, password = alice
    page, state, nonce = realm.authorize(browser)
    assert page.status_code == 200
    parsed = parse_html(page.text)
    assert parsed.title == "AstraGo — sign in"
    (form,) = parsed.forms
    assert form["method"].lower() == "post"
    assert {"username", "password"} <= set(form["inputs"])
    assert 'type="password"' in page.text

    r = realm.submit_login(browser, page, username, password)
    code = realm.code_from(r, state)
    resp = realm.token({"grant_type": "authorization_code", "code": code, "redirect_uri": realm.redirect_uri})
    assert resp.status_code == 200, resp.text
    tokens = resp.json()
    assert tokens["token_type"] == "Bearer"
    assert 0 < tokens["expires_in"] <= 300
    assert tokens["refresh_token"]

    # id_token: signature from the certs endpoint, iss, aud, nonce, Keycloak claims
    claims = realm.verify(tokens["id_token"])
    user = store.read_realm(realm.realm_file)["users"][username]
    assert claims["nonce"] == nonce
    assert claims["sub"] == user["id"]
    assert claims["preferred_username"] == username
    assert claims["email"] == user["email"]
    assert claims["email_verified"] is False
    assert claims["name"] == "Alice Liddell"
    assert claims["given_name"] == "Alice"
    assert claims["family_name"] == "Liddell"
    assert claims["groups"] == ["/team-a", "/team-a/vision"]
    assert claims["realm_access"] == {"roles": ["gpu-user"]}
    assert claims["resource_access"] == {CLIENT_ID: {"roles": ["operator"]}}
    assert claims["sid"]
    assert abs(claims["auth_time"] - time.time()) < 60
    assert claims["exp"] - claims["iat"] <= 300

    # the access token is an RS256 JWT carrying the same identity
    at_header = jwt.get_unverified_header(tokens["access_token"])
    assert at_header["typ"] == "at+jwt" and at_header["alg"] == "RS256"
    at = realm.verify(tokens["access_token"])
    assert at["aud"] == CLIENT_ID
    assert at["azp"] == CLIENT_ID
    assert at["sub"] == user["id"]
    assert at["preferred_username"] == username
    assert at["groups"] == ["/team-a", "/team-a/vision"]
    assert at["realm_access"] == {"roles": ["gpu-user"]}
    assert at["sid"] == claims["sid"]
    assert set(at["scope"].split()) == {"openid", "profile", "email"}
    assert at["exp"] - at["iat"] == 300

    # userinfo with that access token
    info = requests.get(
        realm.url("/protocol/openid-connect/userinfo"),
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=10,
    )
    assert info.status_code == 200, info.text
    body = info.json()
    for key in ("sub", "preferred_username", "email", "name", "groups", "realm_access", "resource_access"):
        assert body[key] == claims[key], key

    # refresh_token grant: new tokens, still valid, still Alice
    time.sleep(1)
    refreshed = realm.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    assert new["access_token"] != tokens["access_token"]
    new_at = realm.verify(new["access_token"])
    assert new_at["preferred_username"] == username and new_at["iat"] > at["iat"]
    new_id = realm.verify(new["id_token"])
    assert new_id["sub"] == user["id"] and new_id["groups"] == claims["groups"]
    info2 = requests.post(
        realm.url("/protocol/openid-connect/userinfo"), data={"access_token": new["access_token"]}, timeout=10
    )
    assert info2.status_code == 200 and info2.json()["preferred_username"] == username

    # a login-success line without the password
    log = realm.log()
    assert f'login ok user="{username}"' in log
    assert password not in log


def test_claims_follow_realm_changes_on_refresh(realm, browser, alice):
    username, password = alice
    tokens, _ = realm.login(browser, username, password)
    store.add_to_group(realm.realm_file, username, "/team-b")
    store.add_role(realm.realm_file, username, "admin")
    refreshed = realm.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}).json()
    claims = realm.verify(refreshed["id_token"])
    assert claims["groups"] == ["/team-a", "/team-a/vision", "/team-b"]
    assert claims["realm_access"]["roles"] == ["gpu-user", "admin"]


def test_client_secret_post_works_and_wrong_secret_is_refused(realm, browser, alice):
    username, password = alice
    page, state, _ = realm.authorize(browser)
    code = realm.code_from(realm.submit_login(browser, page, username, password), state)
    bad = requests.post(
        realm.url("/protocol/openid-connect/token"),
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": realm.redirect_uri,
              "client_id": CLIENT_ID, "client_secret": "wrong"},
        timeout=10,
    )
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    page, state, _ = realm.authorize(browser)  # session: straight back with a code
    code = realm.code_from(page, state)
    good = requests.post(
        realm.url("/protocol/openid-connect/token"),
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": realm.redirect_uri,
              "client_id": CLIENT_ID, "client_secret": realm.secret},
        timeout=10,
    )
    assert good.status_code == 200, good.text
    assert realm.verify(good.json()["id_token"])["preferred_username"] == username


def _assert_refused(realm, browser, username, password, message):
    page, state, _ = realm.authorize(browser)
    r = realm.submit_login(browser, page, username, password)
    assert r.status_code == 200
    assert "Location" not in r.headers
    assert message in r.text
    parsed = parse_html(r.text)
    assert parsed.title == "AstraGo — sign in"
    assert "code=" not in r.text
    return r


def test_wrong_password_and_unknown_user_are_refused(realm, browser, alice):
    username, password = alice
    _assert_refused(realm, browser, username, password + "x", "Invalid username or password.")
    _assert_refused(realm, browser, "nobody", "whatever1", "Invalid username or password.")
    log = realm.log()
    assert f'login failed user="{username}" reason=bad-password' in log
    assert 'login failed user="nobody" reason=unknown-user' in log
    assert password + "x" not in log
    # after failures, the right password still works in the same browser
    tokens, _ = realm.login(browser, username, password)
    assert realm.verify(tokens["id_token"])["preferred_username"] == username


def test_disabled_user_is_refused_and_cannot_refresh(realm, browser):
    username, password = realm.add_user()
    tokens, _ = realm.login(browser, username, password)
    store.set_enabled(realm.realm_file, username, False)
    refreshed = realm.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    userinfo = requests.get(
        realm.url("/protocol/openid-connect/userinfo"),
        headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=10,
    )
    assert userinfo.status_code == 401
    # the existing browser session no longer signs in silently: the login page comes back
    with requests.Session() as fresh:
        _assert_refused(realm, fresh, username, password, "This account is disabled. Ask an administrator.")
    page, _, _ = realm.authorize(browser)
    assert page.status_code == 200 and parse_html(page.text).title == "AstraGo — sign in"
    # a wrong password does not reveal that the account is disabled
    with requests.Session() as fresh:
        r = _assert_refused(realm, fresh, username, "wrong-password", "Invalid username or password.")
        assert "disabled" not in r.text
    assert f'login failed user="{username}" reason=disabled' in realm.log()


def test_user_added_while_running_can_log_in(realm, browser):
    username = "late" + secrets.token_hex(3)
    password = "correct horse battery"
    with requests.Session() as early:
        _assert_refused(realm, early, username, password, "Invalid username or password.")
    store.add_user(realm.realm_file, username, email=f"{username}@example.org", password=password)
    tokens, _ = realm.login(browser, username, password)
    assert realm.verify(tokens["id_token"])["preferred_username"] == username
    # and a password change applies at once as well
    store.set_password(realm.realm_file, username, "a new password")
    with requests.Session() as other:
        _assert_refused(realm, other, username, password, "Invalid username or password.")
    with requests.Session() as other:
        tokens, _ = realm.login(other, username, "a new password")
        assert tokens["id_token"]


def test_user_without_groups_has_no_groups_claim(realm, browser):
    username, password = realm.add_user()
    tokens, _ = realm.login(browser, username, password, scope="openid profile email groups roles")
    claims = realm.verify(tokens["id_token"])
    assert "groups" not in claims
    assert "email" not in claims  # no email set: left out, as Keycloak does
    assert "name" not in claims
    assert claims["realm_access"] == {"roles": []}
    assert "resource_access" not in claims
    assert "groups" not in realm.verify(tokens["access_token"])
    info = requests.get(
        realm.url("/protocol/openid-connect/userinfo"),
        headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=10,
    ).json()
    assert info["preferred_username"] == username
    assert "groups" not in info


def test_unregistered_redirect_uri_is_refused(realm, browser):
    evil = "http://evil.example/callback"
    r, _, _ = realm.authorize(browser, redirect_uri=evil)
    assert r.status_code == 400
    assert "Location" not in r.headers
    assert "redirect_uri" in r.text
    # near misses are refused too: exact match only
    for near in (realm.redirect_uri + "/x", realm.redirect_uri + "?a=1", realm.redirect_uri.replace("127.0.0.1", "localhost")):
        r, _, _ = realm.authorize(browser, redirect_uri=near)
        assert r.status_code == 400, near
        assert "Location" not in r.headers
    # an unknown client is refused
    r = browser.get(
        realm.url("/protocol/openid-connect/auth"),
        params={"client_id": "other", "redirect_uri": realm.redirect_uri, "response_type": "code", "scope": "openid"},
        allow_redirects=False,
    )
    assert r.status_code == 400 and "Location" not in r.headers


def test_redirect_uri_update_applies_without_restart(realm, browser):
    new_uri = f"http://127.0.0.1:{realm.port}/hub/other_callback"
    r, _, _ = realm.authorize(browser, redirect_uri=new_uri)
    assert r.status_code == 400
    try:
        store.ensure_realm(realm.realm_file, redirect_uris=[realm.redirect_uri, new_uri],
                           post_logout_redirect_uris=[realm.post_logout_uri])
        r, _, _ = realm.authorize(browser, redirect_uri=new_uri)
        assert r.status_code == 200 and parse_html(r.text).title == "AstraGo — sign in"
    finally:
        store.ensure_realm(realm.realm_file, redirect_uris=[realm.redirect_uri],
                           post_logout_redirect_uris=[realm.post_logout_uri])


def _logout(realm, browser, id_token, post_logout_uri, state="bye"):
    r = browser.get(
        realm.url("/protocol/openid-connect/logout"),
        params={"id_token_hint": id_token, "post_logout_redirect_uri": post_logout_uri, "state": state},
        allow_redirects=False,
    )
    return r


def test_rp_initiated_logout_ends_the_session(realm, browser, alice):
    username, password = alice
    tokens, _ = realm.login(browser, username, password)
    # while the session lives, a new auth request returns a code without the login page
    r, state, _ = realm.authorize(browser)
    assert realm.code_from(r, state)

    r = _logout(realm, browser, tokens["id_token"], realm.post_logout_uri)
    assert r.status_code == 200
    page = parse_html(r.text)
    (form,) = page.forms  # the auto-submitted confirmation: no question for the user
    assert form["id"] == "op.logoutForm"
    assert form["inputs"]["logout"] == "yes" and form["inputs"]["xsrf"]
    assert "document.getElementById('op.logoutForm').submit()" in r.text
    r = browser.post(urllib.parse.urljoin(r.url, form["action"]), data=form["inputs"], allow_redirects=False)
    assert r.status_code in (302, 303)
    assert r.headers["Location"] == realm.post_logout_uri + "?state=bye"

    # the session is over: the login page again, refresh and userinfo refused
    page, _, _ = realm.authorize(browser)
    assert page.status_code == 200 and parse_html(page.text).title == "AstraGo — sign in"
    refreshed = realm.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    info = requests.get(
        realm.url("/protocol/openid-connect/userinfo"),
        headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=10,
    )
    assert info.status_code == 401
    assert 'error="invalid_token"' in info.headers["WWW-Authenticate"]


def test_logout_to_unregistered_uri_is_refused(realm, browser, alice):
    username, password = alice
    tokens, _ = realm.login(browser, username, password)
    r = _logout(realm, browser, tokens["id_token"], "http://evil.example/")
    assert r.status_code == 400
    assert "Location" not in r.headers
    # the session survived the refused request
    r, state, _ = realm.authorize(browser)
    assert realm.code_from(r, state)


def test_introspection_and_revocation(realm, browser, alice):
    username, password = alice
    tokens, _ = realm.login(browser, username, password)
    url = realm.url("/protocol/openid-connect/token/introspect")
    auth = (CLIENT_ID, realm.secret)

    at = requests.post(url, data={"token": tokens["access_token"]}, auth=auth, timeout=10).json()
    assert at["active"] is True
    assert at["username"] == username and at["client_id"] == CLIENT_ID
    assert at["groups"] == ["/team-a", "/team-a/vision"]
    rt = requests.post(url, data={"token": tokens["refresh_token"]}, auth=auth, timeout=10).json()
    assert rt["active"] is True and rt["client_id"] == CLIENT_ID and rt["sub"] == at["sub"]
    assert requests.post(url, data={"token": tokens["access_token"]}, auth=(CLIENT_ID, "bad"), timeout=10).status_code == 401
    assert requests.post(url, data={"token": "x.y.z"}, auth=auth, timeout=10).json() == {"active": False}

    revoke = realm.url("/protocol/openid-connect/revoke")
    assert requests.post(revoke, data={"token": tokens["access_token"]}, auth=auth, timeout=10).status_code == 200
    assert requests.post(url, data={"token": tokens["access_token"]}, auth=auth, timeout=10).json() == {"active": False}
    info = requests.get(
        realm.url("/protocol/openid-connect/userinfo"),
        headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=10,
    )
    assert info.status_code == 401
    assert requests.post(revoke, data={"token": tokens["refresh_token"]}, auth=auth, timeout=10).status_code == 200
    refreshed = realm.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 400


def test_forged_and_tampered_access_tokens_are_refused(realm, browser, alice):
    username, password = alice
    tokens, _ = realm.login(browser, username, password)
    header, payload, sig = tokens["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["preferred_username"] = "admin"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    for token in (f"{header}.{forged_payload}.{sig}", "not-a-token", ""):
        r = requests.get(
            realm.url("/protocol/openid-connect/userinfo"), headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert r.status_code in (400, 401), token


def test_login_page_escapes_input_and_checks_the_interaction(realm, browser):
    page, _, _ = realm.authorize(browser, login_hint='<script>alert("x")</script>')
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page.text
    (form,) = parse_html(page.text).forms
    action = urllib.parse.urljoin(page.url, form["action"])
    # typed values come back escaped too
    r = browser.post(action, data={"username": '"><img src=x onerror=alert(1)>', "password": "x"}, allow_redirects=False)
    assert r.status_code == 200 and "<img" not in r.text and "Invalid username or password." in r.text
    # another browser (no interaction cookie) cannot post into this login
    with requests.Session() as other:
        r = other.post(action, data={"username": "admin", "password": "x"}, allow_redirects=False)
        assert r.status_code == 400 and "Location" not in r.headers
    # a made-up interaction id is refused
    bad = action.rsplit("/", 1)[0] + "/" + "x" * 21
    r = browser.post(bad, data={"username": "admin", "password": "x"}, allow_redirects=False)
    assert r.status_code == 400 and "Location" not in r.headers


def test_admin_created_by_ensure_realm_can_log_in(realm, browser):
    password = realm.extra["admin_password"]
    assert password
    tokens, _ = realm.login(browser, "admin", password)
    claims = realm.verify(tokens["id_token"])
    assert claims["preferred_username"] == "admin"
    assert claims["realm_access"] == {"roles": ["admin"]}


class _LogoutReceiver(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length", 0))
        body = urllib.parse.parse_qs(self.rfile.read(length).decode())
        self.received.append(body)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_keys_persist_across_restart_and_backchannel_logout(tmp_path):
    """Keys file is 0600 and reused (old tokens verify after a restart); a restart ends
    realm sessions; back-channel logout POSTs a signed logout_token with the sid."""
    receiver = HTTPServer(("127.0.0.1", 0), _LogoutReceiver)
    _LogoutReceiver.received = []
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    backchannel = f"http://127.0.0.1:{receiver.server_port}/hub/backchannel_logout"
    try:
        first = start_realm(tmp_path)
        store.ensure_realm(first.realm_file, redirect_uris=[first.redirect_uri],
                           post_logout_redirect_uris=[first.post_logout_uri], backchannel_logout_uri=backchannel)
        assert first.keys_file.stat().st_mode & 0o777 == 0o600
        assert first.realm_file.stat().st_mode & 0o777 == 0o600
        username, password = first.add_user()
        with requests.Session() as browser:
            tokens, _ = first.login(browser, username, password)
            claims = first.verify(tokens["id_token"])
            keys_before = first.keys_file.read_bytes()
            stop_realm(first)

            second = start_realm(tmp_path, port=first.port, env_extra={"ASTRAGO_REALM_ACCESS_TOKEN_TTL": "120"})
            try:
                assert second.keys_file.read_bytes() == keys_before
                # still verifiable with the certs of the restarted server
                assert second.verify(tokens["id_token"], options={"verify_exp": False})["sub"] == claims["sub"]
                # realm sessions are in memory: the browser signs in again
                page, _, _ = second.authorize(browser)
                assert parse_html(page.text).title == "AstraGo — sign in"
                r = second.submit_login(browser, page, username, password)
                assert r.status_code in (302, 303)
                # log out: the client's back-channel endpoint gets a logout token for this sid
                page, state, _ = second.authorize(browser)
                code = second.code_from(page, state)
                fresh = second.token({"grant_type": "authorization_code", "code": code,
                                      "redirect_uri": second.redirect_uri}).json()
                sid = second.verify(fresh["id_token"])["sid"]
                # ASTRAGO_REALM_ACCESS_TOKEN_TTL applies
                assert fresh["expires_in"] == 120
                fresh_at = second.verify(fresh["access_token"])
                assert fresh_at["exp"] - fresh_at["iat"] == 120
                r = _logout(second, browser, fresh["id_token"], second.post_logout_uri)
                (form,) = parse_html(r.text).forms
                r = browser.post(urllib.parse.urljoin(r.url, form["action"]), data=form["inputs"], allow_redirects=False)
                assert r.headers["Location"].startswith(second.post_logout_uri)
                deadline = time.monotonic() + 5
                while not _LogoutReceiver.received and time.monotonic() < deadline:
                    time.sleep(0.05)
                (body,) = _LogoutReceiver.received
                logout_token = second.verify(body["logout_token"][0])
                assert logout_token["sid"] == sid
                assert logout_token["sub"] == claims["sub"]
                assert "http://schemas.openid.net/event/backchannel-logout" in logout_token["events"]
            finally:
                stop_realm(second)
    finally:
        receiver.shutdown()


def test_server_refuses_to_start_without_configuration(tmp_path):
    import subprocess

    from realmkit import NODE, SERVER

    r = subprocess.run([NODE, str(SERVER)], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "ASTRAGO_REALM_FILE" in r.stderr


def test_full_flow_through_configurable_http_proxy(tmp_path):
    """As deployed: JupyterHub's proxy forwards /services/realm/... (full path kept) to the
    realm, and the issuer is the proxy's public URL."""
    import subprocess

    from realmkit import NODE, PROXY, free_port

    proxy_port, api_port = free_port(), free_port()
    token = secrets.token_hex(16)
    proxy_log = open(tmp_path / "proxy.log", "w")
    proxy = subprocess.Popen(
        [NODE, str(PROXY), "--ip", "127.0.0.1", "--port", str(proxy_port),
         "--api-ip", "127.0.0.1", "--api-port", str(api_port), "--log-level", "warn"],
        env={"PATH": "/usr/bin:/bin", "CONFIGPROXY_AUTH_TOKEN": token},
        stdout=proxy_log, stderr=subprocess.STDOUT,
    )
    realm = None
    try:
        realm = start_realm(tmp_path, public_port=proxy_port)
        deadline = time.monotonic() + 20
        while True:
            try:
                r = requests.post(
                    f"http://127.0.0.1:{api_port}/api/routes/services/realm",
                    json={"target": f"http://127.0.0.1:{realm.port}", "service": "realm"},
                    headers={"Authorization": f"token {token}"}, timeout=2,
                )
                if r.status_code == 201:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "proxy.log").read_text()
            time.sleep(0.1)

        doc = realm.endpoints  # fetched through the proxy
        assert doc["issuer"] == realm.issuer
        assert doc["authorization_endpoint"].startswith(f"http://127.0.0.1:{proxy_port}/services/realm/realms/astrago/")
        assert doc["token_endpoint"] == realm.issuer + "/protocol/openid-connect/token"

        username, password = realm.add_user(email="p@example.org")
        store.add_to_group(realm.realm_file, username, "/proxied")
        with requests.Session() as browser:
            page, state, nonce = realm.authorize(browser)
            assert page.url.startswith(f"http://127.0.0.1:{proxy_port}/services/realm/realms/astrago/login-actions/")
            r = realm.submit_login(browser, page, username, password)
            code = realm.code_from(r, state)
            tokens = realm.token({"grant_type": "authorization_code", "code": code,
                                  "redirect_uri": realm.redirect_uri}).json()
            claims = realm.verify(tokens["id_token"])
            assert claims["nonce"] == nonce and claims["groups"] == ["/proxied"]
            assert claims["iss"] == f"http://127.0.0.1:{proxy_port}/services/realm/realms/astrago"
            info = requests.get(doc["userinfo_endpoint"],
                                headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=10)
            assert info.status_code == 200 and info.json()["preferred_username"] == username
            # the realm's cookies are scoped to the realm's path, not the whole hub
            cookie_paths = {c.path for c in browser.cookies}
            assert cookie_paths == {"/services/realm/realms/astrago/"}
    finally:
        if realm is not None:
            stop_realm(realm)
        proxy.terminate()
        proxy.wait(10)


def test_login_form_cannot_be_replayed_and_prompt_none_needs_a_session(realm, browser, alice):
    username, password = alice
    page, state, _ = realm.authorize(browser)
    (form,) = parse_html(page.text).forms
    action = urllib.parse.urljoin(page.url, form["action"])
    r = realm.follow(browser, browser.post(action, data={"username": username, "password": password}, allow_redirects=False))
    assert realm.code_from(r, state)
    again = browser.post(action, data={"username": username, "password": password}, allow_redirects=False)
    assert again.status_code == 400 and "Location" not in again.headers
    assert "Sign-in expired" in again.text
    # prompt=none without a realm session: back to the client with login_required, no code
    with requests.Session() as fresh:
        r, state, _ = realm.authorize(fresh, prompt="none")
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(r.headers["Location"]).query)
        assert r.headers["Location"].startswith(realm.redirect_uri)
        assert query["error"] == ["login_required"] and query["state"] == [state] and "code" not in query
