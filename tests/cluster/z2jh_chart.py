"""What the Zero to JupyterHub chart (4.4.0) configures before AstraGo's `hub.extraConfig` runs.

Not the chart: an encoding of the part of its `jupyterhub/files/hub/jupyterhub_config.py` and
`values.yaml` (tag 4.4.0, read upstream) that decides the KubeSpawner settings AstraGo depends
on, so tests can run the chart's settings first and AstraGo's after them, as the hub pod does:

- `hub_connect_url = http://hub:8081` (the hub Service's short name and port);
- `c.KubeSpawner.namespace` from POD_NAMESPACE;
- the loop of `set_config_if_not_none(c.KubeSpawner, trait, "singleuser." + key)`: a value
  that is not None is set, so the default `singleuser.profileList: []` IS set;
- `image` = `singleuser.image.name:tag`;
- dynamic storage: `storage_pvc_ensure`, `pvc_name_template` (only when pvcNameTemplate is set;
  KubeSpawner 7's default `claim-{user_server}` otherwise), `storage_capacity`;
- tolerations = `scheduling.userPods.tolerations` + `singleuser.extraTolerations`.

Values are merged as Helm merges them: maps deep-merged, lists replaced, a `null` in a
values file deletes the chart's default.
"""
from __future__ import annotations

import copy
from typing import Any

from traitlets.config import Config

#: the chart's defaults (values.yaml at 4.4.0) for the keys the logic below reads
CHART_DEFAULTS: dict[str, Any] = {
    "singleuser": {
        "image": {"name": "quay.io/jupyterhub/k8s-singleuser-sample", "tag": "4.4.0"},
        "profileList": [],
        "extraEnv": {},
        "extraLabels": {"hub.jupyter.org/network-access-hub": "true"},
        "extraTolerations": [],
        "startTimeout": 300,
        "storage": {"type": "dynamic", "capacity": "10Gi", "homeMountPath": "/home/jovyan",
                    "dynamic": {"storageClass": None, "pvcNameTemplate": None,
                                "volumeNameTemplate": "volume-{user_server}",
                                "storageAccessModes": ["ReadWriteOnce"]}},
        "memory": {"limit": None, "guarantee": "1G"},
        "cpu": {"limit": None, "guarantee": None},
        "defaultUrl": None,
    },
    "scheduling": {"userPods": {"tolerations": [
        {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
        {"key": "hub.jupyter.org_dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"}]}},
    "prePuller": {"extraTolerations": []},
}

#: (trait, key under singleuser) of the chart's set_config_if_not_none loop that AstraGo meets
_SINGLEUSER_TRAITS = [("start_timeout", "startTimeout"), ("extra_labels", "extraLabels"),
                      ("mem_limit", "memory.limit"), ("mem_guarantee", "memory.guarantee"),
                      ("cpu_limit", "cpu.limit"), ("cpu_guarantee", "cpu.guarantee"),
                      ("environment", "extraEnv"), ("profile_list", "profileList")]


def helm_merge(base: Any, override: Any) -> Any:
    """`override` (a values file) over `base` the way Helm merges values."""
    if not isinstance(base, dict) or not isinstance(override, dict):
        return copy.deepcopy(override)
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def get_config(values: dict, key: str, default=None):
    value: Any = values
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return default
        value = value[part]
    return value


def chart_config(*values_files: dict, namespace: str = "astrago") -> tuple[Config, dict]:
    """(the Config the chart's jupyterhub_config.py leaves, the merged values) for `values_files`."""
    values = CHART_DEFAULTS
    for override in values_files:
        values = helm_merge(values, override)
    c = Config()
    c.JupyterHub.hub_connect_url = "http://hub:8081"
    c.KubeSpawner.namespace = namespace
    for trait, key in _SINGLEUSER_TRAITS:
        data = get_config(values, "singleuser." + key)
        if data is not None:
            setattr(c.KubeSpawner, trait, copy.deepcopy(data))
    image = get_config(values, "singleuser.image.name")
    if image:
        tag = get_config(values, "singleuser.image.tag")
        c.KubeSpawner.image = f"{image}:{tag}" if tag else image
    tolerations = (get_config(values, "scheduling.userPods.tolerations", []) +
                   get_config(values, "singleuser.extraTolerations", []))
    if tolerations:
        c.KubeSpawner.tolerations = tolerations
    if get_config(values, "singleuser.storage.type") == "dynamic":
        template = get_config(values, "singleuser.storage.dynamic.pvcNameTemplate")
        if template:
            c.KubeSpawner.pvc_name_template = template
        c.KubeSpawner.storage_pvc_ensure = True
        c.KubeSpawner.storage_capacity = get_config(values, "singleuser.storage.capacity")
    return c, values


def pre_puller_tolerations(values: dict) -> list[dict]:
    """The continuous pre-puller DaemonSet's tolerations (templates/image-puller/_helpers-daemonset.tpl)."""
    return (get_config(values, "scheduling.userPods.tolerations", []) +
            get_config(values, "singleuser.extraTolerations", []) +
            get_config(values, "prePuller.extraTolerations", []))
