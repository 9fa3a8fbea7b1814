"""SimulatedMigManager: a TEST DOUBLE of the NVIDIA GPU operator's mig-manager (and of what GPU
feature discovery and the device plugin then publish). It is not mig-manager: no GPU is cut.

What it does, as mig-manager does on a real node (REFERENCE.md, "How Kubernetes sees slices"):
when a node's `nvidia.com/mig.config` label changes to a layout name, it sets
`nvidia.com/mig.config.state=pending`, looks the name up in the mig-parted ConfigMap
(`gpu-operator/astrago-mig-parted-config`, key `config.yaml`, the file AstraGo's fleet area
writes), and

- if a pod on the node holds an `nvidia.com/*` resource, reports `failed` (mig-parted cannot
  change the geometry of a GPU with clients; the real one's log says the GPU is busy);
- if the name is not in the ConfigMap, reports `failed`;
- otherwise rewrites what the device plugin and GFD would publish for the new geometry:
  status.capacity/allocatable `nvidia.com/mig-<profile>` per profile (`+me` as `.me`) and
  `nvidia.com/gpu` for GPUs left whole, labels `nvidia.com/mig-<profile>.count`; then
  reports `success`.

Only nodes with `nvidia.com/mig.capable=true` are handled. `history` records each re-cut.
"""
from __future__ import annotations

import threading
from collections import Counter

import yaml

from .informer import Informer
from .rest import KubeREST

CONFIG_LABEL = "nvidia.com/mig.config"
STATE_LABEL = "nvidia.com/mig.config.state"
COUNT_LABEL_PREFIX = "nvidia.com/mig-"
GPU_PREFIX = "nvidia.com/"


def geometry_of(entries: list[dict], gpu_count: int) -> tuple[Counter, int]:
    """(instances per profile over the node, GPUs left whole) for a mig-parted config."""
    counts: Counter = Counter()
    whole = 0
    for index in range(gpu_count):
        entry = next((e for e in entries if e.get("devices") == "all" or index in (e.get("devices") or [])), None)
        if entry is None or not entry.get("mig-enabled"):
            whole += 1
            continue
        counts.update({profile: int(n) for profile, n in (entry.get("mig-devices") or {}).items()})
    return counts, whole


def holds_gpu(pod: dict) -> bool:
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    for container in pod["spec"].get("containers") or []:
        resources = container.get("resources") or {}
        for kind in ("limits", "requests"):
            if any(key.startswith(GPU_PREFIX) and str(v) != "0" for key, v in (resources.get(kind) or {}).items()):
                return True
    return False


class SimulatedMigManager:
    def __init__(self, rest: KubeREST, namespace: str = "gpu-operator",
                 config_map: str = "astrago-mig-parted-config"):
        self.rest = rest
        self.namespace = namespace
        self.config_map = config_map
        self.applied: dict[str, str] = {}  # node -> the config it was last cut to (or found with)
        self.history: list[tuple[str, str, str]] = []  # (node, config, state)
        self._lock = threading.Lock()
        self._working = threading.Event()  # cleared by `hold()`: a real re-cut takes minutes
        self._working.set()
        self.informer = Informer("mig-manager", rest, "v1", "Node", self._on_node)

    def hold(self) -> None:
        """Leave re-cuts pending (state `pending`) until `release()`."""
        self._working.clear()

    def release(self) -> None:
        self._working.set()

    def start(self) -> None:
        self.informer.start()

    def stop(self) -> None:
        self._working.set()
        self.informer.stop()

    def _on_node(self, event_type: str, node: dict) -> None:
        name = node["metadata"]["name"]
        labels = node["metadata"].get("labels") or {}
        if event_type == "DELETED":
            self.applied.pop(name, None)
            return
        if labels.get("nvidia.com/mig.capable") != "true" or CONFIG_LABEL not in labels:
            return
        wanted = labels[CONFIG_LABEL]
        with self._lock:
            if event_type == "SYNC" or name not in self.applied:
                if labels.get(STATE_LABEL) != "pending":  # found as it is: nothing to do
                    self.applied[name] = wanted
                    return
            elif self.applied[name] == wanted:  # (its own label changes come back here too)
                return
            self.applied[name] = wanted
        self._reconfigure(node, wanted)

    def _label(self, node: str, labels: dict) -> None:
        self.rest.merge_patch("v1", "Node", node, {"metadata": {"labels": labels}})

    def _report(self, node: str, config: str, state: str) -> None:
        self._label(node, {STATE_LABEL: state})
        self.history.append((node, config, state))

    def _reconfigure(self, node: dict, config: str) -> None:
        name = node["metadata"]["name"]
        labels = node["metadata"].get("labels") or {}
        self._label(name, {STATE_LABEL: "pending"})
        self._working.wait()
        pods = self.rest.list("v1", "Pod", fieldSelector=f"spec.nodeName={name}")["items"]
        if any(holds_gpu(p) for p in pods):
            self._report(name, config, "failed")
            return
        config_map = self.rest.read("v1", "ConfigMap", self.config_map, self.namespace) or {}
        document = yaml.safe_load((config_map.get("data") or {}).get("config.yaml") or "") or {}
        entries = (document.get("mig-configs") or {}).get(config)
        if entries is None:
            self._report(name, config, "failed")
            return
        counts, whole = geometry_of(entries, int(labels.get("nvidia.com/gpu.count", "0")))
        old_resources = [k for k in (node.get("status") or {}).get("capacity", {}) if k.startswith("nvidia.com/mig-")]
        resources = {k: None for k in old_resources}
        resources.update({f"nvidia.com/mig-{p.replace('+', '.')}": str(n) for p, n in counts.items() if n})
        resources["nvidia.com/gpu"] = str(whole)
        self.rest.merge_patch("v1", "Node", name, {"status": {"capacity": resources, "allocatable": resources}},
                              subresource="status")
        new_labels = {k: None for k in labels if k.startswith(COUNT_LABEL_PREFIX) and k.endswith(".count")}
        new_labels.update({f"nvidia.com/mig-{p}.count": str(n) for p, n in counts.items() if n})
        self._label(name, new_labels)
        self._report(name, config, "success")
