"""The hub's service account as the project deploys it: bound only to the RBAC it ships.

The z2jh chart's hub Role (templates/hub/rbac.yaml at chart 4.4.0, as REFERENCE.md records it:
pods, persistentvolumeclaims, secrets, services with get/watch/list/create/delete, events
read-only, in the release namespace) and its RoleBinding, plus every object of
config/z2jh/astrago-rbac.yaml, applied as they are to the real API server. A kubeconfig for
ServiceAccount `hub` in the release namespace then gets exactly those grants, enforced by
the API server's RBAC authorizer.
"""
from __future__ import annotations

from pathlib import Path

from .binaries import REPO

RELEASE_NAMESPACE = "astrago"
OPERATOR_NAMESPACE = "gpu-operator"
HUB_ACCOUNT = "hub"
ASTRAGO_RBAC = REPO / "config" / "z2jh" / "astrago-rbac.yaml"

CHART_HUB_ROLE_RULES = [
    {"apiGroups": [""], "resources": ["pods", "persistentvolumeclaims", "secrets", "services"],
     "verbs": ["get", "watch", "list", "create", "delete"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "watch", "list"]},
]


def chart_hub_role(namespace: str = RELEASE_NAMESPACE) -> list[dict]:
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "hub", "namespace": namespace}, "rules": CHART_HUB_ROLE_RULES},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "hub", "namespace": namespace},
         "subjects": [{"kind": "ServiceAccount", "name": HUB_ACCOUNT, "namespace": namespace}],
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "hub"}},
    ]


def hub_service_account_kubeconfig(control_plane, rbac_files: list[Path] = (ASTRAGO_RBAC,)) -> Path:
    """Apply the chart's hub Role and the project's RBAC files; a kubeconfig for `astrago/hub`."""
    for namespace in (RELEASE_NAMESPACE, OPERATOR_NAMESPACE):
        control_plane.ensure_namespace(namespace)
    control_plane.apply(chart_hub_role())
    control_plane.apply(list(rbac_files))
    return control_plane.service_account_kubeconfig(RELEASE_NAMESPACE, HUB_ACCOUNT)
