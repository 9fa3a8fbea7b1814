"""50 concurrent admissions never exceed a quota or double-allocate (sqlite and a real
MariaDB); a killed service comes back and reconciles; nothing runs without an allocation."""
import os
import shutil
import signal
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from support.contract_check import ContractMismatch
from support.fixtures import new_platform, require
from support.mariadb import MariaDB
from support.platform import api_token, login, start_server

INVENTORY = {"nodes": [{"name": "box", "gpus": [
    {"model": "H100-80GB", "mode": "mig", "geometry": {"1g.10gb": 7}},
]}]}


@pytest.fixture(scope="module", params=["sqlite", "mariadb"])
def quota_platform(request):
    require(os.geteuid() == 0, "root")
    db = None
    tmp = Path(tempfile.mkdtemp(prefix="astrago-quota-"))
    p = new_platform(tmp, INVENTORY)
    p.extra_env = {"ASTRAGO_RECONCILE_INTERVAL": "2", "ASTRAGO_RECONCILE_GRACE": "4"}
    if request.param == "mariadb":
        require(MariaDB.available(), "Debian's mariadb-server")
        db = MariaDB().start()
        p.extra_env["ASTRAGO_DB_URL"] = db.url()
    p.start()
    p.db_kind = request.param
    session, _ = login(p, "admin", p.admin_password)
    p.admin_token = api_token(p, session, "admin")
    yield p
    p.stop()
    p.remove_system_accounts()
    if db:
        db.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def _api(p, method, path, **kw):
    return requests.request(method, p.service_url + "api/" + path, headers={"Authorization": f"token {p.admin_token}"},
                            timeout=60, **kw)


def _admit(p, user, slice_name, owner):
    return _api(p, "POST", "admissions", json={"owner": {"kind": "workspace", "id": owner}, "user": user,
                                                "groups": [], "slice": slice_name})


def _active(p, user=None):
    params = {"status": ["admitted", "queued"]}
    if user:
        params["user"] = user
    return _api(p, "GET", "allocations", params=params).json()["allocations"]


def _release_all(p):
    for a in _active(p):
        _api(p, "DELETE", f"admissions/{a['id']}")


def test_fifty_concurrent_admissions_respect_the_quota(quota_platform):
    p = quota_platform
    user = f"burst-{p.db_kind}"
    assert _api(p, "PUT", f"quotas/user/{user}", json={"limits": {"servers": 5}}).status_code == 200
    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(lambda i: _admit(p, user, "cpu", f"{user}/s{i}"), range(50)))
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) == 5
    assert codes.count(403) == 45
    assert all("servers quota" in r.json()["detail"] for r in results if r.status_code == 403)
    assert len(_active(p, user)) == 5
    _release_all(p)


def test_fifty_concurrent_admissions_never_share_a_mig_instance(quota_platform):
    p = quota_platform
    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(lambda i: _admit(p, f"u{i}", "1g.10gb", f"u{i}/"), range(50)))
    admitted = [r.json() for r in results if r.status_code == 201]
    queued = [r.json() for r in results if r.status_code == 202]
    assert len(admitted) == 7 and len(queued) == 43
    devices = [a["placement"]["visible_devices"][0] for a in admitted]
    assert len(set(devices)) == 7
    assert sorted(q["position"] for q in (_api(p, "GET", f"admissions/{x['id']}").json() for x in queued)) == \
        list(range(1, 44))
    # releasing one admits exactly one more, onto the freed instance
    freed = admitted[0]
    out = _api(p, "DELETE", f"admissions/{freed['id']}").json()
    assert out["status"] == "released"
    now_admitted = [a for a in _active(p) if a["status"] == "admitted"]
    assert len(now_admitted) == 7
    assert freed["placement"]["visible_devices"][0] in {a["placement"]["visible_devices"][0] for a in now_admitted}


def _service_pids(p):
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
            env = (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"astrago.hub.service" in cmd and str(p.data_dir).encode() in env:
            pids.append(int(proc.name))
    return pids


def test_killed_service_restarts_and_reconciles_nothing_dangles(quota_platform):
    p = quota_platform
    _release_all(p)
    pids = _service_pids(p)
    assert pids
    with ThreadPoolExecutor(max_workers=20) as pool:
        futures = [pool.submit(_admit, p, f"ghost{i}", "1g.10gb", f"ghost{i}/") for i in range(20)]
        time.sleep(0.05)
        os.kill(pids[0], signal.SIGKILL)  # mid-burst
        for f in futures:
            try:
                f.result()
            except (requests.RequestException, ContractMismatch):
                pass  # cut off by the crash (or the proxy's own 503 page for it): the client may retry
    # JupyterHub restarts its managed service
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if _api(p, "GET", "queue").status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.5)
    assert _service_pids(p) and _service_pids(p) != pids
    active = _active(p)
    admitted = [a for a in active if a["status"] == "admitted"]
    assert len(admitted) <= 7
    assert len({a["placement"]["visible_devices"][0] for a in admitted}) == len(admitted)
    assert all(a["placement"] for a in admitted)
    # none of these owners has a server: reconciliation releases every one of them
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and _active(p):
        time.sleep(1)
    assert _active(p) == []
    log = _api(p, "GET", "audit", params={"actor": "astrago-service", "limit": 500}).json()["entries"]
    assert any(e["action"] == "reconcile.release" and e["detail"]["reason"] == "its server is not running" for e in log)


def test_a_server_running_without_an_allocation_is_stopped(quota_platform):
    p = quota_platform
    name, pw = p.add_user("orphan")
    token = api_token(p, login(p, name, pw)[0], name)
    start_server(p, token, name)
    held = _active(p, name)
    assert len(held) == 1
    _api(p, "DELETE", f"admissions/{held[0]['id']}", params={"reason": "test: lost allocation"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        model = requests.get(f"{p.url}/hub/api/users/{name}", headers={"Authorization": f"token {token}"},
                             timeout=30).json()
        if "" not in model["servers"]:
            break
        time.sleep(1)
    assert "" not in model["servers"], "a server without an allocation must not keep running"
