"""Kubernetes events about a user's pod, in plain words for the spawn page (pure).

The scheduler and the kubelet speak in resource names and reasons
(`0/3 nodes are available: 1 Insufficient nvidia.com/mig-1g.10gb, 2 node(s) didn't match
Pod's node affinity/selector.`); people want to know what they are waiting for ("no free
1g.10gb slice on any node, waiting"). `plain_words(event, slice_name)` translates one event
(a `v1 Event` as a dict); None means "no translation known": show the original message.

Only the event's `reason` and `message` are read. Message formats are the ones of the
kube-scheduler (`FailedScheduling`), the kubelet (`Pulling`, `Pulled`, `Failed`, `BackOff`,
`Created`, `Started`, `FailedMount`), the cluster autoscaler (`TriggeredScaleUp`,
`NotTriggerScaleUp`) and the NVIDIA device plugin (`UnexpectedAdmissionError`).
"""
from __future__ import annotations

import re
from typing import Any, Mapping

__all__ = ["plain_words", "resource_words", "scheduling_words"]

_IMAGE = r'"(?P<image>[^"]+)"'
_PULLING = re.compile(rf"^Pulling image {_IMAGE}")
_PULLED = re.compile(rf"^Successfully pulled image {_IMAGE}(?: in (?P<took>[0-9.hms]+))?")
_PRESENT = re.compile(rf"^Container image {_IMAGE} already present on machine")
_PULL_FAILED = re.compile(rf"^Failed to pull image {_IMAGE}: (?P<why>.*)$", re.S)
_PULL_BACKOFF = re.compile(rf"^Back-off pulling image {_IMAGE}")
_ASSIGNED = re.compile(r"^Successfully assigned (?P<pod>\S+) to (?P<node>\S+)")
_AVAILABLE = re.compile(r"^0/(?P<total>\d+) nodes are available: (?P<reasons>.*?)(?:\. preemption:.*)?\.?$", re.S)
_COUNTED = re.compile(r"^(?P<n>\d+) (?P<what>.+)$")
_DEVICES_UNAVAILABLE = re.compile(r"requested number of devices unavailable for (?P<resource>[^\s,]+?)\.?(?:\s|,|$)")


def resource_words(resource: str, slice_name: str | None = None) -> str:
    """What an extended resource is, for people: `nvidia.com/mig-1g.10gb` -> "1g.10gb slice"."""
    if resource.startswith("nvidia.com/mig-"):
        return f"{resource[len('nvidia.com/mig-'):]} slice"
    if resource == "nvidia.com/gpu.shared":
        return f"MPS share ({slice_name})" if slice_name and slice_name.startswith("mps-") else "MPS share"
    if resource == "nvidia.com/gpu":
        if slice_name and slice_name != "cpu" and not slice_name.startswith(("gpu-", "mps-")):
            return f"{slice_name} slice"  # MIG under the `single` strategy is nvidia.com/gpu
        if slice_name and slice_name.startswith("gpu-") and slice_name != "gpu-1":
            return f"set of {slice_name[4:]} whole GPUs"
        return "whole GPU"
    if resource == "cpu":
        return "CPU"
    if resource == "memory":
        return "memory"
    return resource


def _node_reason(what: str, slice_name: str | None) -> tuple[str, str]:
    """(kind, words) for one scheduler reason; kind "resource" marks a missing resource."""
    if what.startswith("Insufficient "):
        resource = what[len("Insufficient "):]
        return "resource", f"no free {resource_words(resource, slice_name)}"
    if "didn't match Pod's node affinity/selector" in what or "didn't match node selector" in what:
        return "other", "no matching GPU"
    if "untolerated taint" in what:
        return "other", "reserved for other work (taint)"
    if "were unschedulable" in what:
        return "other", "cordoned"
    if "Too many pods" in what:
        return "other", "full (too many pods)"
    if "volume node affinity conflict" in what:
        return "other", "cannot reach your home volume"
    return "other", what


def scheduling_words(message: str, slice_name: str | None = None) -> str | None:
    """A `FailedScheduling` message in plain words, or None when its format is unknown."""
    message = message.strip()
    if "unbound immediate PersistentVolumeClaims" in message:
        return "waiting for your home volume to be created"
    match = _AVAILABLE.match(message)
    if not match:
        return None
    total = int(match["total"])
    missing: list[str] = []
    details: list[str] = []
    for part in re.split(r",\s*(?=\d+ )", match["reasons"].strip().rstrip(".")):
        counted = _COUNTED.match(part.strip())
        if not counted:
            continue
        n = int(counted["n"])
        kind, words = _node_reason(counted["what"].strip(), slice_name)
        if kind == "resource" and words not in missing:
            missing.append(words)
        details.append(f"{n} {'node' if n == 1 else 'nodes'}: {words}")
    nodes = f"{total} {'node' if total == 1 else 'nodes'}"
    if missing:
        head = f"{' and '.join(missing)} on any node, waiting"
    else:
        head = "no node fits this server yet, waiting"
    return f"{head} ({nodes} checked; {'; '.join(details)})" if details else head


def plain_words(event: Mapping[str, Any], slice_name: str | None = None) -> str | None:
    """One Kubernetes event in plain words, or None when there is nothing better to say."""
    reason = event.get("reason") or ""
    message = (event.get("message") or "").strip()
    if reason == "FailedScheduling":
        return scheduling_words(message, slice_name)
    if reason == "Scheduled" and (m := _ASSIGNED.match(message)):
        return f"placed on node {m['node']}"
    if reason == "Pulling" and (m := _PULLING.match(message)):
        return f"pulling image {m['image']} (the first start on a node can take a few minutes)"
    if reason == "Pulled":
        if m := _PULLED.match(message):
            return f"image {m['image']} pulled" + (f" in {m['took']}" if m["took"] else "")
        if m := _PRESENT.match(message):
            return f"image {m['image']} is already on the node"
    if reason in ("Failed", "ErrImagePull") and (m := _PULL_FAILED.match(message)):
        return f"cannot pull image {m['image']}: {m['why'].strip()}"
    if reason == "BackOff":
        if m := _PULL_BACKOFF.match(message):
            return f"still cannot pull image {m['image']}; Kubernetes keeps retrying"
        if "restarting failed container" in message:
            return "JupyterLab keeps crashing on start; an administrator can read the pod's log"
    if reason == "Created" and message.startswith("Created container"):
        return "container created"
    if reason == "Started" and message.startswith("Started container"):
        return "JupyterLab is starting"
    if reason in ("FailedMount", "FailedAttachVolume"):
        return f"your home volume is not attached yet ({message})"
    if reason == "TriggeredScaleUp":
        return "the cluster is adding a node for this server"
    if reason == "NotTriggerScaleUp":
        return "the cluster cannot add a node that fits this server"
    if reason == "UnexpectedAdmissionError" and (m := _DEVICES_UNAVAILABLE.search(message)):
        return (f"the node had no {resource_words(m['resource'], slice_name)} left when the pod arrived; "
                "stop this server and start it again")
    if reason == "Preempted":
        return "this server was preempted by higher-priority work"
    return None
