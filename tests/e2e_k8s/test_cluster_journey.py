"""The cluster-mode journey on the real control plane, with the hub as z2jh runs it (cluster_hub.py).

Log in through Keycloak, see the slices your groups allow, spawn on a MIG slice that kube-scheduler
places on the MIG node, reach JupyterLab through the proxy, stop and see the allocation released;
a batch job from that server's environment run to completion by the real Job controller; and
waiting in plain words when no node has the slice free (a pod made with the admin client, as
plain kubectl would, holds the slice).

Real: kube-apiserver (RBAC for the hub's service account: only the chart's hub Role and
config/z2jh/astrago-rbac.yaml), kube-scheduler, kube-controller-manager (Job controller, PV
binder), KWOK's node and pod lifecycle, JupyterHub, configurable-http-proxy, the AstraGo service,
Keycloak, JupyterLab. Doubles, named: the container runtime (tests/controlplane/pod_runtime.py),
the storage provisioner, the cluster's DNS and the service account's mounted files (cluster_hub.py).
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest
import requests

from support.fixtures import require

MIG_NODE = "gpu-mig-1"
H100_PRODUCT = "NVIDIA-H100-80GB-HBM3"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
#: what each group may start (ASTRAGO_GROUP_SLICES); everyone may start a CPU-only server
GROUP_SLICES = {"team-gpu": ["1g.10gb", "3g.40gb"], "team-mps": ["mps-25"]}


@pytest.fixture(scope="module")
def cluster_hub(control_plane):
    from support.keycloak import keycloak_available, session_keycloak

    require(keycloak_available(), "Keycloak (make test fetches and builds it: build/keycloak)")
    from cluster_hub import VALUES_FILE, ClusterHub

    root = Path(tempfile.mkdtemp(prefix="astrago-cluster-hub-"))
    # a site's values that leave the chart's `singleuser.profileList: []` in place: the slice
    # choice must survive it (defect 3), not only AstraGo's own `profileList: null`
    site = root / "site-values.yaml"
    site.write_text("singleuser:\n  profileList: []\n")
    hub = ClusterHub(control_plane, session_keycloak(), root, group_slices=GROUP_SLICES,
                     values_files=[VALUES_FILE, site])
    try:
        hub.start()
        yield hub
    finally:
        hub.stop()
        from support.platform import ARTIFACTS

        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(hub.log_path, ARTIFACTS / "cluster-journey-jupyterhub.log")
        shutil.rmtree(root, ignore_errors=True)


# -- helpers ---------------------------------------------------------------------------------------

def scheduled_event(control_plane, namespace: str, pod: str) -> dict | None:
    events = control_plane.rest.list("v1", "Event", namespace,
                                     fieldSelector=f"involvedObject.name={pod},reason=Scheduled")["items"]
    return events[0] if events else None


def free_on_nodes(control_plane, resource: str) -> dict[str, int]:
    """What kube-scheduler has left of `resource` on each node: allocatable minus bound pods' requests."""
    rest = control_plane.rest
    free = {n["metadata"]["name"]: int(n["status"].get("allocatable", {}).get(resource, 0))
            for n in rest.list("v1", "Node")["items"]}
    for pod in rest.list("v1", "Pod")["items"]:
        node = pod["spec"].get("nodeName")
        if not node or pod["status"].get("phase") in ("Succeeded", "Failed") or node not in free:
            continue
        for container in pod["spec"]["containers"]:
            free[node] -= int(((container.get("resources") or {}).get("requests") or {}).get(resource, 0))
    return {n: f for n, f in free.items() if f > 0}


def kubectl_pod(name: str, namespace: str, resource: str) -> dict:
    """A pod as `kubectl run` would make it with a GPU request: no AstraGo labels, no admission."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "c", "image": "registry.invalid/train:1",
                                     "resources": {"limits": {resource: "1"}, "requests": {resource: "1"}}}],
                     "tolerations": [GPU_TOLERATION]}}


def offer(hub, token: str, username: str, slice_name: str) -> dict:
    r = hub.service("GET", f"users/{username}/offers", token=token)
    assert r.status_code == 200, r.text
    return next(o for o in r.json()["offers"] if o["slice"] == slice_name)


def messages(events: list[dict]) -> list[str]:
    return [e.get("message", "") for e in events]


# -- 1: spawn on a MIG slice, over HTTP ----------------------------------------------------------

def test_spawn_on_a_mig_slice_reaches_jupyterlab_and_stop_releases_it(cluster_hub, control_plane):
    hub = cluster_hub
    name, password = hub.add_user("mia", groups=["/team-gpu"])
    plain, plain_password = hub.add_user("nog")
    session = hub.login(name, password)

    # the spawn page lists the slices the user's groups allow (the chart's profile_list = [] is set)
    page, profiles = hub.spawn_page_profiles(session)
    assert sorted(profiles) == ["1g-10gb", "3g-40gb", "cpu"], page[:3000]
    assert "MIG 1g.10gb" in page and "MPS" not in page
    _, others = hub.spawn_page_profiles(hub.login(plain, plain_password))
    assert others == ["cpu"]

    token = hub.token(session, name)
    answer = hub.spawn_from_form(session, name, "1g-10gb")
    assert answer.status_code == 302 and "/spawn-pending/" in answer.headers["Location"], answer.text[:2000]
    events = hub.progress(token, name, timeout=150)
    assert events and events[-1].get("ready"), f"{events}\n{hub.log()[-6000:]}"
    words = messages(events)
    assert any(m.startswith("Admitted: 1g.10gb") for m in words), words

    # kube-scheduler placed it on the MIG node, asking for exactly one 1g.10gb instance
    pod = hub.user_pod(name)
    assert pod["spec"]["nodeName"] == MIG_NODE
    scheduled = scheduled_event(control_plane, "astrago", pod["metadata"]["name"])
    assert (scheduled.get("reportingComponent") or scheduled["source"].get("component")) == "default-scheduler"
    assert scheduled["message"].endswith(f"to {MIG_NODE}"), scheduled["message"]
    container = pod["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/mig-1g.10gb"] == "1"
    assert container["resources"]["requests"]["nvidia.com/mig-1g.10gb"] == "1"
    assert GPU_TOLERATION in pod["spec"]["tolerations"]
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"]
    assert any(e["key"] == "nvidia.com/gpu.product" and H100_PRODUCT in e["values"]
               for t in terms for e in t["matchExpressions"]), terms
    assert pod["metadata"]["labels"]["astrago.io/slice"] == "1g.10gb"
    assert pod["status"]["podIP"].startswith("127.77.")

    # JupyterLab answers through the proxy
    status = requests.get(f"{hub.url}/user/{name}/api/status", headers={"Authorization": f"token {token}"},
                          timeout=30)
    assert status.status_code == 200, status.text
    [held] = hub.allocations(name)
    assert (held["slice"], held["status"]) == ("1g.10gb", "admitted")

    hub.stop_server(token, name)
    control_plane.wait_for(lambda: hub.user_pod(name) is None, "the user's pod deleted", 60)
    assert hub.allocations(name) == []
