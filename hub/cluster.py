"""Cluster mode: JupyterHub from the Zero to JupyterHub chart, configured for AstraGo.

The counterpart of `astrago.hub.embedded`. z2jh runs its own `jupyterhub_config.py`, and
then `hub.extraConfig` (config/z2jh/values.yaml) calls

    from astrago.hub.cluster import ClusterSettings, configure_jupyterhub
    configure_jupyterhub(c, ClusterSettings.from_env())

`ClusterSettings` is the one description of a cluster deployment; every field comes from
an `ASTRAGO_*` variable of the hub pod (`hub.extraEnv`, secrets through `valueFrom`).
What z2jh already configures (proxy, hub address, user storage, images, culling) is left
to the chart; lists and dicts the chart filled are extended, never replaced. Four of the
chart's KubeSpawner settings matter and are read here, after the chart set them:

- `profile_list`: the chart always sets it (`singleuser.profileList`, default `[]`), and a
  set value beats GPUKubeSpawner's `@default`; the slice callable is set explicitly on
  `c.GPUKubeSpawner` (a subclass section wins over `c.KubeSpawner`);
- `image`: jobs that name no image run the hub's single-user image (`JobsConfig.image`);
- `pvc_name_template` and `slug_scheme`: job pods mount the volume KubeSpawner made, named
  the way KubeSpawner names it;
- `hub_connect_url` (`http://hub:8081`): with one namespace per user, pods reach the hub and
  the service by FQDN (`hub.<namespace>.svc.cluster.local`) instead.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import scopes

SERVICE_PORT = 10101


def _env(name: str, default: str = ""):
    return field(default_factory=lambda: os.environ.get(f"ASTRAGO_{name.upper()}", default))


def _flag(value) -> bool:
    return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")


@dataclass
class ClusterSettings:
    public_url: str = _env("public_url")  # https://astrago.example.org (the ingress host)
    keycloak_realm_url: str = _env("keycloak_realm_url")  # https://keycloak.example.org/realms/ml
    keycloak_client_id: str = _env("keycloak_client_id", "astrago")
    keycloak_client_secret: str = _env("keycloak_client_secret")
    keycloak_admin_role: str = _env("keycloak_admin_role", "admin")
    allowed_groups: str = _env("allowed_groups")  # comma-separated JupyterHub groups; empty: every realm user
    hub_db_url: str = _env("hub_db_url")  # JupyterHub's database (mysql+pymysql://...); empty: the chart's
    service_db_url: str = _env("db_url")  # the AstraGo service's database (mysql+pymysql://...)
    service_host: str = _env("service_host", "hub")  # the hub's Kubernetes Service (z2jh names it `hub`)
    hub_namespace: str = field(default_factory=lambda: os.environ.get("ASTRAGO_HUB_NAMESPACE")
                               or os.environ.get("POD_NAMESPACE", "default"))  # z2jh sets POD_NAMESPACE
    job_image: str = _env("job_image")  # image of jobs that name none; empty: the chart's singleuser.image
    # the users' storage as the hub pod mounts it: a shared ReadWriteMany volume whose
    # subdirectory <user> is each user's home (config/z2jh/shared-storage-values.yaml); uploads
    # land there, unfinished ones in <root>/.uploads (one filesystem: finishing is a rename)
    storage_root: str = _env("storage_root")
    service_port: int = _env("service_port", str(SERVICE_PORT))
    service_data_dir: str = _env("service_data_dir", "/srv/jupyterhub/astrago")
    spawner_token: str = _env("spawner_token")  # the spawner's identity at the service (a secret)
    mig_strategy: str = _env("mig_strategy", "mixed")
    group_slices: str = _env("group_slices", "{}")  # JSON: {"team-a": ["1g.10gb"], "*": ["cpu"]}
    queue_timeout: float = _env("queue_timeout", "600")
    default_cpu: float = _env("default_cpu", "2")
    default_memory_gib: float = _env("default_memory_gib", "8")
    user_namespaces: bool = _env("user_namespaces", "")  # one namespace per user (docs/deploy-kubernetes.md)
    user_namespace_template: str = _env("user_namespace_template", "astrago-{username}")
    gpu_operator_namespace: str = _env("gpu_operator_namespace", "gpu-operator")
    node_selector: str = _env("node_selector")  # label selector of the nodes AstraGo watches; empty: all

    def __post_init__(self):
        self.public_url = self.public_url.rstrip("/")
        self.keycloak_realm_url = self.keycloak_realm_url.rstrip("/")
        self.service_port = int(self.service_port)
        self.queue_timeout = float(self.queue_timeout)
        self.default_cpu = float(self.default_cpu)
        self.default_memory_gib = float(self.default_memory_gib)
        self.user_namespaces = _flag(self.user_namespaces)
        if self.mig_strategy not in ("mixed", "single"):
            raise ValueError(f"ASTRAGO_MIG_STRATEGY must be mixed or single, not {self.mig_strategy!r}")
        required = {"public_url": "ASTRAGO_PUBLIC_URL", "keycloak_realm_url": "ASTRAGO_KEYCLOAK_REALM_URL",
                    "keycloak_client_secret": "ASTRAGO_KEYCLOAK_CLIENT_SECRET",
                    "spawner_token": "ASTRAGO_SPAWNER_TOKEN", "service_db_url": "ASTRAGO_DB_URL"}
        missing = [variable for name, variable in required.items() if not getattr(self, name)]
        if missing:
            raise ValueError(f"cluster mode needs {', '.join(missing)} (docs/deploy-kubernetes.md)")

    @property
    def group_slice_rules(self) -> dict[str, list[str]]:
        rules = json.loads(self.group_slices or "{}")
        if not isinstance(rules, dict) or not all(isinstance(v, list) for v in rules.values()):
            raise ValueError('ASTRAGO_GROUP_SLICES must be a JSON object like {"team-a": ["1g.10gb"]}')
        return rules

    @property
    def hub_host(self) -> str:
        """The hub Service's name as users' pods must say it: the short name in one namespace,
        the FQDN when users' pods run in namespaces of their own (short names do not resolve there)."""
        if self.user_namespaces and "." not in self.service_host:
            return f"{self.service_host}.{self.hub_namespace}.svc.cluster.local"
        return self.service_host

    @property
    def service_url(self) -> str:
        """Where the proxy and users' pods reach the AstraGo service (the hub pod's extra port)."""
        return f"http://{self.hub_host}:{self.service_port}"

    @classmethod
    def from_env(cls) -> "ClusterSettings":
        return cls()


def _configured(section, name: str, default):
    """What the chart already set for `section.name` (a copy), else `default`."""
    return type(default)(section[name]) if name in section else default


#: KubeSpawner 7's PVC name template when the chart leaves `pvcNameTemplate` empty
KUBESPAWNER_PVC_NAME_TEMPLATE = "claim-{user_server}"


def service_arguments(c, settings: ClusterSettings) -> list[str]:
    """The managed service's traitlets arguments taken from what the chart configured: the job
    image (singleuser.image unless ASTRAGO_JOB_IMAGE says otherwise), the users' volume claims
    as KubeSpawner names them, and the MIG strategy jobs ask for."""
    image = settings.job_image or _configured(c.KubeSpawner, "image", "")
    claim = _configured(c.KubeSpawner, "pvc_name_template", KUBESPAWNER_PVC_NAME_TEMPLATE)
    storage = _configured(c.KubeSpawner, "storage_pvc_ensure", True)
    args = [f"--JobsConfig.mig_strategy={settings.mig_strategy}",
            f"--JobsConfig.home_claim_template={claim if storage else ''}"]
    if image:
        args.append(f"--JobsConfig.image={image}")
    if settings.storage_root:
        root = settings.storage_root.rstrip("/")
        args += [f"--UploadsConfig.storage_template={root}/{{username}}",
                 f"--UploadsConfig.data_dir={root}/.uploads", "--UploadsConfig.create_accounts=no"]
    return args


#: the service's Configurable classes an operator may set in the hub's config (z2jh: hub.config.<Class>)
SERVICE_SECTIONS = ("AstraGoService", "QuotaArea", "JobsArea", "JobsConfig", "UploadsArea", "UploadsConfig",
                    "MonitorArea", "MonitorConfig", "FleetArea", "TeamsArea", "TeamsConfig", "KeycloakBearerConfig")


def service_config_sections(c) -> dict:
    """The AstraGo service's settings found in the hub's config `c` (z2jh copies hub.config there):
    the service runs in the hub pod and loads them from its data directory."""
    return {name: dict(c[name]) for name in SERVICE_SECTIONS if name in c and len(c[name])}


def service_environment(settings: ClusterSettings, environ=os.environ) -> dict[str, str]:
    """The managed service's environment. JupyterHub passes a managed service little of the hub's
    own, so what in-cluster Kubernetes access needs (KUBERNETES_SERVICE_*) is passed on here."""
    env = {
        "ASTRAGO_DB_URL": settings.service_db_url,
        "ASTRAGO_DATA_DIR": settings.service_data_dir,
        "ASTRAGO_GPU_OPERATOR_NAMESPACE": settings.gpu_operator_namespace,
        "ASTRAGO_NODE_SELECTOR": settings.node_selector,
        "ASTRAGO_OIDC_ISSUER": settings.keycloak_realm_url,
        "ASTRAGO_OIDC_JWKS_URL": f"{settings.keycloak_realm_url}/protocol/openid-connect/certs",
        "ASTRAGO_OIDC_CLIENT_ID": settings.keycloak_client_id,
        "PYTHONUNBUFFERED": "1",
    }
    # the service's cookie secret from a Kubernetes Secret (hub.extraEnv valueFrom), so browsers stay
    # logged in to its pages across restarts of the hub pod
    for name in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "ASTRAGO_RECONCILE_INTERVAL",
                 "ASTRAGO_RECONCILE_GRACE", "ASTRAGO_SERVICE_COOKIE_SECRET"):
        if environ.get(name):
            env[name] = environ[name]
    return env


def configure_jupyterhub(c, settings: ClusterSettings, environ=os.environ) -> None:
    """Fill JupyterHub's config object `c` for cluster mode (after z2jh's own configuration)."""
    from astrago.spawners.kube.spawner import slice_profile_list

    public = settings.public_url
    if settings.hub_db_url:
        c.JupyterHub.db_url = settings.hub_db_url
    c.JupyterHub.template_paths = _configured(c.JupyterHub, "template_paths", []) + [
        str(Path(__file__).parent / "templates")]
    c.JupyterHub.template_vars = {**_configured(c.JupyterHub, "template_vars", {}), "astrago_mode": "cluster"}

    # identity: the organisation's Keycloak
    c.JupyterHub.authenticator_class = "astrago.hub.auth.KeycloakAuthenticator"
    c.KeycloakAuthenticator.realm_url = settings.keycloak_realm_url
    c.KeycloakAuthenticator.client_id = settings.keycloak_client_id
    c.KeycloakAuthenticator.client_secret = settings.keycloak_client_secret
    c.KeycloakAuthenticator.oauth_callback_url = f"{public}/hub/oauth_callback"
    c.KeycloakAuthenticator.post_logout_redirect_url = f"{public}/hub/logged-out"
    c.KeycloakAuthenticator.admin_role = settings.keycloak_admin_role
    groups = {g.strip() for g in settings.allowed_groups.split(",") if g.strip()}
    c.KeycloakAuthenticator.allowed_groups = groups
    c.KeycloakAuthenticator.allow_all = not groups

    # permissions: JupyterHub custom scopes and roles, as in embedded mode
    c.JupyterHub.custom_scopes = scopes.CUSTOM_SCOPES
    c.JupyterHub.load_roles = _configured(c.JupyterHub, "load_roles", []) + scopes.roles() + [
        scopes.service_role(),  # `tokens` included: Keycloak bearer callers get the hub's scopes
        {"name": "astrago-spawner", "description": "The hub's spawner asking the AstraGo service for admissions",
         "scopes": [scopes.ADMISSIONS, scopes.READ, f"access:services!service={scopes.SERVICE_NAME}"],
         "services": ["astrago-spawner"]},
    ]

    # the AstraGo service, managed by the hub and running in the hub pod; what hub.config sets for
    # its classes reaches it through its config file (command-line values below are derived from the chart)
    from .service.config_file import write_service_config

    write_service_config(settings.service_data_dir, service_config_sections(c))
    c.JupyterHub.services = _configured(c.JupyterHub, "services", []) + [
        {"name": scopes.SERVICE_NAME, "url": settings.service_url,
         "command": [sys.executable, "-m", "astrago.hub.service", "--AstraGoService.mode=cluster",
                     f"--AstraGoService.bind_url=http://0.0.0.0:{settings.service_port}/",
                     *service_arguments(c, settings)],
         "environment": {**service_environment(settings, environ),
                         "ASTRAGO_SLUG_SCHEME": _configured(c.KubeSpawner, "slug_scheme", "safe")},
         "oauth_client_allowed_scopes": scopes.oauth_scopes_for_service(), "oauth_no_confirm": True,
         "display": False},
        {"name": "astrago-spawner", "api_token": settings.spawner_token, "display": False},
    ]

    # compute: users' pods on GPU slices
    c.JupyterHub.spawner_class = "astrago.spawners.kube.GPUKubeSpawner"
    # the chart set c.KubeSpawner.profile_list ([] by default); the subclass's section wins
    c.GPUKubeSpawner.profile_list = slice_profile_list
    c.GPUKubeSpawner.service_api_url = f"http://127.0.0.1:{settings.service_port}/services/{scopes.SERVICE_NAME}/api/"
    c.GPUKubeSpawner.service_api_token = settings.spawner_token
    c.GPUKubeSpawner.mig_strategy = settings.mig_strategy
    c.GPUKubeSpawner.group_slices = settings.group_slice_rules
    c.GPUKubeSpawner.queue_timeout = settings.queue_timeout
    c.GPUKubeSpawner.default_cpu = settings.default_cpu
    c.GPUKubeSpawner.default_memory_gib = settings.default_memory_gib
    c.KubeSpawner.environment = {**_configured(c.KubeSpawner, "environment", {}),
                                 "ASTRAGO_SERVICE_URL": f"{settings.service_url}/services/{scopes.SERVICE_NAME}/"}
    c.KubeSpawner.default_url = "/lab"
    c.KubeSpawner.start_timeout = int(settings.queue_timeout) + 300  # queued spawns wait, then images pull
    c.Spawner.server_token_scopes = scopes.SERVER_TOKEN_SCOPES
    if settings.user_namespaces:
        c.KubeSpawner.enable_user_namespaces = True
        c.KubeSpawner.user_namespace_template = settings.user_namespace_template
        # the chart's http://hub:8081 does not resolve from a user's namespace
        port = _hub_port(_configured(c.JupyterHub, "hub_connect_url", "")) or 8081
        c.JupyterHub.hub_connect_url = f"http://{settings.hub_host}:{port}"


def _hub_port(url: str) -> int | None:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).port if url else None
    except ValueError:
        return None
