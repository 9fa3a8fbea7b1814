"""Wrong password, unknown user, tampered OAuth state at Keycloak's login: refused, nothing created."""
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

import requests

from support.platform import BrowserSession, api_token, login, parse_form


def _admin_token(platform):
    session, _ = login(platform, "admin", platform.admin_password)
    return api_token(platform, session, "admin")


def _hub_user(platform, token, name):
    return requests.get(f"{platform.url}/hub/api/users/{name}", headers={"Authorization": f"token {token}"},
                        timeout=30)


def test_wrong_password_is_refused_and_no_hub_user_is_made(platform):
    name, _ = platform.add_user("wanda")
    session, r = login(platform, name, "not-the-password")
    assert "Invalid username or password." in r.text
    assert "/services/realm/" in r.url  # still on the realm's page
    assert "jupyterhub-hub-login" not in session.cookies.get_dict()
    assert _hub_user(platform, _admin_token(platform), name).status_code == 404


def test_unknown_user_is_refused(platform):
    session, r = login(platform, "nobody-here", "whatever-password")
    assert "Invalid username or password." in r.text
    assert _hub_user(platform, _admin_token(platform), "nobody-here").status_code == 404


def test_tampered_oauth_state_is_refused_and_no_user_is_made(platform):
    name, pw = platform.add_user("tess")
    s = BrowserSession()
    r = s.get(f"{platform.url}/hub/login", timeout=30)
    action, fields = parse_form(r.text, r.url)
    fields.update({"username": name, "password": pw})
    r = s.post(action, data=fields, allow_redirects=False, timeout=30)
    # follow the realm's redirects by hand until it sends us back to the hub's callback
    for _ in range(10):
        location = r.headers["Location"]
        target = requests.compat.urljoin(r.url, location)
        if "/hub/oauth_callback" in target:
            break
        r = s.get(target, allow_redirects=False, timeout=30)
    else:
        raise AssertionError("never reached the hub's oauth callback")
    parts = urlparse(target)
    query = parse_qs(parts.query)
    assert "code" in query and "state" in query
    query["state"] = ["forged" + query["state"][0][6:]]
    forged = urlunparse(parts._replace(query=urlencode({k: v[0] for k, v in query.items()})))
    r = s.get(forged, allow_redirects=False, timeout=30)
    assert r.status_code == 400  # OAuthenticator: state mismatch
    assert "OAuth state mismatch" in r.text
    assert _hub_user(platform, _admin_token(platform), name).status_code == 404
