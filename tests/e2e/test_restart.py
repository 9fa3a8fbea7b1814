"""Stopping and restarting `astrago up`: the hub's records and the processes agree."""
import os
import signal
import time

import requests

from support.kernel import run_code
from support.platform import api_token, login, start_server


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _server(platform, token, name):
    r = requests.get(f"{platform.url}/hub/api/users/{name}", headers={"Authorization": f"token {token}"}, timeout=30)
    assert r.status_code == 200, f"{r.status_code} {r.text}\n{platform.log()[-3000:]}"
    return r.json()["servers"].get("")


def test_crash_then_restart_reattaches_running_server(fresh_platform):
    p = fresh_platform
    first = p.start()
    assert "password:" in first
    admin_pw = p.admin_password
    name, pw = p.add_user("rita")
    session, _ = login(p, name, pw)
    token = api_token(p, session, name)
    model = start_server(p, token, name)
    pid = model["servers"][""]["state"]["pid"] if "state" in model["servers"][""] else None
    run_code(p.url, name, token, "open('/tmp/astrago-restart-marker', 'w').close()")

    p.crash()
    second = p.start()
    assert "password:" not in second, "the first admin password is printed once only"
    assert p.admin_password == admin_pw or not p.admin_password
    server = _server(p, token, name)
    assert server is not None and server["ready"], server
    # the same process is re-attached, and it works through the new proxy
    admin_session, _ = login(p, "admin", admin_pw)
    admin_token = api_token(p, admin_session, "admin")
    state = requests.get(f"{p.url}/hub/api/users/{name}", params={"include_stopped_servers": "1"},
                         headers={"Authorization": f"token {admin_token}"}, timeout=30).json()
    live_pid = state["servers"][""].get("state", {}).get("pid") or pid
    if live_pid:
        assert _pid_alive(live_pid)
    out = run_code(p.url, name, token, "print('still here')")
    assert out["stdout"].strip() == "still here"


def test_graceful_stop_stops_servers_and_restart_shows_them_stopped(fresh_platform):
    p = fresh_platform
    p.start()
    name, pw = p.add_user("sam")
    session, _ = login(p, name, pw)
    token = api_token(p, session, name)
    start_server(p, token, name)
    admin_session, _ = login(p, "admin", p.admin_password)
    admin_token = api_token(p, admin_session, "admin")
    pid = requests.get(f"{p.url}/hub/api/users/{name}", headers={"Authorization": f"token {admin_token}"},
                       timeout=30).json()["servers"][""]["state"]["pid"]
    assert _pid_alive(pid)

    p.stop(signal.SIGINT)
    deadline = time.monotonic() + 30
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _pid_alive(pid), "Ctrl-C must stop users' servers too"

    p.start()
    assert _server(p, token, name) is None
