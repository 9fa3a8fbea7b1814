"""Quota in a real embedded AstraGo: refusals with reasons, who may see and change what, audit."""
import requests

from support.platform import api_token, login, start_server, stop_server


def _admin(platform):
    session, _ = login(platform, "admin", platform.admin_password)
    return api_token(platform, session, "admin")


def _h(token):
    return {"Authorization": f"token {token}"}


def test_non_admin_cannot_set_quotas_or_read_anothers_quota_and_is_audited(platform):
    a, pa = platform.add_user("qa")
    b, pb = platform.add_user("qb")
    ta = api_token(platform, login(platform, a, pa)[0], a)
    api = platform.service_url + "api/"
    r = requests.put(api + f"quotas/user/{a}", json={"limits": {"gpu_units": 8}}, headers=_h(ta), timeout=30)
    assert r.status_code == 403 and r.headers["Content-Type"].startswith("application/problem+json")
    assert requests.get(api + "quotas", headers=_h(ta), timeout=30).status_code == 403
    assert requests.get(api + f"users/{b}/quota", headers=_h(ta), timeout=30).status_code == 403
    assert requests.get(api + "usage", params={"user": b}, headers=_h(ta), timeout=30).status_code == 403
    mine = requests.get(api + f"users/{a}/quota", headers=_h(ta), timeout=30)
    assert mine.status_code == 200 and mine.json()["user"] == a
    assert requests.get(api + "usage", params={"user": a}, headers=_h(ta), timeout=30).status_code == 200

    admin = _admin(platform)
    denials = requests.get(api + "audit", params={"actor": a, "outcome": "denied"}, headers=_h(admin),
                           timeout=30).json()["entries"]
    assert {e["action"] for e in denials} >= {"quota.set", "quota.list", "quota.read", "usage.read"}


def test_admin_sets_a_quota_it_is_audited_and_the_spawn_over_it_is_refused_with_the_reason(platform):
    name, pw = platform.add_user("over")
    session, _ = login(platform, name, pw)
    token = api_token(platform, session, name)
    admin = _admin(platform)
    api = platform.service_url + "api/"
    r = requests.put(api + f"quotas/user/{name}", json={"limits": {"servers": 0}}, headers=_h(admin), timeout=30)
    assert r.status_code == 200
    changes = requests.get(api + "audit", params={"actor": "admin"}, headers=_h(admin), timeout=30).json()["entries"]
    assert any(e["action"] == "quota.set" and e["target"] == f"user:{name}" and e["detail"]["after"] == {"servers": 0}
               for e in changes)
    r = requests.post(f"{platform.url}/hub/api/users/{name}/server", json={"slice": "cpu"}, headers=_h(token),
                      timeout=60)
    assert r.status_code >= 400
    assert "Over your servers quota" in r.text
    model = requests.get(f"{platform.url}/hub/api/users/{name}", headers=_h(token), timeout=30).json()
    assert "" not in model["servers"]
    # no allocation left dangling
    left = requests.get(api + "allocations", params={"user": name}, headers=_h(admin), timeout=30).json()
    assert left["allocations"] == []
    # raised again: the spawn works
    requests.put(api + f"quotas/user/{name}", json={"limits": {"servers": 1}}, headers=_h(admin), timeout=30)
    start_server(platform, token, name)
    held = requests.get(api + "allocations", params={"user": name}, headers=_h(admin), timeout=30).json()
    assert [a["slice"] for a in held["allocations"]] == ["cpu"]
    stop_server(platform, token, name)
    after = requests.get(api + "allocations", params={"user": name}, headers=_h(admin), timeout=30).json()
    assert after["allocations"] == []


def test_quota_request_is_asked_by_the_user_and_decided_by_an_admin(platform):
    name, pw = platform.add_user("asker")
    token = api_token(platform, login(platform, name, pw)[0], name)
    admin = _admin(platform)
    api = platform.service_url + "api/"
    bad = requests.post(api + "quota-requests", json={"requested": {"gpu_units": 2}}, headers=_h(token), timeout=30)
    assert bad.status_code == 400 and "reason" in bad.json()["detail"]
    r = requests.post(api + "quota-requests", json={"requested": {"gpu_units": 2}, "reason": "training run"},
                      headers=_h(token), timeout=30)
    assert r.status_code == 201
    rid = r.json()["id"]
    assert requests.post(api + f"quota-requests/{rid}/decision", json={"approve": True}, headers=_h(token),
                         timeout=30).status_code == 403
    d = requests.post(api + f"quota-requests/{rid}/decision", json={"approve": True, "note": "ok"}, headers=_h(admin),
                      timeout=30)
    assert d.status_code == 200 and d.json()["status"] == "approved"
    again = requests.post(api + f"quota-requests/{rid}/decision", json={"approve": False}, headers=_h(admin),
                          timeout=30)
    assert again.status_code == 409
    mine = requests.get(api + f"users/{name}/quota", headers=_h(token), timeout=30).json()
    assert mine["limits"]["gpu_units"] == 2


def test_usage_csv_and_bad_input(platform):
    admin = _admin(platform)
    api = platform.service_url + "api/"
    r = requests.get(api + "usage", params={"format": "csv"}, headers=_h(admin), timeout=30)
    assert r.status_code == 200 and r.text.splitlines()[0] == "day,user,group,slice,gpu_hours"
    r = requests.get(api + "usage", params={"from": "yesterday"}, headers=_h(admin), timeout=30)
    assert r.status_code == 400 and "dates like" in r.json()["detail"]
    r = requests.put(api + "quotas/group/team-x", json={"limits": {"gpu_units": -1}}, headers=_h(admin), timeout=30)
    assert r.status_code == 400 and "gpu_units" in r.json()["detail"]
    r = requests.post(api + "admissions", json={"user": "x"}, headers=_h(admin), timeout=30)
    assert r.status_code == 400 and "owner" in r.json()["detail"]
    r = requests.post(api + "admissions", json={"user": "x", "slice": "7g.999gb",
                                                "owner": {"kind": "job", "id": "j1"}}, headers=_h(admin), timeout=30)
    assert r.status_code == 422 and r.json()["type"].endswith("/invalid-slice")


def test_storage_quota_limits_uploads(platform):
    name, pw = platform.add_user("store")
    token = api_token(platform, login(platform, name, pw)[0], name)
    admin = _admin(platform)
    api = platform.service_url + "api/"
    requests.put(api + f"quotas/user/{name}", json={"limits": {"storage_gib": 0.001}}, headers=_h(admin), timeout=30)
    import base64

    meta = "filename " + base64.b64encode(b"big.bin").decode()
    r = requests.post(api + "uploads/", headers={**_h(token), "Tus-Resumable": "1.0.0",
                                                 "Upload-Length": str(2 * 1024 * 1024), "Upload-Metadata": meta},
                      timeout=30)
    assert r.status_code == 413
    assert "storage quota" in r.json()["detail"]
    small = requests.post(api + "uploads/", headers={**_h(token), "Tus-Resumable": "1.0.0",
                                                     "Upload-Length": "1000", "Upload-Metadata": meta}, timeout=30)
    assert small.status_code == 201
