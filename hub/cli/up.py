"""`astrago up`: start the embedded platform (hub, proxy, service, realm) in the foreground."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ..embedded import CLIENT_ID, REPO_ROOT, EmbeddedSettings, default_data_dir, prepare_data_dir

CONFIG_FILE = REPO_ROOT / "config" / "jupyterhub_config.py"


def add_parser(sub):
    p = sub.add_parser("up", help="start AstraGo on this machine (embedded mode); Ctrl-C stops it")
    p.add_argument("--data-dir", default=os.environ.get("ASTRAGO_DATA_DIR", default_data_dir()),
                   help="where state lives (default: %(default)s)")
    p.add_argument("--ip", default=os.environ.get("ASTRAGO_IP", "127.0.0.1"), help="public proxy address")
    p.add_argument("--port", type=int, default=int(os.environ.get("ASTRAGO_PORT", 8000)), help="public proxy port")
    p.add_argument("--public-url", default=os.environ.get("ASTRAGO_PUBLIC_URL", ""),
                   help="URL browsers use (default http://IP:PORT); logins redirect there")
    p.add_argument("--hub-port", type=int, default=int(os.environ.get("ASTRAGO_HUB_PORT", 8081)))
    p.add_argument("--proxy-api-port", type=int, default=int(os.environ.get("ASTRAGO_PROXY_API_PORT", 8001)))
    p.add_argument("--service-port", type=int, default=int(os.environ.get("ASTRAGO_SERVICE_PORT", 10101)))
    p.add_argument("--realm-port", type=int, default=int(os.environ.get("ASTRAGO_REALM_PORT", 10102)))
    p.add_argument("--user-env", default=os.environ.get("ASTRAGO_USER_ENV", sys.prefix),
                   help="Python environment that runs users' servers (readable by all users)")
    p.add_argument("--inventory-file", default=os.environ.get("ASTRAGO_INVENTORY_FILE", ""),
                   help="static GPU inventory (YAML) for machines without NVML; shown as simulated")
    p.add_argument("--keep-servers", action="store_true",
                   default=os.environ.get("ASTRAGO_KEEP_SERVERS", "").lower() in ("1", "true", "yes"),
                   help="leave users' servers running when AstraGo stops (re-attached at the next start)")
    p.set_defaults(func=run)


def run(args) -> int:
    from . import CLIError
    from ..realm.store import ensure_realm

    settings = EmbeddedSettings(
        data_dir=str(Path(args.data_dir).resolve()), ip=args.ip, port=args.port, public_url=args.public_url,
        hub_port=args.hub_port, proxy_api_port=args.proxy_api_port, service_port=args.service_port,
        realm_port=args.realm_port, user_env=args.user_env, inventory_file=args.inventory_file,
        keep_servers=args.keep_servers,
    )
    chp = Path(settings.node_modules) / ".bin" / "configurable-http-proxy"
    if not chp.exists():
        raise CLIError(f"configurable-http-proxy is missing at {chp}: run 'make run' (or 'npm ci') in {REPO_ROOT}.")
    if not shutil.which("node"):
        raise CLIError("Node.js is missing: install it (Debian: apt-get install nodejs) or run 'make run'.")
    singleuser = Path(settings.user_env) / "bin" / "jupyterhub-singleuser"
    if not singleuser.exists():
        raise CLIError(f"{singleuser} is missing: the user environment is not set up; run 'make run'.")

    env = dict(os.environ)
    env.update(prepare_data_dir(settings))
    env.update(settings.to_env())
    env["ASTRAGO_MODE"] = "embedded"
    password = ensure_realm(
        settings.realm_file,
        client_id=CLIENT_ID,
        redirect_uris=[settings.oauth_callback_url],
        post_logout_redirect_uris=[settings.post_logout_redirect_url, f"{settings.public_url}/hub/login",
                                   f"{settings.public_url}/hub/"],
        backchannel_logout_uri=settings.backchannel_logout_url,
    )
    banner = [
        "",
        f"  AstraGo is starting at {settings.public_url}",
        f"  state: {settings.data_dir}",
    ]
    if password:
        banner += [
            "",
            "  First start: an administrator account was created. This password is shown only once:",
            "      user:     admin",
            f"      password: {password}",
            "  Change it with: astrago realm passwd admin",
        ]
    banner.append("")
    print("\n".join(banner), flush=True)
    argv = [sys.executable, "-m", "jupyterhub", "-f", str(CONFIG_FILE)]
    os.chdir(settings.data_dir)
    os.execve(sys.executable, argv, env)
    return 0  # not reached
