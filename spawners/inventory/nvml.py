"""The NVML inventory source: the GPUs of this host, their MIG mode and MIG instances.

`pynvml` (the `nvidia-ml-py` distribution) is imported only when no NVML module is given,
so this module imports fine on hosts without a driver, and tests can hand in a double that
replays recorded responses (`record_nvml_responses` writes them on a real host).

MPS cannot be seen through NVML (it is a daemon, not a device state): the caller says
which GPUs it runs MPS on, and with how many replicas.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from .. import slices
from . import GPUDevice, InventoryUnavailable, MigInstance, NodeInventory

_MIG_NAME_PROFILE = re.compile(r"(\d+g\.\d+gb(?:\+me)?)\s*$")


def _load_nvml(nvml):
    if nvml is not None:
        return nvml
    try:
        import pynvml
    except ImportError as error:  # nvidia-ml-py not installed
        raise InventoryUnavailable(f"NVML bindings are not installed: {error}") from None
    return pynvml


def _text(value) -> str:
    """Older pynvml returns bytes, newer str."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _is_error(nvml, error, name: str) -> bool:
    cls = getattr(nvml, name, None)
    return cls is not None and isinstance(error, cls)


def read_nvml_inventory(node_name: str, nvml=None, mps_replicas: Mapping[int, int] | None = None) -> NodeInventory:
    """This host's GPUs as a NodeInventory (source "nvml").

    `mps_replicas` maps GPU index -> replicas for GPUs the local MPS daemon serves; a GPU
    in MIG mode cannot run MPS and stays "mig". Raises InventoryUnavailable when NVML
    cannot be loaded or initialised (no driver, no device nodes).
    """
    nvml = _load_nvml(nvml)
    mps_replicas = dict(mps_replicas or {})
    try:
        nvml.nvmlInit()
    except Exception as error:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...; all mean "no GPUs here"
        raise InventoryUnavailable(f"NVML could not be initialised: {error}") from None
    try:
        gpus = [_device(nvml, index, mps_replicas.get(index, 0)) for index in range(nvml.nvmlDeviceGetCount())]
    finally:
        nvml.nvmlShutdown()
    return NodeInventory(name=node_name, gpus=gpus, source="nvml", simulated=False)


def _device(nvml, index: int, mps_replicas: int) -> GPUDevice:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    name = _text(nvml.nvmlDeviceGetName(handle))
    pci_device_id = nvml.nvmlDeviceGetPciInfo(handle).pciDeviceId
    model = slices.identify_model(nvml_name=name, pci_device_id=pci_device_id)
    gpu = GPUDevice(
        index=index,
        uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
        model=model.name if model else None,
        product_name=name,
        memory_mib=nvml.nvmlDeviceGetMemoryInfo(handle).total // (1024 * 1024),
        mode="full",
    )
    if _mig_enabled(nvml, handle):
        gpu.mode = "mig"
        gpu.mig_instances = _mig_instances(nvml, handle, model)
    elif mps_replicas:
        gpu.mode = "mps"
        gpu.mps_replicas = mps_replicas
    return gpu


def _mig_enabled(nvml, handle) -> bool:
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(handle)
    except nvml.NVMLError as error:
        if _is_error(nvml, error, "NVMLError_NotSupported"):
            return False  # pre-Ampere or a GPU without MIG
        raise
    return current == nvml.NVML_DEVICE_MIG_ENABLE


def _mig_instances(nvml, handle, model) -> list[MigInstance]:
    instances = []
    for slot in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except nvml.NVMLError as error:
            if _is_error(nvml, error, "NVMLError_NotFound"):
                continue  # an empty slot: fewer instances than the maximum
            raise
        gi_id = nvml.nvmlDeviceGetGpuInstanceId(mig)
        profile, start = _profile_and_start(nvml, handle, mig, gi_id, model)
        instances.append(MigInstance(
            uuid=_text(nvml.nvmlDeviceGetUUID(mig)),
            profile=profile,
            start=start,
            gi_id=gi_id,
            ci_id=nvml.nvmlDeviceGetComputeInstanceId(mig),
        ))
    return instances


def _profile_and_start(nvml, handle, mig, gi_id, model) -> tuple[str, int | None]:
    """Profile and placement from the GPU instance; the MIG device's name when not allowed.

    Querying a GPU instance needs privileges an unprivileged service may lack; the name of
    the MIG device ("NVIDIA A100-SXM4-40GB MIG 1g.5gb") still gives the profile.
    """
    try:
        info = nvml.nvmlGpuInstanceGetInfo(nvml.nvmlDeviceGetGpuInstanceById(handle, gi_id))
    except nvml.NVMLError as error:
        if not _is_error(nvml, error, "NVMLError_NoPermission"):
            raise
        info = None
    if info is not None and model is not None:
        for profile in model.mig_profiles.values():
            if (profile.nvml_profile_id == info.profileId
                    and profile.memory_slices == info.placement.size):
                return profile.name, info.placement.start
    match = _MIG_NAME_PROFILE.search(_text(nvml.nvmlDeviceGetName(mig)))
    start = info.placement.start if info is not None else None
    return (match.group(1) if match else "unknown"), start


def record_nvml_responses(nvml=None) -> dict[str, Any]:
    """Record what this host's NVML answers, in the form the tests replay.

    Run it on a GPU host (`json.dumps(record_nvml_responses(), indent=2)`) and save the
    result under tests/spawners/fixtures/ to add a recorded host.
    """
    nvml = _load_nvml(nvml)
    nvml.nvmlInit()
    try:
        devices = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            device = {
                "index": index,
                "name": _text(nvml.nvmlDeviceGetName(handle)),
                "uuid": _text(nvml.nvmlDeviceGetUUID(handle)),
                "pci_device_id": nvml.nvmlDeviceGetPciInfo(handle).pciDeviceId,
                "memory_total": nvml.nvmlDeviceGetMemoryInfo(handle).total,
                "mig_mode": _recorded(nvml, lambda: list(nvml.nvmlDeviceGetMigMode(handle))),
                "mig_devices": [],
            }
            if isinstance(device["mig_mode"], list) and device["mig_mode"][0] == nvml.NVML_DEVICE_MIG_ENABLE:
                device["max_mig_devices"] = nvml.nvmlDeviceGetMaxMigDeviceCount(handle)
                for slot in range(device["max_mig_devices"]):
                    device["mig_devices"].append(_recorded(nvml, lambda: _record_mig(nvml, handle, slot)))
            devices.append(device)
        return {
            "driver_version": _text(nvml.nvmlSystemGetDriverVersion()),
            "nvml_version": _text(nvml.nvmlSystemGetNVMLVersion()),
            "devices": devices,
        }
    finally:
        nvml.nvmlShutdown()


def _record_mig(nvml, handle, slot):
    mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
    gi_id = nvml.nvmlDeviceGetGpuInstanceId(mig)

    def gpu_instance_info():
        info = nvml.nvmlGpuInstanceGetInfo(nvml.nvmlDeviceGetGpuInstanceById(handle, gi_id))
        return {"profileId": info.profileId, "placement": {"start": info.placement.start,
                                                           "size": info.placement.size}}

    return {
        "uuid": _text(nvml.nvmlDeviceGetUUID(mig)),
        "name": _text(nvml.nvmlDeviceGetName(mig)),
        "gpu_instance_id": gi_id,
        "compute_instance_id": nvml.nvmlDeviceGetComputeInstanceId(mig),
        "gpu_instance_info": _recorded(nvml, gpu_instance_info),
    }


def _recorded(nvml, call):
    """A response, or the NVML error class name it raised (replayed as that error)."""
    try:
        return call()
    except nvml.NVMLError as error:
        return {"nvml_error": type(error).__name__}
