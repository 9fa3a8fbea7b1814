"""Environments in cluster mode, on the suite's real control plane with the hub as z2jh runs it
(tests/e2e_k8s/cluster_hub.py): an admin registers an image; the spawn page offers it as every
profile's environment option; the server's pod runs that image with its pull policy; the catalogue
refuses packages (a cluster runs images).

Real: kube-apiserver, kube-scheduler, kube-controller-manager, KWOK nodes, JupyterHub, the proxy,
the AstraGo service, Keycloak. Doubles, named: the container runtime (it runs the pod's command as a
local process and no image), the cluster's DNS and the service account's files (cluster_hub.py).
"""
from __future__ import annotations

import secrets
import shutil
import tempfile
from pathlib import Path

import pytest
import requests

from support.fixtures import require

IMAGE = "registry.example.org/ml/probe-notebook:1.0"


@pytest.fixture(scope="module")
def cluster_hub(control_plane):
    """The hub as z2jh runs it, on the suite's one control plane (tests/e2e_k8s/conftest.py)."""
    from support.keycloak import keycloak_available, session_keycloak

    require(keycloak_available(), "Keycloak (make test fetches and builds it: build/keycloak)")
    from cluster_hub import ClusterHub
    from support.platform import ARTIFACTS

    root = Path(tempfile.mkdtemp(prefix="astrago-cluster-envs-"))
    hub = None
    try:
        hub = ClusterHub(control_plane, session_keycloak(), root)
        hub.start()
        yield hub
    finally:
        if hub is not None:
            hub.stop()
            ARTIFACTS.mkdir(exist_ok=True)
            shutil.copy(hub.log_path, ARTIFACTS / "environments-cluster-jupyterhub.log")
        shutil.rmtree(root, ignore_errors=True)


def test_an_image_environment_is_offered_on_the_profiles_and_the_pod_runs_it(cluster_hub):
    hub = cluster_hub
    admin, admin_password = hub.add_user("adm", roles=["admin"])  # the realm role of administrators
    admin_token = hub.token(hub.login(admin, admin_password), admin)
    name = "probe" + secrets.token_hex(2)

    def service(method, path, token, **kw):
        return requests.request(method, hub.service_api + path, headers={"Authorization": f"token {token}"},
                                timeout=60, **kw)

    r = service("POST", "environments", admin_token, json={"name": name, "packages": "six"})
    assert r.status_code == 400 and "container image" in r.json()["detail"], r.text
    r = service("POST", "environments", admin_token, json={"name": name, "image": IMAGE, "pull_policy": "Always",
                                                            "description": "the probe image"})
    assert r.status_code == 201, r.text
    assert (r.json()["status"], r.json()["kind"], r.json()["image"]) == ("ready", "image", IMAGE)

    user, password = hub.add_user("ivy")
    session = hub.login(user, password)
    token = hub.token(session, user)
    page = session.get(f"{hub.url}/hub/spawn", timeout=60).text
    assert 'name="profile-option-cpu--environment"' in page and f'value="{name}"' in page, page[:4000]

    answer = session.post(f"{hub.url}/hub/spawn/{user}", timeout=60, allow_redirects=False,
                          data={"profile": "cpu", "profile-option-cpu--environment": name, "_xsrf": hub.xsrf(session)})
    assert answer.status_code == 302, answer.text[:2000]
    events = hub.progress(token, user, timeout=150)
    assert events and events[-1].get("ready"), f"{events}\n{hub.log()[-6000:]}"
    try:
        container = hub.user_pod(user)["spec"]["containers"][0]
        assert (container["image"], container["imagePullPolicy"]) == (IMAGE, "Always")
        assert {"name": "ASTRAGO_ENVIRONMENT", "value": name} in container["env"]
        r = service("DELETE", f"environments/{name}", admin_token)
        assert r.status_code == 409 and r.json()["servers"] == [{"user": user, "server": ""}], r.text
    finally:
        hub.stop_server(token, user)
    assert service("DELETE", f"environments/{name}", admin_token).status_code == 204
