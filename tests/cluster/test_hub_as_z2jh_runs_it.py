"""The hub as z2jh runs it: the chart's own KubeSpawner settings first (z2jh_chart.py encodes
its jupyterhub_config.py at 4.4.0), then AstraGo's `hub.extraConfig`, then the spawner and
the service made from that configuration. Pure: no hub, no cluster."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
import yaml

from astrago.hub.cluster import ClusterSettings, configure_jupyterhub
from astrago.spawners.kube import GPUKubeSpawner
from astrago.spawners.kube.spawner import slice_profile_list
from repo_files import REPO
from z2jh_chart import CHART_DEFAULTS, chart_config, pre_puller_tolerations

VALUES = yaml.safe_load((REPO / "config/z2jh/values.yaml").read_text())
USER_NAMESPACES = yaml.safe_load((REPO / "config/z2jh/user-namespaces-values.yaml").read_text())
GPU_TAINT = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


@pytest.fixture(autouse=True)
def no_kube_client(monkeypatch):
    """KubeSpawner makes its API client when constructed; nothing here calls it."""
    import kubespawner.spawner

    monkeypatch.setattr(kubespawner.spawner, "load_config", lambda **kw: None)
    monkeypatch.setattr(kubespawner.spawner, "shared_client", lambda *a, **k: object())


def _hub_env(monkeypatch, values):
    for name, value in values["hub"]["extraEnv"].items():
        monkeypatch.setenv(name, value if isinstance(value, str) else f"secret-{name.lower()}")
    monkeypatch.setenv("POD_NAMESPACE", "astrago")


def run_hub_config(monkeypatch, *values_files):
    """The chart's configuration for `values_files`, then AstraGo's extraConfig snippet."""
    c, values = chart_config(*values_files)
    _hub_env(monkeypatch, values)
    exec(values["hub"]["extraConfig"]["astrago.py"], {"c": c})
    return c, values


def spawner_from(c, user="alice@example.org"):
    account = SimpleNamespace(name=user, id=7, url=f"/user/{user}/", groups=[])
    return GPUKubeSpawner(_mock=True, config=c, user=account)


# -- 3: the slice choice survives the chart's profile_list = [] ---------------------------------

def test_the_chart_default_profile_list_would_hide_the_slices():
    c, _ = chart_config({})  # the chart alone, no AstraGo: profile_list = [] is SET
    assert c.KubeSpawner.profile_list == []
    assert spawner_from(c).profile_list == []


def test_the_slice_callable_wins_over_the_charts_profile_list(monkeypatch):
    chart_default, _ = chart_config({})  # even with the chart's [] left in place
    _hub_env(monkeypatch, VALUES)
    configure_jupyterhub(chart_default, ClusterSettings.from_env())
    assert chart_default.KubeSpawner.profile_list == []
    assert spawner_from(chart_default).profile_list is slice_profile_list

    c, values = run_hub_config(monkeypatch, VALUES)  # AstraGo's values: profileList null, unset
    assert "profileList" not in values["singleuser"] and "profile_list" not in c.KubeSpawner
    spawner = spawner_from(c)
    assert spawner.profile_list is slice_profile_list


def test_the_callable_lists_what_the_service_offers(monkeypatch):
    c, _ = run_hub_config(monkeypatch, VALUES)
    spawner = spawner_from(c)

    async def offers(user, groups):
        return {"offers": [{"slice": "cpu", "kind": "cpu"},
                           {"slice": "1g.10gb", "kind": "mig", "gpu_units": 1 / 7, "memory_gib": 10, "free": 3}]}

    async def environments(user):
        return []  # no environment in the catalogue: the deployment's image only

    # the service's answer, without HTTP
    monkeypatch.setattr(GPUKubeSpawner, "admission",
                        property(lambda self: SimpleNamespace(offers=offers, environments=environments)))
    profiles = asyncio.run(spawner.profile_list(spawner))
    assert [(p["slug"], p.get("default", False)) for p in profiles] == [("cpu", False), ("1g-10gb", True)]


# -- 5: users' pods reach the service port -------------------------------------------------------

def test_user_pods_may_reach_the_service_port_on_the_hub_pod(monkeypatch):
    c, _ = run_hub_config(monkeypatch, VALUES)
    assert c.KubeSpawner.environment["ASTRAGO_SERVICE_URL"] == "http://hub:10101/services/astrago/"
    assert VALUES["singleuser"]["networkPolicy"]["egress"] == [
        {"to": [{"podSelector": {"matchLabels": {"component": "hub"}}}], "ports": [{"port": 10101, "protocol": "TCP"}]}]
    # and the hub pod admits them there
    assert VALUES["hub"]["networkPolicy"]["ingress"][0]["ports"] == [{"port": 10101, "protocol": "TCP"}]


# -- 7 and 6: jobs run the hub's single-user image and mount the volume KubeSpawner made ---------

def _service_args(c):
    service = next(s for s in c.JupyterHub.services if s["name"] == "astrago")
    return service["command"], service["environment"]


def test_jobs_default_to_the_charts_singleuser_image_and_its_claims(monkeypatch):
    c, _ = run_hub_config(monkeypatch, VALUES)
    command, env = _service_args(c)
    assert c.KubeSpawner.image == "harbor.example.org/astrago/singleuser:0.1.0"
    assert command[-3:] == ["--JobsConfig.mig_strategy=mixed", "--JobsConfig.home_claim_template=claim-{user_server}",
                            "--JobsConfig.image=harbor.example.org/astrago/singleuser:0.1.0"]
    assert env["ASTRAGO_SLUG_SCHEME"] == "safe"


def test_jobs_mount_the_claim_kubespawner_names_from_the_same_settings(monkeypatch):
    from astrago.hub.jobs.manifests import user_claim_name

    c, _ = run_hub_config(monkeypatch, VALUES)
    command, _env = _service_args(c)
    template = next(a for a in command if a.startswith("--JobsConfig.home_claim_template=")).split("=", 1)[1]
    for user in ("alice@example.org", "bob", "Ünïcode.Ünser"):
        assert user_claim_name(template, user) == spawner_from(c, user).pvc_name
    assert spawner_from(c).pvc_name == "claim-alice-example-org---7a64adf2"


def test_the_job_image_and_claim_template_can_be_set(monkeypatch):
    monkeypatch.setenv("ASTRAGO_JOB_IMAGE", "harbor.example.org/astrago/train:2")
    c, values = chart_config(VALUES, {"singleuser": {"storage": {"dynamic": {"pvcNameTemplate": "home-{username}"}}}})
    _hub_env(monkeypatch, values)
    c.KubeSpawner.slug_scheme = "escape"
    exec(values["hub"]["extraConfig"]["astrago.py"], {"c": c})
    command, env = _service_args(c)
    assert "--JobsConfig.image=harbor.example.org/astrago/train:2" in command
    assert "--JobsConfig.home_claim_template=home-{username}" in command
    assert env["ASTRAGO_SLUG_SCHEME"] == "escape"


def test_the_service_takes_the_arguments():
    from astrago.hub.jobs.config import JobsConfig
    from astrago.hub.service.app import AstraGoService

    app = AstraGoService()
    app.parse_command_line(["--JobsConfig.image=harbor.example.org/astrago/singleuser:0.1.0",
                            "--JobsConfig.home_claim_template=claim-{user_server}"])
    jobs = JobsConfig(parent=app)
    assert (jobs.image, jobs.home_claim_template) == ("harbor.example.org/astrago/singleuser:0.1.0",
                                                      "claim-{user_server}")


# -- 8: one namespace per user -------------------------------------------------------------------

def test_with_user_namespaces_pods_reach_the_hub_by_fqdn(monkeypatch):
    c, values = run_hub_config(monkeypatch, VALUES, USER_NAMESPACES)
    assert c.KubeSpawner.enable_user_namespaces is True
    assert c.JupyterHub.hub_connect_url == "http://hub.astrago.svc.cluster.local:8081"
    assert c.KubeSpawner.environment["ASTRAGO_SERVICE_URL"] == \
        "http://hub.astrago.svc.cluster.local:10101/services/astrago/"
    policy = values["hub"]["networkPolicy"]
    assert policy["interNamespaceAccessLabels"] == "accept"
    assert policy["ingress"][0]["from"][0] == {
        "podSelector": {"matchLabels": {"hub.jupyter.org/network-access-hub": "true"}}, "namespaceSelector": {}}
    assert values["hub"]["extraEnv"]["ASTRAGO_SPAWNER_TOKEN"] == VALUES["hub"]["extraEnv"]["ASTRAGO_SPAWNER_TOKEN"]


def test_in_one_namespace_the_charts_short_names_stay(monkeypatch):
    c, _ = run_hub_config(monkeypatch, VALUES)
    assert c.JupyterHub.hub_connect_url == "http://hub:8081"
    assert "enable_user_namespaces" not in c.KubeSpawner


# -- 11: the pre-puller reaches the GPU nodes; CPU-only pods do not ------------------------------

def test_the_pre_puller_tolerates_the_gpu_taint_but_user_pods_do_not(monkeypatch):
    c, values = run_hub_config(monkeypatch, VALUES)
    assert GPU_TAINT in pre_puller_tolerations(values)
    assert GPU_TAINT not in pre_puller_tolerations(CHART_DEFAULTS)
    assert GPU_TAINT not in c.KubeSpawner.tolerations  # a GPU slice adds it (spawners/manifests.py)


# -- 12: versions that exist ---------------------------------------------------------------------

def test_the_chart_and_hub_image_are_pinned_to_a_released_4x():
    app = yaml.safe_load((REPO / "config/argocd/application.yaml").read_text())
    assert app["spec"]["sources"][0]["targetRevision"] == "4.4.0"
    assert "ARG HUB_IMAGE=jupyterhub/k8s-hub:4.4.0\n" in (REPO / "images/hub/Dockerfile").read_text()
    assert "--version 4.4.0" in (REPO / "config/z2jh/values.yaml").read_text()
    assert VALUES["hub"]["db"]["upgrade"] is True  # the image upgrades JupyterHub 5.5 -> 6.x


@pytest.mark.parametrize("path", sorted((REPO / "spawners/kube").glob("*.py")), ids=lambda p: p.name)
def test_gpu_kube_spawner_overrides_no_private_kubespawner_method(path):
    assert "def _start(" not in path.read_text()
    from kubespawner import KubeSpawner

    private = {name for name in vars(KubeSpawner) if name.startswith("_") and not name.startswith("__")}
    assert not private & {name for name in vars(GPUKubeSpawner) if callable(vars(GPUKubeSpawner)[name])}


# -- 9: uploads land on the users' volume, not in the hub container ------------------------------

SHARED_STORAGE = yaml.safe_load((REPO / "config/z2jh/shared-storage-values.yaml").read_text())


def test_with_shared_storage_uploads_land_in_the_users_home_on_the_volume(monkeypatch):
    c, values = run_hub_config(monkeypatch, VALUES, SHARED_STORAGE)
    command, _env = _service_args(c)
    assert command[-3:] == ["--UploadsConfig.storage_template=/srv/astrago-storage/{username}",
                            "--UploadsConfig.data_dir=/srv/astrago-storage/.uploads",
                            "--UploadsConfig.create_accounts=no"]
    assert values["hub"]["extraVolumeMounts"] == [{"name": "astrago-homes", "mountPath": "/srv/astrago-storage"}]
    # the user's server mounts the same volume at the subdirectory the service writes to
    assert values["singleuser"]["storage"]["static"] == {"pvcName": "astrago-homes", "subPath": "{unescaped_username}"}
    assert spawner_from(c)._expand_user_properties("{unescaped_username}") == "alice@example.org"

    from astrago.hub.service.app import AstraGoService
    from astrago.hub.uploads.config import UploadsConfig

    app = AstraGoService()
    app.parse_command_line(command[3:])
    uploads = UploadsConfig(parent=app)
    assert (uploads.storage_template, uploads.data_dir) == ("/srv/astrago-storage/{username}",
                                                            "/srv/astrago-storage/.uploads")
