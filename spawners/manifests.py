"""Manifests: a slice -> what a container needs to get it, in Kubernetes or as a local process.

Pure functions returning plain dicts, tested against literal dicts the way kubespawner's
`objects.py` is, and validated against the official Kubernetes schema at
`TARGET_KUBERNETES_VERSION`.

How Kubernetes sees slices (NVIDIA device plugin + GPU feature discovery):

- MIG, `mixed` strategy: one extended resource per profile, `nvidia.com/mig-<profile>`, the
  device plugin spelling `+` as `.` (`1g.10gb+me` -> `nvidia.com/mig-1g.10gb.me`: `+` is not
  legal in a resource name);
- MIG, `single` strategy: slices are `nvidia.com/gpu`, told apart by the product label
  `<product>-MIG-<profile>`;
- MPS: `nvidia.com/gpu.shared` (device plugin `renameByDefault: true`), on nodes labelled
  `nvidia.com/gpu.sharing-strategy=mps` with `nvidia.com/gpu.replicas=N` (a share of 100/N %).
  With the resource renamed, GFD leaves `nvidia.com/gpu.product` as it is (no `-SHARED`
  suffix: that is only appended when the resource keeps its name), so the model is matched
  on the plain product label;
- whole GPUs: `nvidia.com/gpu` on nodes without sharing.
"""

from __future__ import annotations

from typing import Any

from . import slices
from .placement import Placement

__all__ = [
    "TARGET_KUBERNETES_VERSION",
    "GPU_TOLERATION",
    "container_gpu_resources",
    "local_process_env",
    "mig_resource_name",
    "pod_spec_fragment",
]

#: The Kubernetes API version generated objects must be valid for (the schema the tests
#: validate against with kubernetes-validate). Raise it together with the supported clusters.
TARGET_KUBERNETES_VERSION = "1.33.0"

#: GPU nodes are usually tainted so that only GPU work lands there (the GPU operator's and
#: most clouds' convention). Every GPU slice tolerates it; CPU-only servers do not.
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

PRODUCT_LABEL = "nvidia.com/gpu.product"
SHARED_RESOURCE = "nvidia.com/gpu.shared"


def mig_resource_name(profile: str) -> str:
    """The device plugin's resource for a MIG profile under `mixed`: `+` becomes `.`
    (`1g.10gb+me` -> `nvidia.com/mig-1g.10gb.me`)."""
    return f"nvidia.com/mig-{profile.replace('+', '.')}"


def _model(model) -> slices.GPUModel | None:
    if model is None or isinstance(model, slices.GPUModel):
        return model
    if model not in slices.GPU_MODELS:
        raise slices.InvalidSlice(f"{model!r} is not a GPU model AstraGo knows.")
    return slices.GPU_MODELS[model]


def _product_affinity(labels) -> list[dict]:
    """A required node affinity term: the node's product label is one of `labels`."""
    return [{"matchExpressions": [{"key": PRODUCT_LABEL, "operator": "In", "values": list(labels)}]}]


def container_gpu_resources(slice_name: str, model: slices.GPUModel | str | None = None,
                            strategy: str = "mixed") -> dict[str, Any]:
    """Resources, node selector, node affinity, tolerations and env for one slice.

    The keys map onto KubeSpawner's traits: `resources` -> `extra_resource_limits` /
    `extra_resource_guarantees`, `node_selector`, `node_affinity_required`, `tolerations`,
    `env` -> `environment`. `model` narrows the GPU product (needed under `single`).
    """
    if strategy not in ("mixed", "single"):
        raise ValueError("strategy must be 'mixed' or 'single'")
    request = slices.parse_slice(slice_name)
    model = _model(model)
    if model is not None and request.kind == "mig" and request.profile not in model.mig_profiles:
        raise slices.InvalidSlice(f"{slice_name!r} is not a MIG profile of the {model.name}.")
    result: dict[str, Any] = {
        "resources": {"limits": {}, "requests": {}},
        "node_selector": {},
        "node_affinity_required": [],
        "tolerations": [dict(GPU_TOLERATION)],
        "env": {"ASTRAGO_SLICE": slice_name},
    }
    if request.kind == "cpu":
        # CUDA base images set NVIDIA_VISIBLE_DEVICES=all; with nvidia as the default runtime a
        # pod without a GPU limit would otherwise see every GPU of the node.
        result["tolerations"] = []
        result["env"]["NVIDIA_VISIBLE_DEVICES"] = "void"
        return result
    if request.kind == "mig" and strategy == "mixed":
        resource, amount = mig_resource_name(request.profile), 1
        if model is not None:
            result["node_affinity_required"] = _product_affinity(slices.gfd_product_labels(model))
    elif request.kind == "mig":
        candidates = [model] if model is not None else slices.models_offering(slice_name)
        resource, amount = "nvidia.com/gpu", 1
        result["node_selector"]["nvidia.com/mig.strategy"] = "single"
        result["node_affinity_required"] = _product_affinity(
            [f"{label}-MIG-{request.profile}" for m in candidates for label in slices.gfd_product_labels(m)])
    elif request.kind == "mps":
        resource, amount = SHARED_RESOURCE, 1
        result["node_selector"].update({
            "nvidia.com/gpu.sharing-strategy": "mps",
            "nvidia.com/gpu.replicas": str(100 // request.percent),
        })
        if model is not None:
            result["node_affinity_required"] = _product_affinity(slices.gfd_product_labels(model))
    else:
        resource, amount = "nvidia.com/gpu", request.count
        result["node_selector"]["nvidia.com/gpu.sharing-strategy"] = "none"
        if model is not None:
            result["node_affinity_required"] = _product_affinity(slices.gfd_product_labels(model))
    # Extended resources: requests must equal limits; say both so quota (`requests.<name>`) sees it.
    result["resources"]["limits"][resource] = str(amount)
    result["resources"]["requests"][resource] = str(amount)
    result["env"]["ASTRAGO_GPU_UNITS"] = str(slices.slice_gpu_units(model, slice_name))
    return result


def pod_spec_fragment(slice_name: str, model: slices.GPUModel | str | None = None, strategy: str = "mixed", *,
                      name: str = "jupyter", namespace: str | None = None, image: str = "astrago/singleuser:latest",
                      cpu: str | None = None, memory: str | None = None) -> dict[str, Any]:
    """A complete V1 Pod dict for one container on `slice_name`, the shape KubeSpawner builds.

    GPUKubeSpawner passes `container_gpu_resources` to its traits; this function exists to
    show and validate the object those traits produce.
    """
    parts = container_gpu_resources(slice_name, model, strategy)
    limits = dict(parts["resources"]["limits"])
    requests = dict(parts["resources"]["requests"])
    if cpu is not None:
        limits["cpu"] = requests["cpu"] = cpu
    if memory is not None:
        limits["memory"] = requests["memory"] = memory
    container: dict[str, Any] = {
        "name": "notebook",
        "image": image,
        "env": [{"name": key, "value": value} for key, value in sorted(parts["env"].items())],
    }
    if limits:
        container["resources"] = {"limits": limits, "requests": requests}
    metadata: dict[str, Any] = {"name": name, "labels": {"astrago.io/slice": slice_name.replace("+", "-")}}
    if namespace is not None:
        metadata["namespace"] = namespace
    spec: dict[str, Any] = {"containers": [container], "restartPolicy": "OnFailure"}
    if parts["node_selector"]:
        spec["nodeSelector"] = dict(parts["node_selector"])
    if parts["tolerations"]:
        spec["tolerations"] = [dict(t) for t in parts["tolerations"]]
    if parts["node_affinity_required"]:
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": parts["node_affinity_required"]}}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def _mem_limit(mib: int) -> str:
    return f"{mib // 1024}G" if mib % 1024 == 0 else f"{mib}M"


def local_process_env(placement: Placement | None, mps_pipe_dir: str | None = None,
                      mps_log_dir: str | None = None) -> dict[str, str]:
    """Environment for a local process on `placement` (None or a cpu slice: no GPU at all).

    Devices are named by UUID (GPU-... or MIG-...), never by index: indices change with
    CUDA_DEVICE_ORDER and MIG re-cuts, UUIDs do not. An MPS client sees its one GPU as
    device 0, hence the `0=` in the pinned memory limit.
    """
    if placement is None or not placement.gpu_uuids:
        return {"CUDA_VISIBLE_DEVICES": ""}
    if placement.mig_instance_uuids:
        return {"CUDA_VISIBLE_DEVICES": ",".join(placement.mig_instance_uuids)}
    env = {"CUDA_VISIBLE_DEVICES": ",".join(placement.gpu_uuids)}
    if placement.mps_percent is not None:
        if mps_pipe_dir is not None:
            env["CUDA_MPS_PIPE_DIRECTORY"] = mps_pipe_dir
        if mps_log_dir is not None:
            env["CUDA_MPS_LOG_DIRECTORY"] = mps_log_dir
        env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = str(placement.mps_percent)
        env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] = f"0={_mem_limit(placement.mps_memory_limit_mib)}"
    return env
