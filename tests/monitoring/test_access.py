"""Who may see what: the metrics endpoint needs its scope; a user sees only their own usage."""
import requests

from support.platform import api_token, login


def _h(token):
    return {"Authorization": f"token {token}"}


def test_the_metrics_endpoint_refuses_callers_without_the_scope(gpu_platform):
    url = gpu_platform.service_url + "metrics"
    anonymous = requests.get(url, timeout=30)
    assert anonymous.status_code == 401 and anonymous.headers["Content-Type"] == "application/problem+json"
    name, pw = gpu_platform.p.add_user("nosy")
    session, _ = login(gpu_platform.p, name, pw)
    user_token = api_token(gpu_platform.p, session, name)
    refused = requests.get(url, headers=_h(user_token), timeout=30)
    assert refused.status_code == 403
    assert "custom:astrago:metrics:read" in refused.json()["detail"]
    # an admin's token narrowed to other scopes is refused too; one with the scope is served
    narrowed = api_token(gpu_platform.p, gpu_platform.admin_session, "admin",
                         scopes=["custom:astrago:read", "access:services!service=astrago"])
    assert requests.get(url, headers=_h(narrowed), timeout=30).status_code == 403
    scraper = api_token(gpu_platform.p, gpu_platform.admin_session, "admin",
                        scopes=["custom:astrago:metrics:read", "access:services!service=astrago"])
    ok = requests.get(url, headers={"Authorization": f"Bearer {scraper}"}, timeout=30)  # Bearer works too
    assert ok.status_code == 200 and ok.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'astrago_build_info{version="' in ok.text
    denials = gpu_platform.admin("GET", f"api/audit?actor={name}&outcome=denied").json()["entries"]
    assert any(e["action"] == "metrics.read" and "metrics:read" in e["reason"] for e in denials)


def test_a_user_cannot_see_another_users_usage(gpu_platform):
    a, a_pw = gpu_platform.p.add_user("ann")
    b, _ = gpu_platform.p.add_user("ben")
    session, _ = login(gpu_platform.p, a, a_pw)
    token = api_token(gpu_platform.p, session, a)
    base = gpu_platform.service_url
    own = requests.get(base + "api/monitor/usage", headers=_h(token), timeout=30)
    assert own.status_code == 200 and own.json()["user"] == a
    for path in (f"api/monitor/usage?user={b}", f"api/monitor/notices?user={b}"):
        other = requests.get(base + path, headers=_h(token), timeout=30)
        assert other.status_code == 403, path
    for path in ("api/monitor/fleet", "api/monitor/reclaim"):  # everyone's figures: admins only
        assert requests.get(base + path, headers=_h(token), timeout=30).status_code == 403, path
    assert requests.put(base + "api/monitor/reclaim/policy", json={"dry_run": False}, headers=_h(token),
                        timeout=30).status_code == 403
    # the pages say the same to a browser session
    assert session.get(base + "me/usage", timeout=30).status_code == 200
    page = session.get(base + f"me/usage?user={b}", timeout=30)
    assert page.status_code == 403 and "custom:astrago:read" in page.text
    assert session.get(base + "admin/monitor/fleet", timeout=30).status_code == 403
    assert gpu_platform.admin("GET", f"api/monitor/usage?user={b}").status_code == 200  # an admin may
