"""Every Kubernetes API call the hub and the AstraGo service make is granted to the hub's service
account by the RBAC the project ships: the z2jh chart's hub Role (templates/hub/rbac.yaml at 4.4.0,
as documented in REFERENCE.md, encoded below) plus config/z2jh/astrago-rbac.yaml.

The calls are found in the code (kubernetes_asyncio method names in hub/ and spawners/), so a
new call fails here until it is listed with the permission it needs; KubeSpawner's own calls are
listed from its source (kubespawner 7 spawner.py and reflector.py)."""
from __future__ import annotations

import re

import pytest

from repo_files import REPO, load_all

RELEASE = "astrago"  # the chart's namespace in config/z2jh (the ServiceAccount hub lives there)
OPERATOR = "gpu-operator"
SUBJECT = {"kind": "ServiceAccount", "name": "hub", "namespace": RELEASE}

#: the chart's hub Role and its RoleBinding to the hub ServiceAccount, in the release namespace
CHART_HUB_ROLE = [
    {"apiGroups": [""], "resources": ["pods", "persistentvolumeclaims", "secrets", "services"],
     "verbs": ["get", "watch", "list", "create", "delete"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "watch", "list"]},
]

#: kubernetes_asyncio method -> what it needs: (apiGroup, resource, verbs, namespace or None = cluster-wide)
CALLS = {
    # the shared node watch (spawners/inventory/kube_watch.py) and MIG re-cutting (hub/fleet)
    "list_node": [("", "nodes", ("list", "watch"), None)],
    "patch_node": [("", "nodes", ("patch",), None)],
    "read_namespaced_config_map": [("", "configmaps", ("get",), OPERATOR)],
    "create_namespaced_config_map": [("", "configmaps", ("create",), OPERATOR)],
    "replace_namespaced_config_map": [("", "configmaps", ("update",), OPERATOR)],
    # capacity: the pods bound to nodes, every namespace (PodWatch)
    "list_pod_for_all_namespaces": [("", "pods", ("list", "watch"), None)],
    # batch jobs (hub/jobs/executors/kubernetes.py), in the service's namespace
    "create_namespaced_job": [("batch", "jobs", ("create",), RELEASE)],
    "read_namespaced_job_status": [("batch", "jobs/status", ("get",), RELEASE)],
    "read_namespaced_job": [("batch", "jobs", ("get",), RELEASE)],
    "delete_namespaced_job": [("batch", "jobs", ("delete",), RELEASE)],
    "list_namespaced_pod": [("", "pods", ("list",), RELEASE)],
    "read_namespaced_pod_log": [("", "pods/log", ("get",), RELEASE)],
    # distributed jobs: Kubeflow PyTorchJobs and MPIJobs
    "create_namespaced_custom_object": [("kubeflow.org", "pytorchjobs", ("create",), RELEASE),
                                        ("kubeflow.org", "mpijobs", ("create",), RELEASE)],
    "get_namespaced_custom_object": [("kubeflow.org", "pytorchjobs", ("get",), RELEASE),
                                     ("kubeflow.org", "mpijobs", ("get",), RELEASE)],
    "delete_namespaced_custom_object": [("kubeflow.org", "pytorchjobs", ("delete",), RELEASE),
                                        ("kubeflow.org", "mpijobs", ("delete",), RELEASE)],
}

#: KubeSpawner's own calls for a user's server in the release namespace (pod and PVC lifecycle,
#: its pod and event reflectors; secrets and services with internal_ssl / services_enabled)
KUBESPAWNER_CALLS = [
    ("", "pods", ("create", "delete", "get", "list", "watch"), RELEASE),
    ("", "persistentvolumeclaims", ("create", "get", "delete"), RELEASE),
    ("", "events", ("list", "watch"), RELEASE),
    ("", "secrets", ("create", "delete"), RELEASE),
    ("", "services", ("create", "delete"), RELEASE),
]

_CALL = re.compile(r"\b(?:list|read|create|delete|patch|replace|get)_(?:namespaced_[a-z_]+|node|namespace|"
                   r"[a-z_]+_for_all_namespaces)\b")


def calls_in_code() -> set[str]:
    found = set()
    for root in ("hub", "spawners"):
        for path in (REPO / root).rglob("*.py"):
            found.update(_CALL.findall(path.read_text()))
    return found


def grants() -> list[tuple[dict, str | None]]:
    """(rule, namespace or None for cluster-wide) for every rule bound to the hub's ServiceAccount."""
    documents = load_all(REPO / "config/z2jh/astrago-rbac.yaml")
    roles = {(d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")): d["rules"]
             for d in documents if d["kind"] in ("Role", "ClusterRole")}
    result = [(rule, RELEASE) for rule in CHART_HUB_ROLE]
    for binding in documents:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding") or SUBJECT not in binding["subjects"]:
            continue
        namespace = binding["metadata"].get("namespace")  # None: a ClusterRoleBinding, cluster-wide
        ref = binding["roleRef"]
        key = (ref["kind"], ref["name"], namespace if ref["kind"] == "Role" else None)
        for rule in roles[key]:
            result.append((rule, namespace))
    return result


#: the objects the calls name, where a rule names its objects (resourceNames)
NAMED = {("", "configmaps"): "astrago-mig-parted-config"}


def allowed(group: str, resource: str, verb: str, namespace: str | None) -> bool:
    for rule, scope in grants():
        if scope is not None and scope != namespace:
            continue
        if rule.get("resourceNames") and NAMED.get((group, resource)) not in rule["resourceNames"]:
            continue
        if group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]:
            return True
    return False


def test_every_call_in_the_code_is_listed():
    assert calls_in_code() == set(CALLS)


@pytest.mark.parametrize("method", sorted(CALLS))
def test_each_call_is_granted(method):
    for group, resource, verbs, namespace in CALLS[method]:
        for verb in verbs:
            assert allowed(group, resource, verb, namespace), f"{method}: {verb} {group}/{resource} in {namespace}"


@pytest.mark.parametrize("need", KUBESPAWNER_CALLS, ids=lambda n: n[1])
def test_kubespawners_calls_are_granted_by_the_charts_role(need):
    group, resource, verbs, namespace = need
    for verb in verbs:
        assert allowed(group, resource, verb, namespace)


def test_the_chart_role_alone_would_refuse_batch_jobs():
    chart_only = [(rule, RELEASE) for rule in CHART_HUB_ROLE]
    assert not any("jobs" in r["resources"] or "pods/log" in r["resources"] for r, _ in chart_only)
    assert allowed("batch", "jobs", "create", RELEASE) and allowed("", "pods/log", "get", RELEASE)
    assert allowed("kubeflow.org", "pytorchjobs", "create", RELEASE)
    assert not allowed("batch", "jobs", "create", "default")  # only the release namespace


def test_the_mig_config_map_is_writable_by_name_only():
    rules = [r for r, ns in grants() if ns == OPERATOR and "configmaps" in r["resources"]]
    assert {"resourceNames": ["astrago-mig-parted-config"], "verbs": ["get", "update", "patch"]}.items() <= \
        rules[0].items()
