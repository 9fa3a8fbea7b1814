"""What the cluster has free, as kube-scheduler counts it (pure): Node and Pod objects -> slices.

kube-scheduler admits a pod onto a node when the node's `status.allocatable` minus the
requests of the pods bound to it (`spec.nodeName` set, not Succeeded or Failed) covers the
pod's requests. AstraGo's ledger only knows the pods AstraGo made; a DaemonSet, another
tenant or a pod made with kubectl takes slices the ledger never saw. These functions read the
facts from the same objects the scheduler reads:

- `pod_requests(pod)`: a pod's effective NVIDIA requests (containers summed, the largest init
  container if more, plus `overhead`; an extended resource's request defaults to its limit);
- `free_resources(nodes, pods)`: per node, allocatable minus bound pods' requests;
- `free_slices(nodes, pods)`: the same in AstraGo's slice names (`3g.40gb`, `mps-25`, `gpu-1`);
- `foreign_usage(nodes, pods, own)`: per node, the slices held by pods that are not AstraGo's
  admitted allocations in `own` (what the admission desk must hold aside).

Objects are plain dicts as the API returns them; resource names are the device plugin's
(`nvidia.com/mig-1g.10gb.me` for the `1g.10gb+me` profile, `nvidia.com/gpu.shared` for MPS).
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Any, Iterable, Mapping

__all__ = ["ALLOCATION_LABEL", "JOB_LABEL", "free_resources", "free_slices", "foreign_usage", "is_bound", "pod_requests",
           "resource_slice"]

NVIDIA = "nvidia.com/"
ALLOCATION_LABEL = "astrago.io/allocation"  # a workspace pod: its allocation id
JOB_LABEL = "astrago.io/job-id"  # a job's pods: the job id (the allocation's owner_id)
_MIG_RESOURCE = re.compile(r"^nvidia\.com/mig-(?P<profile>\d+g\.\d+gb)(?P<me>\.me)?$")
_TERMINATED = ("Succeeded", "Failed")
_QUANTITY = re.compile(r"^(?P<n>\d+)(?P<suffix>k|M|G|T|Ki|Mi|Gi|Ti)?$")
_SUFFIX = {None: 1, "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12,
           "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40}


def _count(value) -> int:
    """An extended resource quantity (whole numbers only, as the API enforces for them)."""
    match = _QUANTITY.match(str(value).strip())
    return int(match["n"]) * _SUFFIX[match["suffix"]] if match else 0


def _nvidia(resources: Mapping[str, Any] | None) -> Counter:
    return Counter({k: _count(v) for k, v in (resources or {}).items() if k.startswith(NVIDIA) and _count(v)})


def _container_requests(container: Mapping[str, Any]) -> Counter:
    resources = container.get("resources") or {}
    requests = _nvidia(resources.get("limits"))  # an extended resource's request defaults to its limit
    for name, value in _nvidia(resources.get("requests")).items():
        requests[name] = value
    return Counter({k: v for k, v in requests.items() if v})


def pod_requests(pod: Mapping[str, Any]) -> Counter:
    """The NVIDIA resources kube-scheduler counts for `pod` (resource name -> count)."""
    spec = pod.get("spec") or {}
    total: Counter = Counter()
    for container in spec.get("containers") or ():
        total += _container_requests(container)
    sidecars: Counter = Counter()
    for init in spec.get("initContainers") or ():
        needs = _container_requests(init)
        if init.get("restartPolicy") == "Always":  # a sidecar runs beside the containers
            sidecars += needs
            total += needs
            continue
        for name, value in (needs + sidecars).items():
            total[name] = max(total[name], value)
    total += _nvidia(spec.get("overhead"))
    return total


def is_bound(pod: Mapping[str, Any]) -> bool:
    """Bound to a node and still holding its resources there."""
    return bool((pod.get("spec") or {}).get("nodeName")) and \
        (pod.get("status") or {}).get("phase") not in _TERMINATED


def _allocatable(node: Mapping[str, Any]) -> Counter:
    status = node.get("status") or {}
    return _nvidia(status.get("allocatable") if "allocatable" in status else status.get("capacity"))


def free_resources(nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Per node with NVIDIA resources: allocatable minus the requests of the pods bound to it.
    A node that is over-committed (a device went unhealthy under a running pod) shows 0, never less."""
    used: dict[str, Counter] = {}
    for pod in pods:
        if is_bound(pod):
            used.setdefault(pod["spec"]["nodeName"], Counter()).update(pod_requests(pod))
    result = {}
    for node in nodes:
        name = (node.get("metadata") or {}).get("name")
        allocatable = _allocatable(node)
        if name and allocatable:
            taken = used.get(name, Counter())
            result[name] = {resource: max(count - taken[resource], 0) for resource, count in sorted(allocatable.items())}
    return result


def resource_slice(resource: str, node_labels: Mapping[str, str] | None = None) -> str | None:
    """AstraGo's slice name for one unit of a device plugin resource on a node with `node_labels`:
    `nvidia.com/mig-1g.10gb.me` -> `1g.10gb+me`, `nvidia.com/gpu.shared` -> `mps-<100/replicas>`,
    `nvidia.com/gpu` -> `gpu-1`; None for what AstraGo does not offer."""
    match = _MIG_RESOURCE.match(resource)
    if match:
        return match["profile"] + ("+me" if match["me"] else "")
    if resource == NVIDIA + "gpu":
        return "gpu-1"
    if resource == NVIDIA + "gpu.shared":
        labels = node_labels or {}
        if labels.get(NVIDIA + "gpu.sharing-strategy") != "mps":
            return None
        replicas = _count(labels.get(NVIDIA + "gpu.replicas", 0))
        return f"mps-{100 // replicas}" if replicas > 1 else None
    return None


def _labels(node: Mapping[str, Any]) -> dict[str, str]:
    return dict((node.get("metadata") or {}).get("labels") or {})


def _as_slices(per_resource: Mapping[str, int], labels: Mapping[str, str]) -> dict[str, int]:
    out: Counter = Counter()
    for resource, count in per_resource.items():
        name = resource_slice(resource, labels)
        if name is not None and count:
            out[name] += count
    return dict(sorted(out.items()))


def free_slices(nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Per GPU node: how many of each slice kube-scheduler could still place there."""
    nodes = list(nodes)
    free = free_resources(nodes, pods)
    labels = {(n.get("metadata") or {}).get("name"): _labels(n) for n in nodes}
    return {name: _as_slices(resources, labels.get(name, {})) for name, resources in free.items()}


def foreign_usage(nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]],
                  own: Mapping[str, Iterable[str]]) -> dict[str, dict[str, int]]:
    """Per node, the slices held by bound pods that are none of AstraGo's admitted allocations:
    DaemonSets, other tenants, pods made with kubectl, AstraGo pods whose allocation is over.

    `own` maps a pod label to the values that mark a pod as an admitted allocation's:
    `{ALLOCATION_LABEL: allocation ids, JOB_LABEL: ids of jobs holding an allocation}`."""
    own_values = {label: set(values) for label, values in own.items()}
    labels = {(n.get("metadata") or {}).get("name"): _labels(n) for n in nodes}
    used: dict[str, Counter] = {}
    for pod in pods:
        if not is_bound(pod):
            continue
        pod_labels = (pod.get("metadata") or {}).get("labels") or {}
        if any(pod_labels.get(label) in values for label, values in own_values.items()):
            continue
        requests = pod_requests(pod)
        if requests:
            used.setdefault(pod["spec"]["nodeName"], Counter()).update(requests)
    result = {}
    for node, requests in sorted(used.items()):
        if node in labels:
            slices_used = _as_slices(requests, labels[node])
            if slices_used:
                result[node] = slices_used
    return result
