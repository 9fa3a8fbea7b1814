"""The NVIDIA GPU operator's configuration objects AstraGo owns, as pure functions.

- The **mig-parted config map** (`astrago-mig-parted-config`, key `config.yaml`) that the
  operator's mig-manager reads (`migManager.config.name` in config/gpu-operator/values.yaml).
  It always holds `all-disabled` and `all-enabled`; the fleet area adds the
  `astrago-<hash>` layouts the geometry planner makes (`GeometryPlan.mig_parted_config()`)
  and points a node at one with the label `nvidia.com/mig.config`.
- The **device plugin config map** (`astrago-device-plugin-config`), one entry per MPS
  replica count AstraGo offers (`mps-<N>-replicas`: N equal shares of each GPU, the resource renamed
  to `nvidia.com/gpu.shared`), plus `default` (no sharing). A node opts in with the label
  `nvidia.com/device-plugin.config=mps-4-replicas` (slice `mps-25`). A config file's flags are
  what the plugin runs with on that node: `default` (MIG and whole-GPU nodes) says
  `migStrategy: mixed`; every MPS entry says `migStrategy: none`, because the plugin refuses to
  start with MPS under `mixed` ("using --mig-strategy=mixed is not supported with MPS",
  k8s-device-plugin cmd/nvidia-device-plugin/main.go). MPS runs on whole GPUs only.

Both are derived from the catalogue (`slices.MPS_REPLICA_CHOICES`), never typed in; the
YAML files under config/gpu-operator/ are these functions' output (a test checks that).
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import yaml

from ..slices import MPS_REPLICA_CHOICES

__all__ = [
    "BASE_MIG_CONFIGS",
    "DEVICE_PLUGIN_CONFIG_MAP",
    "MIG_PARTED_CONFIG_KEY",
    "MIG_PARTED_CONFIG_MAP",
    "device_plugin_config_map",
    "merge_mig_configs",
    "mig_parted_config_map",
    "mps_sharing_config",
    "read_mig_configs",
]

MIG_PARTED_CONFIG_MAP = "astrago-mig-parted-config"
MIG_PARTED_CONFIG_KEY = "config.yaml"
DEVICE_PLUGIN_CONFIG_MAP = "astrago-device-plugin-config"
OPERATOR_NAMESPACE = "gpu-operator"
ASTRAGO_CONFIG_PREFIX = "astrago-"
MIG_STRATEGY = "mixed"  # nodes without sharing: MIG GPUs one resource per profile
MPS_MIG_STRATEGY = "none"  # MPS nodes: the device plugin refuses MPS under any other MIG strategy

#: layouts mig-manager must always find: the operator's `default` and an admin's hand-labelling
BASE_MIG_CONFIGS: dict[str, list[dict]] = {
    "all-disabled": [{"devices": "all", "mig-enabled": False}],
    "all-enabled": [{"devices": "all", "mig-enabled": True, "mig-devices": {}}],
}

_LABELS = {"app.kubernetes.io/name": "astrago", "app.kubernetes.io/component": "gpu-operator-config"}


def _yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def _config_map(name: str, namespace: str, data: Mapping[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(_LABELS)},
            "data": dict(data)}


def mig_parted_config_map(configs: Mapping[str, list], namespace: str = OPERATOR_NAMESPACE,
                          name: str = MIG_PARTED_CONFIG_MAP) -> dict:
    """The mig-parted ConfigMap holding `configs` (name -> device entries)."""
    document = {"version": "v1", "mig-configs": {key: configs[key] for key in configs}}
    return _config_map(name, namespace, {MIG_PARTED_CONFIG_KEY: _yaml(document)})


def read_mig_configs(config_map: Mapping[str, Any] | None) -> dict[str, list]:
    """The `mig-configs` of a mig-parted ConfigMap as read from the API ({} when absent)."""
    if not config_map:
        return {}
    text = (config_map.get("data") or {}).get(MIG_PARTED_CONFIG_KEY) or ""
    document = yaml.safe_load(text) or {}
    return dict(document.get("mig-configs") or {})


def merge_mig_configs(existing: Mapping[str, list], new: Mapping[str, list], in_use: Iterable[str]) -> dict:
    """The configs to write: the base layouts, everything not made by AstraGo, AstraGo's
    layouts some node still names (`in_use`), and `new`. Stale `astrago-*` layouts go."""
    keep = set(in_use) | set(new)
    merged = dict(BASE_MIG_CONFIGS)
    for name, entries in existing.items():
        if not name.startswith(ASTRAGO_CONFIG_PREFIX) or name in keep:
            merged[name] = entries
    merged.update(new)
    base = [name for name in BASE_MIG_CONFIGS]
    return {name: merged[name] for name in base + sorted(n for n in merged if n not in BASE_MIG_CONFIGS)}


def mps_sharing_config(replicas: int | None) -> dict:
    """One device plugin config: MPS with `replicas` shares per GPU (None: no sharing, MIG `mixed`)."""
    strategy = MPS_MIG_STRATEGY if replicas else MIG_STRATEGY
    config: dict[str, Any] = {"version": "v1", "flags": {"migStrategy": strategy}}
    if replicas:
        config["sharing"] = {"mps": {"renameByDefault": True,
                                     "resources": [{"name": "nvidia.com/gpu", "replicas": replicas}]}}
    return config


def device_plugin_config_map(namespace: str = OPERATOR_NAMESPACE, name: str = DEVICE_PLUGIN_CONFIG_MAP) -> dict:
    """The device plugin ConfigMap: `default` plus `mps-<N>-replicas` for every offered replica count."""
    data = {"default": _yaml(mps_sharing_config(None))}
    for replicas in MPS_REPLICA_CHOICES:
        data[f"mps-{replicas}-replicas"] = _yaml(mps_sharing_config(replicas))
    return _config_map(name, namespace, data)
