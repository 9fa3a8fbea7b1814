"""Time from `astrago up` to a logged-in JupyterLab, cold (a new data directory: Keycloak's first
start and the realm import) and warm (the same data directory again).

    python -m bench.startup --json [--runs 3]

Each run: start `astrago up` with its own Keycloak; when the hub, Keycloak and the service answer,
log in as the printed admin through Keycloak's login page, start a server and wait until
JupyterLab's API answers through the proxy. Reported per phase and in total, medians of the runs.
Needs root (like `make run`): the local spawner makes an account per user.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.platform import RunningPlatform, api_token, free_port, login, start_server, stop_server  # noqa: E402


def one_start(p: RunningPlatform) -> dict:
    t0 = time.monotonic()
    p.start(timeout=300)
    t_up = time.monotonic()
    session, _ = login(p, "admin", p.admin_password)
    token = api_token(p, session, "admin")
    t_login = time.monotonic()
    start_server(p, token, "admin")
    r = requests.get(f"{p.url}/user/admin/api/status", headers={"Authorization": f"token {token}"}, timeout=30)
    assert r.status_code == 200, r.text
    t_lab = time.monotonic()
    stop_server(p, token, "admin")
    p.stop()
    return {"platform_ready_s": t_up - t0, "login_s": t_login - t_up, "jupyterlab_s": t_lab - t_login,
            "total_s": t_lab - t0}


def run(runs: int) -> dict:
    results = {"cold": [], "warm": []}
    for _ in range(runs):
        tmp = Path(tempfile.mkdtemp(prefix="astrago-bench-startup-"))
        ports = {k: free_port() for k in ("hub", "proxy_api", "service", "realm", "realm_management")}
        p = RunningPlatform(data_dir=tmp / "data", port=free_port(), ports=ports)
        try:
            results["cold"].append(one_start(p))
            results["warm"].append(one_start(p))
        finally:
            p.stop()
            p.remove_system_accounts()
            shutil.rmtree(tmp, ignore_errors=True)
    return {kind: {key: round(statistics.median(r[key] for r in rows), 1) for key in rows[0]}
            for kind, rows in results.items()} | {"runs": runs}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    out = run(args.runs)
    print(json.dumps(out, indent=2) if args.json else out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
