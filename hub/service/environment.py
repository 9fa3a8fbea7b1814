"""The one place the service reads its environment: documented variables -> traits.

JupyterHub starts the service with JUPYTERHUB_* variables, and `astrago up`, the Helm chart
and the tests set ASTRAGO_* ones. Each maps to one trait of one Configurable; the
resulting traitlets Config is loaded first, so the service's config file and its command
line override it. No other module of the service reads `os.environ` for settings.
"""
from __future__ import annotations

import os
from typing import Callable, Mapping, NamedTuple

from traitlets.config import Config


class EnvSetting(NamedTuple):
    variable: str
    section: str  # the Configurable's class name
    trait: str
    convert: Callable[[str], object] = str


def _words(value: str) -> list[str]:
    return [w.strip() for w in value.split(",") if w.strip()]


ENV_SETTINGS: tuple[EnvSetting, ...] = (
    EnvSetting("ASTRAGO_SERVICE_CONFIG", "AstraGoService", "config_file"),
    EnvSetting("ASTRAGO_DATA_DIR", "AstraGoService", "data_dir"),
    EnvSetting("ASTRAGO_DB_URL", "AstraGoService", "db_url"),
    EnvSetting("JUPYTERHUB_SERVICE_URL", "AstraGoService", "bind_url"),
    EnvSetting("JUPYTERHUB_SERVICE_PREFIX", "AstraGoService", "prefix"),
    EnvSetting("ASTRAGO_MODE", "AstraGoService", "mode"),
    EnvSetting("ASTRAGO_INVENTORY_FILE", "AstraGoService", "inventory_file"),
    EnvSetting("ASTRAGO_NODE_SELECTOR", "AstraGoService", "node_selector"),
    EnvSetting("ASTRAGO_RECONCILE_INTERVAL", "AstraGoService", "reconcile_interval", float),
    EnvSetting("ASTRAGO_RECONCILE_GRACE", "AstraGoService", "reconcile_grace", float),
    EnvSetting("ASTRAGO_SERVICE_COOKIE_SECRET", "AstraGoService", "cookie_secret_hex"),
    EnvSetting("ASTRAGO_GPU_OPERATOR_NAMESPACE", "FleetArea", "gpu_operator_namespace"),
    EnvSetting("ASTRAGO_USER_ENV", "JobsConfig", "user_env_prefix"),
    EnvSetting("ASTRAGO_SLUG_SCHEME", "JobsConfig", "slug_scheme"),
    EnvSetting("ASTRAGO_MONITOR_INTERVAL", "MonitorConfig", "sample_interval", float),
    EnvSetting("ASTRAGO_PROMETHEUS_URL", "MonitorConfig", "prometheus_url"),
    EnvSetting("ASTRAGO_PROMETHEUS_TOKEN", "MonitorConfig", "prometheus_token"),
    EnvSetting("ASTRAGO_TEAMS_ROOT", "TeamsConfig", "root"),
    EnvSetting("ASTRAGO_TEAMS_SYNC_INTERVAL", "TeamsConfig", "sync_interval", float),
    EnvSetting("ASTRAGO_ENVIRONMENTS_ROOT", "EnvironmentsArea", "root"),
    EnvSetting("ASTRAGO_OIDC_ISSUER", "KeycloakBearerConfig", "issuer"),
    EnvSetting("ASTRAGO_OIDC_CLIENT_ID", "KeycloakBearerConfig", "client_id"),
    EnvSetting("ASTRAGO_OIDC_AUDIENCES", "KeycloakBearerConfig", "audiences", _words),
    EnvSetting("ASTRAGO_OIDC_JWKS_URL", "KeycloakBearerConfig", "jwks_url"),
    EnvSetting("ASTRAGO_OIDC_LEEWAY", "KeycloakBearerConfig", "leeway", float),
    EnvSetting("ASTRAGO_OIDC_USERNAME_CLAIM", "KeycloakBearerConfig", "username_claim"),
)


class InvalidSetting(ValueError):
    """A variable holds a value its trait cannot take."""


def config_from_environment(environ: Mapping[str, str] | None = None) -> Config:
    """A traitlets Config of the documented variables that are set (and not empty)."""
    environ = os.environ if environ is None else environ
    config = Config()
    for setting in ENV_SETTINGS:
        raw = environ.get(setting.variable, "")
        if raw == "":
            continue
        try:
            value = setting.convert(raw)
        except ValueError:
            raise InvalidSetting(f"{setting.variable}={raw!r} is not a valid {setting.trait} "
                                    f"({setting.section}.{setting.trait}).") from None
        config[setting.section][setting.trait] = value
    return config


def documented_variables() -> list[str]:
    return [s.variable for s in ENV_SETTINGS]
