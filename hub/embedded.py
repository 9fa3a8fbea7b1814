"""Embedded mode: everything on one machine, started by `astrago up`.

`EmbeddedSettings` is the one description of where things run and where state
lives; `astrago up` fills it from flags and hands it to JupyterHub's config
file through ASTRAGO_* environment variables, so `config/jupyterhub_config.py`
and the CLI can never disagree.
"""
from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlparse

from . import scopes

REPO_ROOT = Path(__file__).resolve().parent.parent
REALM_NAME = "astrago"
CLIENT_ID = "astrago"
#: where Keycloak serves (its --http-relative-path) and where the hub's proxy routes to it
KEYCLOAK_PATH = "/services/realm"


def _from_env(name: str, default: str):
    """A setting `astrago up` has no flag for: ASTRAGO_<NAME> or the default."""
    return field(default_factory=lambda: os.environ.get(f"ASTRAGO_{name.upper()}", default))


def default_data_dir() -> str:
    if os.geteuid() == 0:
        return "/var/lib/astrago"
    return str(Path.home() / ".local" / "share" / "astrago")


@dataclass
class EmbeddedSettings:
    data_dir: str
    ip: str = "127.0.0.1"
    port: int = 8000
    public_url: str = ""  # what browsers use; default http://<ip>:<port>
    hub_port: int = 8081
    proxy_api_port: int = 8001
    service_port: int = 10101
    realm_port: int = 10102  # Keycloak's HTTP port on loopback (embedded Keycloak)
    realm_management_port: int = 10103  # Keycloak's health endpoints
    realm_name: str = REALM_NAME
    # an already running Keycloak to use instead of starting one: its root as the hub reaches it
    # (served under /services/realm) and the file with its admin client's credentials
    keycloak_url: str = ""
    keycloak_credentials_file: str = ""
    user_env: str = sys.prefix  # Python environment that runs users' servers
    node_modules: str = str(REPO_ROOT / "node_modules")
    inventory_file: str = ""  # static GPU inventory for hosts without NVML
    keep_servers: bool = False  # leave users' servers running when the hub stops
    # identity (KeycloakAuthenticator and the realm; docs/keycloak.md), from ASTRAGO_* variables
    access_token_ttl: int = _from_env("access_token_ttl", "300")  # realm access/ID token lifetime, s
    auth_refresh_age: int = _from_env("auth_refresh_age", "300")  # s between refreshes of a user's tokens
    pass_access_token: bool = _from_env("pass_access_token", "")  # access token into users' servers' env
    allowed_groups: str = _from_env("allowed_groups", "")  # comma-separated hub group names; empty: everyone
    allowed_roles: str = _from_env("allowed_roles", "")  # comma-separated Keycloak roles; empty: everyone

    def __post_init__(self):
        self.port = int(self.port)
        for name in ("hub_port", "proxy_api_port", "service_port", "realm_port", "realm_management_port"):
            setattr(self, name, int(getattr(self, name)))
        if isinstance(self.keep_servers, str):
            self.keep_servers = self.keep_servers.lower() in ("1", "true", "yes")
        self.access_token_ttl = int(self.access_token_ttl)
        self.auth_refresh_age = int(self.auth_refresh_age)
        if isinstance(self.pass_access_token, str):
            self.pass_access_token = self.pass_access_token.lower() in ("1", "true", "yes")
        if not self.public_url:
            host = "127.0.0.1" if self.ip in ("", "0.0.0.0") else self.ip
            self.public_url = f"http://{host}:{self.port}"
        self.public_url = self.public_url.rstrip("/")

    # -- derived paths and URLs ------------------------------------------

    @property
    def data(self) -> Path:
        return Path(self.data_dir)

    @property
    def runs_own_keycloak(self) -> bool:
        return not self.keycloak_url

    @property
    def keycloak_state_dir(self) -> Path:
        return self.data / "keycloak"

    @property
    def keycloak_base_url(self) -> str:
        """Keycloak's root as the hub reaches it."""
        if self.keycloak_url:
            return self.keycloak_url.rstrip("/")
        return f"http://127.0.0.1:{self.realm_port}{KEYCLOAK_PATH}"

    @property
    def keycloak_admin_credentials(self) -> Path:
        if self.keycloak_credentials_file:
            return Path(self.keycloak_credentials_file)
        return self.keycloak_state_dir / "admin-client.json"

    @property
    def keycloak_frontend_url(self) -> str:
        """Keycloak's root as browsers reach it: through the hub's proxy."""
        return f"{self.public_url}{KEYCLOAK_PATH}"

    @property
    def realm_public_url(self) -> str:
        return f"{self.keycloak_frontend_url}/realms/{self.realm_name}"

    @property
    def realm_backchannel_url(self) -> str:
        return f"{self.keycloak_base_url}/realms/{self.realm_name}"

    @property
    def client_secret_file(self) -> Path:
        return self.data / "oidc_client_secret"

    @property
    def oauth_callback_url(self) -> str:
        return f"{self.public_url}/hub/oauth_callback"

    @property
    def post_logout_redirect_url(self) -> str:
        return f"{self.public_url}/hub/logged-out"

    @property
    def backchannel_logout_url(self) -> str:
        """Where the realm POSTs back-channel logout tokens: the hub itself, on loopback."""
        return f"http://127.0.0.1:{self.hub_port}/hub/backchannel-logout"

    # -- environment round trip -----------------------------------------

    def to_env(self) -> dict[str, str]:
        return {f"ASTRAGO_{f.name.upper()}": str(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_env(cls, env=os.environ) -> "EmbeddedSettings":
        values = {}
        for f in fields(cls):
            key = f"ASTRAGO_{f.name.upper()}"
            if key in env:
                values[f.name] = env[key]
        values.setdefault("data_dir", default_data_dir())
        return cls(**values)


def read_or_create_secret(path: Path, nbytes: int = 32) -> str:
    """A hex secret kept in the data directory, made once (mode 0600)."""
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_hex(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def keycloak_origin(base_url: str) -> str:
    """scheme://host:port of a Keycloak root; it must serve under KEYCLOAK_PATH for the proxy route."""
    parsed = urlparse(base_url)
    if parsed.path.rstrip("/") != KEYCLOAK_PATH:
        raise ValueError(f"Keycloak at {base_url} must serve under {KEYCLOAK_PATH} (its --http-relative-path)")
    return f"{parsed.scheme}://{parsed.netloc}"


def prepare_data_dir(settings: EmbeddedSettings) -> dict[str, str]:
    """Create the data directory and its secrets; returns the secret environment."""
    settings.data.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.data, 0o700)
    return {
        # JupyterHub reads these from the environment
        "JUPYTERHUB_CRYPT_KEY": read_or_create_secret(settings.data / "crypt_key"),
        "CONFIGPROXY_AUTH_TOKEN": read_or_create_secret(settings.data / "proxy_token"),
    }


def configure_jupyterhub(c, settings: EmbeddedSettings) -> None:
    """Fill JupyterHub's config object `c` for embedded mode."""
    data = settings.data
    c.JupyterHub.ip = settings.ip
    c.JupyterHub.port = settings.port
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = settings.hub_port
    c.JupyterHub.db_url = f"sqlite:///{data / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(data / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(data / "jupyterhub.pid")
    c.JupyterHub.cleanup_servers = not settings.keep_servers
    c.JupyterHub.template_paths = [str(Path(__file__).parent / "templates")]
    c.JupyterHub.template_vars = {"astrago_mode": "embedded"}

    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings.proxy_api_port}"
    c.ConfigurableHTTPProxy.command = [str(Path(settings.node_modules) / ".bin" / "configurable-http-proxy")]
    c.ConfigurableHTTPProxy.pid_file = str(data / "jupyterhub-proxy.pid")

    # identity: the platform's realm in Keycloak itself (started by `astrago up`, or one given to it)
    c.JupyterHub.authenticator_class = "astrago.hub.auth.KeycloakAuthenticator"
    c.KeycloakAuthenticator.realm_url = settings.realm_public_url
    c.KeycloakAuthenticator.backchannel_url = settings.realm_backchannel_url
    c.KeycloakAuthenticator.client_id = CLIENT_ID
    c.KeycloakAuthenticator.client_secret = read_or_create_secret(settings.client_secret_file)
    c.KeycloakAuthenticator.oauth_callback_url = settings.oauth_callback_url
    allowed_groups = {g.strip() for g in settings.allowed_groups.split(",") if g.strip()}
    allowed_roles = {r.strip() for r in settings.allowed_roles.split(",") if r.strip()}
    # the platform's realm holds only this hub's users, unless groups or roles are named
    c.KeycloakAuthenticator.allow_all = not (allowed_groups or allowed_roles)
    c.KeycloakAuthenticator.allowed_groups = allowed_groups
    c.KeycloakAuthenticator.allowed_roles = allowed_roles
    c.KeycloakAuthenticator.auto_login = True  # the realm's page is the login page
    c.KeycloakAuthenticator.post_logout_redirect_url = settings.post_logout_redirect_url
    c.KeycloakAuthenticator.auth_refresh_age = settings.auth_refresh_age
    c.KeycloakAuthenticator.pass_access_token = settings.pass_access_token

    # permissions: JupyterHub custom scopes and roles
    c.JupyterHub.custom_scopes = scopes.CUSTOM_SCOPES
    c.JupyterHub.load_roles = scopes.roles() + [
        scopes.service_role(),  # `tokens` included: Keycloak bearer callers get the hub's scopes
        {
            "name": "astrago-spawner",
            "description": "The hub's spawner asking the AstraGo service for admissions",
            "scopes": [scopes.ADMISSIONS, scopes.READ, f"access:services!service={scopes.SERVICE_NAME}"],
            "services": ["astrago-spawner"],
        },
    ]

    # the spawner's own identity at the service (asks for admissions on users' behalf)
    spawner_token = read_or_create_secret(data / "spawner_token")
    from .service.config_file import write_service_config

    write_service_config(data, {
        "AstraGoService": {"data_dir": str(data), "inventory_file": settings.inventory_file,
                           "db_url": os.environ.get("ASTRAGO_DB_URL", f"sqlite:///{data / 'astrago.sqlite'}")},
        "JobsConfig": {"user_env_prefix": settings.user_env},  # what jobs run with, like users' servers
    })
    service_env = {
        "ASTRAGO_DATA_DIR": str(data),  # where the service finds its config file (written above)
        "PYTHONUNBUFFERED": "1",
        **{k: v for k, v in os.environ.items() if k in ("ASTRAGO_RECONCILE_INTERVAL", "ASTRAGO_RECONCILE_GRACE",
                                                   "ASTRAGO_MONITOR_INTERVAL", "ASTRAGO_PROMETHEUS_URL", "ASTRAGO_PROMETHEUS_TOKEN",
                                                   "ASTRAGO_TEAMS_ROOT", "ASTRAGO_TEAMS_SYNC_INTERVAL")},
        # bearer access with a Keycloak access token (astrago.hub.auth.bearer)
        "ASTRAGO_OIDC_ISSUER": settings.realm_public_url,
        "ASTRAGO_OIDC_JWKS_URL": f"{settings.realm_backchannel_url}/protocol/openid-connect/certs",
        "ASTRAGO_OIDC_CLIENT_ID": CLIENT_ID,
    }
    c.JupyterHub.services = [
        {
            "name": scopes.SERVICE_NAME,
            "url": f"http://127.0.0.1:{settings.service_port}",
            "command": [sys.executable, "-m", "astrago.hub.service"],
            "environment": service_env,
            "oauth_client_allowed_scopes": scopes.oauth_scopes_for_service(),
            "oauth_no_confirm": True,
            "display": False,
        },
        {"name": "astrago-spawner", "api_token": spawner_token, "display": False},
        {
            # Keycloak, reached by browsers through the proxy (it serves under /services/realm)
            "name": "realm",
            "url": keycloak_origin(settings.keycloak_base_url),
            "display": False,
        },
    ]

    # compute: this machine
    c.JupyterHub.spawner_class = "astrago.spawners.local.LocalGPUSpawner"
    c.LocalGPUSpawner.user_env_prefix = settings.user_env
    c.LocalGPUSpawner.service_api_url = f"http://127.0.0.1:{settings.service_port}/services/{scopes.SERVICE_NAME}/api/"
    c.LocalGPUSpawner.service_api_token = spawner_token
    from .teams.spawn_hook import sync_teams_before_start

    c.LocalGPUSpawner.account_ready_hook = sync_teams_before_start  # teams' groups and ~/teams links
    c.LocalGPUSpawner.queue_timeout = float(os.environ.get("ASTRAGO_QUEUE_TIMEOUT", 600))
    c.Spawner.server_token_scopes = scopes.SERVER_TOKEN_SCOPES
    c.Spawner.environment = {"ASTRAGO_SERVICE_URL": f"{settings.public_url}/services/{scopes.SERVICE_NAME}/"}
    c.Spawner.start_timeout = int(float(os.environ.get("ASTRAGO_QUEUE_TIMEOUT", 600))) + 120  # queued spawns wait
    c.Spawner.http_timeout = 60


def realm_spec(settings: EmbeddedSettings):
    """What this platform needs of its Keycloak realm (astrago.hub.realm.admin.RealmSpec)."""
    from .realm.admin import RealmSpec

    return RealmSpec(
        name=settings.realm_name,
        frontend_url=settings.keycloak_frontend_url,
        hub_url=settings.public_url,
        backchannel_logout_url=settings.backchannel_logout_url,
        client_secret=read_or_create_secret(settings.client_secret_file),
        access_token_ttl=settings.access_token_ttl,
    )
