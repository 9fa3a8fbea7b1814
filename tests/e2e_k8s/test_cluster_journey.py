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



def test_the_same_journey_in_chromium(cluster_hub, control_plane, chromium, artifacts):
    """Log in at Keycloak's page, choose the MIG slice on the spawn page, land in JupyterLab."""
    hub = cluster_hub
    name, password = hub.add_user("ivy", groups=["/team-gpu"])
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(hub.url + "/")
        page.wait_for_url("**/hub/login**")
        page.click("a[href*='oauth_login']")
        page.wait_for_url(hub.realm_url + "/**")
        page.screenshot(path=str(artifacts / "cluster-01-keycloak-login.png"))
        page.fill("input[name=username]", name)
        page.fill("input[name=password]", password)
        page.click("button[type=submit], input[type=submit]")
        page.wait_for_url("**/hub/spawn**")
        radios = page.locator("input[name=profile]")
        assert sorted(radios.nth(i).get_attribute("value") for i in range(radios.count())) == [
            "1g-10gb", "3g-40gb", "cpu"]
        assert page.get_by_text("MIG 1g.10gb").is_visible()
        page.check("input[name=profile][value='1g-10gb']")
        page.screenshot(path=str(artifacts / "cluster-02-spawn-slices.png"), full_page=True)
        page.click("#spawn_form input[type=submit], #spawn_form button[type=submit]")
        page.wait_for_url(f"**/user/{name}/lab**", timeout=150_000)
        page.wait_for_selector(".jp-LauncherCard, .jp-Launcher", timeout=120_000)
        page.screenshot(path=str(artifacts / "cluster-03-jupyterlab.png"))
    finally:
        page.close()
    pod = hub.user_pod(name)
    assert pod["spec"]["nodeName"] == MIG_NODE
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/mig-1g.10gb"] == "1"
    token = hub.token(hub.login(name, password), name)
    hub.stop_server(token, name)
    assert hub.allocations(name) == []


# -- 2: a batch job from the server's kernel -------------------------------------------------------

JOB_CELL = ("%%job --name cell-job --slice 1g.10gb --param epochs=3 --follow\n"
            "import os\n"
            "print('epochs', epochs * 2)\n"
            "print('cwd', os.getcwd())\n")


def test_job_from_the_kernel_runs_as_a_batch_job_to_completion_and_its_log_comes_back(cluster_hub, control_plane):
    from cluster_hub import run_cells

    hub, rest = cluster_hub, control_plane.rest
    name, password = hub.add_user("pia.k", groups=["/team-gpu"])  # a dot: KubeSpawner's safe slug hashes it
    token = hub.token(hub.login(name, password), name)
    assert hub.hub_api(token, "POST", f"users/{name}/server", json={"slice": "1g.10gb"}).status_code in (201, 202)
    hub.wait_ready(token, name, 150)
    claim = hub.user_pod(name)["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
    assert claim.startswith("claim-pia-k") and "---" in claim  # KubeSpawner 7's `safe` scheme

    # the kernel runs in the user's pod with its env (ASTRAGO_SERVICE_URL, the server's token);
    # the singleuser image loads the magics from its ipython_config, this environment by %load_ext
    loaded, cell = run_cells(hub.url, name, token, ["%load_ext astrago", JOB_CELL], timeout=150)
    assert loaded["status"] == "ok", loaded
    assert cell["status"] == "ok" and cell["error"] is None, cell
    assert "epochs 6" in cell["stdout"] and "completed." in cell["stdout"], cell
    volume = control_plane.storage.volume_path("astrago", claim)
    assert f"cwd {volume}" in cell["stdout"], cell  # the job pod mounted the user's own claim

    # the service asked Kubernetes, with the hub's service account, for a batch/v1 Job; the real
    # Job controller made its pod and completed it from the pod's exit code
    [job] = [j for j in hub.service("GET", "jobs", token=token).json()["jobs"] if j["name"] == "cell-job"]
    assert job["status"] == "COMPLETED" and job["exit_code"] == 0, job
    [kube_job] = [j for j in rest.list("batch/v1", "Job", "astrago")["items"]
                  if (j["metadata"].get("annotations") or {}).get("astrago.io/user") == name
                  or j["spec"]["template"]["metadata"].get("annotations", {}).get("astrago.io/user") == name]
    complete = [c for c in kube_job["status"].get("conditions") or [] if c["type"] == "Complete"]
    assert complete and complete[0]["status"] == "True", kube_job["status"]
    assert kube_job["status"].get("succeeded") == 1
    [job_pod] = rest.list("v1", "Pod", "astrago", labelSelector=f"job-name={kube_job['metadata']['name']}")["items"]
    assert job_pod["spec"]["nodeName"] == MIG_NODE
    container = job_pod["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/mig-1g.10gb"] == "1"
    assert job_pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim
    assert job_pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    # and its log, read through pods/log by the service, is the job's log for the user
    log = hub.service("GET", f"jobs/{job['id']}/log", token=token)
    assert log.status_code == 200 and "epochs 6" in log.text, log.text

    hub.stop_server(token, name)
    assert hub.allocations(name) == []


# -- 3: waiting in plain words; a pod AstraGo did not make holds its slice ------------------------

def hold_every_free(control_plane, namespace: str, resource: str) -> list[str]:
    """Admin-client pods (as `kubectl run` makes them) on every free `resource`; returns their names."""
    free = free_on_nodes(control_plane, resource)
    assert list(free) == [MIG_NODE], free  # only the MIG node has this profile
    names = [f"hold-{i}" for i in range(free[MIG_NODE])]
    for name in names:
        control_plane.rest.create(kubectl_pod(name, namespace, resource))
    for name in names:
        control_plane.wait_for(lambda: (control_plane.rest.read("v1", "Pod", name, namespace) or {}).get(
            "spec", {}).get("nodeName"), f"pod {name} bound by kube-scheduler")
    assert free_on_nodes(control_plane, resource) == {}
    return names


def queued(events: list[dict]) -> bool:
    return any(m.startswith("Queued:") for m in messages(events))


def test_no_free_slice_waits_in_plain_words_and_starts_when_one_frees(cluster_hub, control_plane, namespace):
    hub = cluster_hub
    name, password = hub.add_user("qin", groups=["/team-gpu"])
    token = hub.token(hub.login(name, password), name)
    holders = hold_every_free(control_plane, namespace, "nvidia.com/mig-1g.10gb")
    # the service counts what kube-scheduler counts: the pods it did not admit, from its pod watch
    control_plane.wait_for(lambda: offer(hub, token, name, "1g.10gb")["free"] == 0,
                           "the service to see every 1g.10gb taken", 60)
    _, profiles = hub.spawn_page_profiles(hub.login(name, password))
    assert "1g-10gb" in profiles  # full is not forbidden: the spawn waits in the queue

    answer = hub.hub_api(token, "POST", f"users/{name}/server", json={"slice": "1g.10gb"})
    assert answer.status_code == 202, answer.text
    events = hub.progress(token, name, until=queued, timeout=60)
    words = messages(events)
    assert "Queued: position 1 of 1 for 1g.10gb (waiting: no free 1g.10gb on any node)" in words, words
    assert not any(e.get("failed") or e.get("ready") for e in events), events
    assert hub.user_pod(name) is None  # waiting in AstraGo's queue, not in a Pending pod

    control_plane.rest.delete("v1", "Pod", holders[0], namespace)  # one frees
    server = hub.wait_ready(token, name, 150)
    assert server["ready"]
    pod = hub.user_pod(name)
    assert pod["spec"]["nodeName"] == MIG_NODE
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/mig-1g.10gb"] == "1"
    hub.stop_server(token, name)
    assert hub.allocations(name) == []


def test_a_pod_made_with_kubectl_takes_the_last_3g_and_the_next_user_is_queued(cluster_hub, control_plane,
                                                                              namespace):
    hub = cluster_hub
    first, first_password = hub.add_user("ada", groups=["/team-gpu"])
    second, second_password = hub.add_user("bo", groups=["/team-gpu"])
    first_token = hub.token(hub.login(first, first_password), first)
    second_token = hub.token(hub.login(second, second_password), second)
    resource = "nvidia.com/mig-3g.40gb"
    assert free_on_nodes(control_plane, resource) == {MIG_NODE: 2}

    assert hub.hub_api(first_token, "POST", f"users/{first}/server", json={"slice": "3g.40gb"}).status_code in (201, 202)
    hub.wait_ready(first_token, first, 150)
    assert hub.user_pod(first)["spec"]["nodeName"] == MIG_NODE
    control_plane.rest.create(kubectl_pod("kubectl-run", namespace, resource))  # takes the last one
    control_plane.wait_for(lambda: (control_plane.rest.read("v1", "Pod", "kubectl-run", namespace) or {}).get(
        "spec", {}).get("nodeName"), "the kubectl pod bound")
    assert free_on_nodes(control_plane, resource) == {}
    control_plane.wait_for(lambda: offer(hub, second_token, second, "3g.40gb")["free"] == 0,
                           "the service to see the kubectl pod's slice", 60)

    assert hub.hub_api(second_token, "POST", f"users/{second}/server",
                       json={"slice": "3g.40gb"}).status_code in (201, 202)
    events = hub.progress(second_token, second, until=queued, timeout=60)
    assert "Queued: position 1 of 1 for 3g.40gb (waiting: no free 3g.40gb on any node)" in messages(events), \
        messages(events)
    assert hub.user_pod(second) is None  # no Pending pod kube-scheduler could never place
    [waiting] = hub.allocations(second)
    assert waiting["status"] == "queued"

    hub.stop_server(second_token, second)  # leaves the queue
    assert hub.allocations(second) == []
    hub.stop_server(first_token, first)
    assert hub.allocations(first) == []


def test_what_only_kube_scheduler_knows_is_said_from_its_events_and_the_pod_starts_after(cluster_hub, control_plane):
    """A taint AstraGo's capacity does not count (a node kept for maintenance): the admitted pod
    waits Pending, and the progress says why in kube-scheduler's own FailedScheduling words."""
    hub, rest = cluster_hub, control_plane.rest
    name, password = hub.add_user("tam", groups=["/team-gpu"])
    token = hub.token(hub.login(name, password), name)
    # a returning user: their home volume exists and is bound (on a first spawn the pod would
    # first wait for the new claim, and kube-scheduler would say that instead)
    claim = f"claim-{name}"  # KubeSpawner's `safe` slug of a plain name is the name
    control_plane.apply({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                         "metadata": {"name": claim, "namespace": "astrago"},
                         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "50Gi"}}}})
    control_plane.wait_for(lambda: (rest.read("v1", "PersistentVolumeClaim", claim, "astrago") or {}).get(
        "status", {}).get("phase") == "Bound", "the user's claim bound")
    taints = rest.read("v1", "Node", MIG_NODE)["spec"]["taints"]
    maintenance = {"key": "example.org/maintenance", "value": "true", "effect": "NoSchedule"}
    rest.merge_patch("v1", "Node", MIG_NODE, {"spec": {"taints": [*taints, maintenance]}})
    try:
        assert hub.hub_api(token, "POST", f"users/{name}/server", json={"slice": "1g.10gb"}).status_code == 202

        def explained(events):
            return any("slice on any node" in m for m in messages(events))

        events = hub.progress(token, name, until=explained, timeout=90)
        said = [m for m in messages(events) if "slice on any node" in m]
        assert said and said[0].startswith("No free 1g.10gb slice on any node, waiting (5 nodes checked; "), \
            messages(events)
        assert "1 node: reserved for other work (taint)" in said[0], said
        pod = hub.user_pod(name)
        assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")
    finally:
        rest.merge_patch("v1", "Node", MIG_NODE, {"spec": {"taints": taints}})
    hub.wait_ready(token, name, 120)  # the scheduler places it once the taint is gone
    assert hub.user_pod(name)["spec"]["nodeName"] == MIG_NODE
    hub.stop_server(token, name)
    assert hub.allocations(name) == []
