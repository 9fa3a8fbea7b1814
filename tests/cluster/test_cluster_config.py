"""hub/cluster.py: the cluster-mode JupyterHub configuration (the counterpart of hub/embedded.py),
and the service's inventory in cluster mode (hub/quota/inventory_source.py's cluster branch)."""
import runpy
import sys

import pytest
from traitlets.config import Config

from astrago.hub import scopes
from astrago.hub.cluster import ClusterSettings, configure_jupyterhub, service_environment
from repo_files import REPO

ENV = {"ASTRAGO_PUBLIC_URL": "https://astrago.example.org/", "ASTRAGO_KEYCLOAK_REALM_URL": "https://kc.example.org/realms/ml",
       "ASTRAGO_KEYCLOAK_CLIENT_SECRET": "kc-secret", "ASTRAGO_SPAWNER_TOKEN": "spawner-secret",
       "ASTRAGO_DB_URL": "mysql+pymysql://astrago:pw@mariadb/astrago",
       "ASTRAGO_HUB_DB_URL": "mysql+pymysql://jupyterhub:pw@mariadb/jupyterhub",
       "ASTRAGO_GROUP_SLICES": '{"vision": ["1g.10gb"]}', "ASTRAGO_ALLOWED_GROUPS": "ml, vision"}


@pytest.fixture
def settings(monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    return ClusterSettings.from_env()


def test_settings_from_the_environment(settings):
    assert (settings.public_url, settings.service_url, settings.service_port) == (
        "https://astrago.example.org", "http://hub:10101", 10101)
    assert settings.group_slice_rules == {"vision": ["1g.10gb"]}


def test_missing_secrets_are_named(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError) as missing:
        ClusterSettings.from_env()
    assert str(missing.value) == ("cluster mode needs ASTRAGO_PUBLIC_URL, ASTRAGO_KEYCLOAK_REALM_URL, "
                                  "ASTRAGO_KEYCLOAK_CLIENT_SECRET, ASTRAGO_SPAWNER_TOKEN, ASTRAGO_DB_URL "
                                  "(docs/deploy-kubernetes.md)")


def test_the_configuration_extends_what_the_chart_set(settings):
    c = Config()
    c.KubeSpawner.environment = {"FROM_CHART": "1"}
    c.JupyterHub.services = [{"name": "chart-service"}]
    c.JupyterHub.load_roles = [{"name": "chart-role", "scopes": []}]
    environ = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    configure_jupyterhub(c, settings, environ)
    assert c.JupyterHub.db_url == "mysql+pymysql://jupyterhub:pw@mariadb/jupyterhub"
    assert c.JupyterHub.spawner_class == "astrago.spawners.kube.GPUKubeSpawner"
    assert c.JupyterHub.authenticator_class == "astrago.hub.auth.KeycloakAuthenticator"
    assert c.KeycloakAuthenticator.oauth_callback_url == "https://astrago.example.org/hub/oauth_callback"
    assert c.KeycloakAuthenticator.allowed_groups == {"ml", "vision"} and c.KeycloakAuthenticator.allow_all is False
    assert c.KubeSpawner.environment == {"FROM_CHART": "1", "ASTRAGO_SERVICE_URL": "http://hub:10101/services/astrago/"}
    assert [r["name"] for r in c.JupyterHub.load_roles][:1] == ["chart-role"]
    assert {"astrago-service", "astrago-spawner", scopes.FLEET_ADMIN_ROLE} <= {r["name"] for r in c.JupyterHub.load_roles}
    names = [s["name"] for s in c.JupyterHub.services]
    assert names == ["chart-service", "astrago", "astrago-spawner"]
    service = c.JupyterHub.services[1]
    assert service["url"] == "http://hub:10101"
    assert service["command"] == [sys.executable, "-m", "astrago.hub.service", "--AstraGoService.mode=cluster",
                                  "--AstraGoService.bind_url=http://0.0.0.0:10101/", "--JobsConfig.mig_strategy=mixed",
                                  "--JobsConfig.home_claim_template=claim-{user_server}"]  # no chart image set here
    assert service["environment"] == {**service_environment(settings, environ), "ASTRAGO_SLUG_SCHEME": "safe"}
    assert service["environment"]["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"  # in-cluster config in the service
    assert c.JupyterHub.services[2] == {"name": "astrago-spawner", "api_token": "spawner-secret", "display": False}
    assert c.GPUKubeSpawner.service_api_url == "http://127.0.0.1:10101/services/astrago/api/"
    assert c.GPUKubeSpawner.group_slices == {"vision": ["1g.10gb"]}
    assert c.Spawner.server_token_scopes == scopes.SERVER_TOKEN_SCOPES
    assert "enable_user_namespaces" not in c.KubeSpawner


def test_user_namespaces_are_optional(settings):
    settings.user_namespaces = True
    c = Config()
    configure_jupyterhub(c, settings, {})
    assert (c.KubeSpawner.enable_user_namespaces, c.KubeSpawner.user_namespace_template) == (True, "astrago-{username}")


def test_jupyterhub_config_py_has_a_cluster_branch(settings, monkeypatch):
    monkeypatch.setenv("ASTRAGO_MODE", "cluster")
    c = Config()
    runpy.run_path(str(REPO / "config/jupyterhub_config.py"), init_globals={"get_config": lambda: c})
    assert c.JupyterHub.spawner_class == "astrago.spawners.kube.GPUKubeSpawner"


def test_the_service_cookie_secret_comes_from_the_hub_pods_secret_env():
    settings = ClusterSettings(public_url="https://astrago.example.org",
                               keycloak_realm_url="https://kc.example.org/realms/ml", keycloak_client_secret="x",
                               spawner_token="t", service_db_url="mysql+pymysql://u@db/astrago")
    env = service_environment(settings, {"ASTRAGO_SERVICE_COOKIE_SECRET": "from-a-secret"})
    assert env["ASTRAGO_SERVICE_COOKIE_SECRET"] == "from-a-secret"
    assert "ASTRAGO_SERVICE_COOKIE_SECRET" not in service_environment(settings, {})
