"""`astrago up`: start the embedded platform (Keycloak, hub, proxy, service) in the foreground.

Keycloak starts first, on loopback (its database in the data directory); `astrago up` waits for
it, saying how long, makes sure the AstraGo realm is there (imported from config/keycloak/ on the
first start), then becomes JupyterHub. Keycloak ends when the hub does (a parent-death signal),
and any failure before the hub runs stops it: nothing is left behind.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..embedded import REPO_ROOT, EmbeddedSettings, default_data_dir, prepare_data_dir, realm_spec

CONFIG_FILE = REPO_ROOT / "config" / "jupyterhub_config.py"
#: the environment `make run` builds for users' servers (the Makefile's USER_ENV)
MAKE_USER_ENV = "/opt/astrago/user-env" if os.geteuid() == 0 else str(REPO_ROOT / ".venv")


def default_user_env() -> str:
    return os.environ.get("ASTRAGO_USER_ENV") or MAKE_USER_ENV


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
    p.add_argument("--realm-port", type=int, default=int(os.environ.get("ASTRAGO_REALM_PORT", 10102)),
                   help="Keycloak's port on loopback (default: %(default)s)")
    p.add_argument("--realm-management-port", type=int,
                   default=int(os.environ.get("ASTRAGO_REALM_MANAGEMENT_PORT", 10103)),
                   help="Keycloak's health port on loopback (default: %(default)s)")
    p.add_argument("--realm", default=os.environ.get("ASTRAGO_REALM_NAME", "astrago"),
                   help="the Keycloak realm AstraGo's users live in (default: %(default)s)")
    p.add_argument("--keycloak-url", default=os.environ.get("ASTRAGO_KEYCLOAK_URL", ""),
                   help="use this running Keycloak (its root, served under /services/realm) instead of "
                        "starting one; needs --keycloak-credentials")
    p.add_argument("--keycloak-credentials", default=os.environ.get("ASTRAGO_KEYCLOAK_CREDENTIALS_FILE", ""),
                   help="JSON file with client_id and client_secret of that Keycloak's admin client")
    p.add_argument("--user-env", default=default_user_env(),
                   help="Python environment that runs users' servers, readable by all users; it needs the "
                        "AstraGo extensions (default: the one 'make run' builds, %(default)s)")
    p.add_argument("--inventory-file", default=os.environ.get("ASTRAGO_INVENTORY_FILE", ""),
                   help="static GPU inventory (YAML) for machines without NVML; shown as simulated")
    p.add_argument("--keep-servers", action="store_true",
                   default=os.environ.get("ASTRAGO_KEEP_SERVERS", "").lower() in ("1", "true", "yes"),
                   help="leave users' servers running when AstraGo stops (re-attached at the next start)")
    p.set_defaults(func=run)


def check_prerequisites(settings: EmbeddedSettings) -> None:
    """Everything `astrago up` needs, checked before anything starts; each miss is one sentence."""
    from .errors import CLIError

    chp = Path(settings.node_modules) / ".bin" / "configurable-http-proxy"
    if not chp.exists():
        raise CLIError(f"configurable-http-proxy is missing at {chp}: run 'make run' (or 'npm ci') in {REPO_ROOT}.")
    if not shutil.which("node"):
        raise CLIError("Node.js is missing: install it (Debian: apt-get install nodejs) or run 'make run'.")
    user_python = Path(settings.user_env) / "bin" / "python"
    singleuser = Path(settings.user_env) / "bin" / "jupyterhub-singleuser"
    if not singleuser.exists() or not user_python.exists():
        raise CLIError(f"{singleuser} is missing: the user environment {settings.user_env} is not set up; "
                       "run 'make run', or pass --user-env with an environment that has JupyterHub.")
    probe = subprocess.run([str(user_python), "-c", "import astrago.extensions.magics"], capture_output=True)
    if probe.returncode != 0:
        raise CLIError(f"The user environment {settings.user_env} lacks the AstraGo extensions (%job, uploads): "
                       "run 'make run' to build it, or pass --user-env with the one it builds "
                       f"({MAKE_USER_ENV}).")
    if settings.inventory_file and not Path(settings.inventory_file).is_file():
        raise CLIError(f"The inventory file {settings.inventory_file} does not exist: pass the path of a GPU "
                       "inventory YAML, such as config/examples/simulated-h100.yaml.")
    if settings.keycloak_url and not settings.keycloak_admin_credentials.is_file():
        raise CLIError(f"--keycloak-url needs --keycloak-credentials: no file at {settings.keycloak_admin_credentials}.")


def settings_from(args) -> EmbeddedSettings:
    resolve = lambda p: str(Path(p).expanduser().resolve()) if p else ""  # noqa: E731 - the hub runs in the data dir
    return EmbeddedSettings(
        data_dir=resolve(args.data_dir), ip=args.ip, port=args.port, public_url=args.public_url,
        hub_port=args.hub_port, proxy_api_port=args.proxy_api_port, service_port=args.service_port,
        realm_port=args.realm_port, realm_management_port=args.realm_management_port, realm_name=args.realm,
        keycloak_url=args.keycloak_url, keycloak_credentials_file=resolve(args.keycloak_credentials),
        user_env=resolve(args.user_env), inventory_file=resolve(args.inventory_file),
        keep_servers=args.keep_servers,
    )


def start_keycloak(settings: EmbeddedSettings):
    """The embedded Keycloak, started and ready (None when an outside Keycloak is used)."""
    from ..realm.server import KeycloakServer

    if not settings.runs_own_keycloak:
        return None
    server = KeycloakServer(settings.keycloak_state_dir, port=settings.realm_port,
                            management_port=settings.realm_management_port)
    if server.is_ready():
        print(f"  Keycloak already answers at {server.base_url}: using it", flush=True)
        return None
    print(f"  Starting Keycloak at {server.base_url} (its state: {settings.keycloak_state_dir}) ...", flush=True)
    server.start()
    took = server.wait_ready(progress=lambda line: print(line, flush=True))
    print(f"  Keycloak is ready ({took:.0f} s)", flush=True)
    return server


def record_realm_endpoint(settings: EmbeddedSettings) -> None:
    """Where `astrago realm ...` finds this platform's Keycloak and realm."""
    settings.keycloak_state_dir.mkdir(parents=True, exist_ok=True)
    (settings.keycloak_state_dir / "endpoint.json").write_text(json.dumps({
        "base_url": settings.keycloak_base_url, "realm": settings.realm_name,
        "credentials_file": str(settings.keycloak_admin_credentials)}))


def run(args) -> int:
    from .errors import CLIError
    from ..realm.admin import RealmAdmin, RealmError
    from ..realm.server import KeycloakStartError

    settings = settings_from(args)
    check_prerequisites(settings)
    env = dict(os.environ)
    env.update(prepare_data_dir(settings))
    env.update(settings.to_env())
    env["ASTRAGO_MODE"] = "embedded"
    print(f"\n  AstraGo is starting at {settings.public_url}\n  state: {settings.data_dir}", flush=True)
    started = time.monotonic()
    keycloak = None
    try:
        keycloak = start_keycloak(settings)
        admin = RealmAdmin.from_file(settings.keycloak_base_url, settings.keycloak_admin_credentials,
                                     settings.realm_name)
        password = admin.ensure(realm_spec(settings))
        record_realm_endpoint(settings)
    except (KeycloakStartError, RealmError) as exc:
        if keycloak:
            keycloak.stop()
        raise CLIError(str(exc)) from None
    except BaseException:
        if keycloak:
            keycloak.stop()
        raise
    banner = [f"  realm {settings.realm_name} ready ({time.monotonic() - started:.0f} s); starting the hub ..."]
    if password:
        banner += [
            "",
            "  First start: an administrator account was created. This password is shown only once:",
            "      user:     admin",
            f"      password: {password}",
            "  Change it with: astrago realm passwd admin",
            f"  Keycloak's admin console for this realm: {settings.keycloak_frontend_url}/admin/"
            f"{settings.realm_name}/console/",
        ]
    banner.append("")
    print("\n".join(banner), flush=True)
    argv = [sys.executable, "-m", "jupyterhub", "-f", str(CONFIG_FILE)]
    os.chdir(settings.data_dir)
    # Keycloak stays a child of this process, which becomes the hub: it ends with the hub
    os.execve(sys.executable, argv, env)
    return 0  # not reached
