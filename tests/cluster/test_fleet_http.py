"""The fleet area over HTTP on a real embedded AstraGo: it shows the GPUs and degrades clearly,
409 "MIG re-cutting needs cluster mode", with the refusal audited; only fleet admins may try."""
import requests

from support.platform import api_token, login


def _h(token):
    return {"Authorization": f"token {token}"}


def test_fleet_in_embedded_mode(astrago_service):
    platform = astrago_service.platform
    admin = api_token(platform, login(platform, "admin", platform.admin_password)[0], "admin")
    api = platform.service_url + "api/"

    fleet = requests.get(api + "fleet", headers=_h(admin), timeout=30)
    assert fleet.status_code == 200
    body = fleet.json()
    assert (body["mode"], body["can_recut"]) == ("embedded", False)
    assert [(g["index"], g["mode"], [i["profile"] for i in g["instances"]]) for g in body["nodes"][0]["gpus"]] == [
        (0, "mig", ["3g.40gb", "3g.40gb"]), (1, "full", [])]

    for path in ("fleet/mig-plans", "fleet/mig-recuts"):
        r = requests.post(api + path, json={"demand": {"1g.10gb": 7}}, headers=_h(admin), timeout=30)
        assert r.status_code == 409 and r.headers["Content-Type"].startswith("application/problem+json")
        problem = r.json()
        assert problem["type"] == "https://astrago.dev/problems/conflict"
        assert problem["detail"].startswith("MIG re-cutting needs cluster mode")
    audit = requests.get(api + "audit", params={"actor": "admin", "outcome": "denied"}, headers=_h(admin),
                         timeout=30).json()["entries"]
    assert {"fleet.plan", "fleet.recut"} <= {e["action"] for e in audit}

    page = requests.get(platform.service_url + "admin/fleet", headers=_h(admin), timeout=30)
    assert page.status_code == 200 and "MIG re-cutting needs cluster mode" in page.text


def test_only_fleet_admins_may_recut(astrago_service):
    platform = astrago_service.platform
    name, password = platform.add_user("fleetuser")
    token = api_token(platform, login(platform, name, password)[0], name)
    api = platform.service_url + "api/"
    r = requests.post(api + "fleet/mig-recuts", json={"demand": {"1g.10gb": 7}}, headers=_h(token), timeout=30)
    assert r.status_code == 403
    assert "custom:astrago:fleet:admin" in r.json()["detail"]
    assert requests.get(api + "fleet", headers=_h(token), timeout=30).status_code == 403
