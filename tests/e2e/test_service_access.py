"""The AstraGo service checks who is asking, refuses clearly, and audits every denial."""
import requests

from support.platform import api_token, login

PROBLEM = "application/problem+json"


def test_service_refuses_without_credentials_and_names_the_fix(platform):
    r = requests.get(f"{platform.service_url}api/whoami", timeout=30)
    assert r.status_code == 401
    assert r.headers["Content-Type"].startswith(PROBLEM)
    body = r.json()
    assert body["type"].endswith("/unauthenticated")
    assert "token" in body["detail"]


def test_whoami_answers_the_caller_not_someone_else(platform):
    name, pw = platform.add_user("wendy", groups=["/team-w"])
    session, _ = login(platform, name, pw)
    token = api_token(platform, session, name)
    r = requests.get(f"{platform.service_url}api/whoami", headers={"Authorization": f"token {token}"}, timeout=30)
    assert r.status_code == 200
    me = r.json()
    assert me["name"] == name
    assert me["admin"] is False
    assert me["astrago_admin"] is False
    assert "team-w" in me["groups"]
    assert f"custom:astrago:read!user={name}" in me["scopes"]


def test_token_without_service_access_is_forbidden(platform):
    name, pw = platform.add_user("tina")
    session, _ = login(platform, name, pw)
    token = api_token(platform, session, name, scopes=[f"read:users!user={name}"])
    r = requests.get(f"{platform.service_url}api/whoami", headers={"Authorization": f"token {token}"}, timeout=30)
    assert r.status_code == 403
    assert r.headers["Content-Type"].startswith(PROBLEM)
    assert r.json()["type"].endswith("/forbidden")


def test_user_cannot_read_audit_log_admin_can_and_sees_the_denials(platform):
    name, pw = platform.add_user("uma")
    session, _ = login(platform, name, pw)
    token = api_token(platform, session, name)
    r = requests.get(f"{platform.service_url}api/audit", headers={"Authorization": f"token {token}"}, timeout=30)
    assert r.status_code == 403
    assert "custom:astrago:audit:read" in r.json()["detail"]
    requests.get(f"{platform.service_url}api/", timeout=30)  # anonymous: denied too

    admin_session, _ = login(platform, "admin", platform.admin_password)
    admin_token = api_token(platform, admin_session, "admin")
    r = requests.get(f"{platform.service_url}api/audit", params={"outcome": "denied", "limit": 200},
                     headers={"Authorization": f"token {admin_token}"}, timeout=30)
    assert r.status_code == 200
    entries = r.json()["entries"]
    mine = [e for e in entries if e["actor"] == name and e["action"] == "audit.read"]
    assert mine and mine[0]["outcome"] == "denied"
    assert "custom:astrago:audit:read" in mine[0]["reason"]
    assert any(e["actor_kind"] == "anonymous" and e["target"] == "" for e in entries)


def test_unknown_api_path_is_problem_json(platform):
    r = requests.get(f"{platform.service_url}api/no-such-thing", timeout=30)
    assert r.status_code == 404
    assert r.headers["Content-Type"].startswith(PROBLEM)


def test_service_info_reports_embedded_mode(platform):
    session, _ = login(platform, "admin", platform.admin_password)
    token = api_token(platform, session, "admin")
    info = requests.get(f"{platform.service_url}api/", headers={"Authorization": f"token {token}"}, timeout=30).json()
    assert info["name"] == "astrago"
    assert info["mode"] == "embedded"
    assert "core" in info["areas"]
