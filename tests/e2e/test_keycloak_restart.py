"""`astrago up` with its own Keycloak, killed with SIGKILL and started again: Keycloak's database
in the data directory keeps users, sessions and keys, so people stay logged in and nobody's
roles or groups change (the embedded OIDC stand-in lost every grant here)."""
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import requests

from support.fixtures import require
from support.keycloak import keycloak_available
from support.platform import RunningPlatform, api_token, free_port, login, wait_port_closed

REFRESH_AGE = 3


def _hub_user(p, token, name):
    r = requests.get(f"{p.url}/hub/api/users/{name}", headers={"Authorization": f"token {token}"}, timeout=30)
    assert r.status_code == 200, r.text
    model = r.json()
    return {"admin": model["admin"], "groups": sorted(model["groups"]), "roles": sorted(model["roles"])}


def test_kill_9_and_restart_keeps_logins_roles_and_groups():
    require(os.geteuid() == 0, "root (the local spawner makes a system account per user)")
    require(keycloak_available(), "Keycloak (make test builds it)")
    tmp = Path(tempfile.mkdtemp(prefix="astrago-kc-restart-"))
    ports = {k: free_port() for k in ("hub", "proxy_api", "service", "realm", "realm_management")}
    p = RunningPlatform(data_dir=tmp / "data", port=free_port(), ports=ports,
                        extra_env={"ASTRAGO_AUTH_REFRESH_AGE": str(REFRESH_AGE)})  # its own Keycloak
    try:
        first = p.start()
        assert re.search(r"Keycloak is ready \(\d+ s\)", first)  # start-up says how long it waited
        assert (p.data_dir / "keycloak" / "db").is_dir()
        name, pw = p.add_user("kim", groups=["/ml/vision"], roles=["gpu-user"])
        user_session, _ = login(p, name, pw)
        user_token = api_token(p, user_session, name)
        admin_session, _ = login(p, "admin", p.admin_password)
        admin_token = api_token(p, admin_session, "admin")
        before = {n: _hub_user(p, admin_token, n) for n in (name, "admin")}
        assert before[name] == {"admin": False, "groups": ["ml", "ml/vision"], "roles": ["gpu-user", "user"]}
        assert before["admin"]["admin"] is True and "astrago-admin" in before["admin"]["roles"]

        p.crash()  # SIGKILL of the hub: its Keycloak follows it (parent-death signal)
        wait_port_closed(ports["realm"])
        again = p.start()
        assert "First start" not in again  # the realm and its admin were kept
        time.sleep(REFRESH_AGE + 1)  # the next request of each browser refreshes at Keycloak

        for session in (user_session, admin_session):
            r = session.get(f"{p.url}/hub/home", allow_redirects=False, timeout=30)
            assert r.status_code == 200, (r.status_code, r.headers.get("Location"))  # still logged in
        assert {n: _hub_user(p, admin_token, n) for n in (name, "admin")} == before
        whoami = requests.get(f"{p.service_url}api/whoami", headers={"Authorization": f"token {user_token}"},
                              timeout=30).json()
        assert f"custom:astrago:gpus!user={name}" in whoami["scopes"]
        assert "log in again" not in p.log()
        # the admin's pages still answer as an admin's
        r = admin_session.get(f"{p.service_url}admin", timeout=30)
        assert r.status_code == 200, r.text[:300]
    finally:
        p.stop()
        p.remove_system_accounts()
        wait_port_closed(ports["realm"])  # nothing left behind
        shutil.rmtree(tmp, ignore_errors=True)
