"""Test double: an `nvml` module that replays recorded NVML responses.

It implements the calls `astrago.spawners.inventory.nvml` makes, answering from a recording
in the format `record_nvml_responses` writes. Errors are replayed as pynvml's own error
classes, so the code under test sees exactly what a real host would raise.
"""

import json
from pathlib import Path
from types import SimpleNamespace

import pynvml

FIXTURES = Path(__file__).parent / "fixtures"


class RecordedNvml:
    NVMLError = pynvml.NVMLError
    NVMLError_NotFound = pynvml.NVMLError_NotFound
    NVMLError_NotSupported = pynvml.NVMLError_NotSupported
    NVMLError_NoPermission = pynvml.NVMLError_NoPermission
    NVML_DEVICE_MIG_ENABLE = pynvml.NVML_DEVICE_MIG_ENABLE

    def __init__(self, recording: dict):
        self.recording = recording
        self.initialised = 0
        self.shutdowns = 0

    @classmethod
    def from_fixture(cls, name: str) -> "RecordedNvml":
        return cls(json.loads((FIXTURES / name).read_text()))

    @staticmethod
    def _answer(value):
        if isinstance(value, dict) and "nvml_error" in value:
            raise getattr(pynvml, value["nvml_error"])()
        return value

    def _device(self, handle):
        return self.recording["devices"][handle[1]]

    def _mig(self, handle):
        return self._answer(self.recording["devices"][handle[1]]["mig_devices"][handle[2]])

    # library
    def nvmlInit(self):
        self.initialised += 1

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self):
        return self.recording["driver_version"]

    def nvmlSystemGetNVMLVersion(self):
        return self.recording["nvml_version"]

    # devices
    def nvmlDeviceGetCount(self):
        return len(self.recording["devices"])

    def nvmlDeviceGetHandleByIndex(self, index):
        return ("gpu", index)

    def nvmlDeviceGetName(self, handle):
        return self._mig(handle)["name"] if handle[0] == "mig" else self._device(handle)["name"]

    def nvmlDeviceGetUUID(self, handle):
        return self._mig(handle)["uuid"] if handle[0] == "mig" else self._device(handle)["uuid"]

    def nvmlDeviceGetPciInfo(self, handle):
        return SimpleNamespace(pciDeviceId=self._device(handle)["pci_device_id"])

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(total=self._device(handle)["memory_total"])

    def nvmlDeviceGetMigMode(self, handle):
        return self._answer(self._device(handle)["mig_mode"])

    def nvmlDeviceGetMaxMigDeviceCount(self, handle):
        return self._device(handle)["max_mig_devices"]

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle, slot):
        self._answer(self._device(handle)["mig_devices"][slot])
        return ("mig", handle[1], slot)

    def nvmlDeviceGetGpuInstanceId(self, handle):
        return self._mig(handle)["gpu_instance_id"]

    def nvmlDeviceGetComputeInstanceId(self, handle):
        return self._mig(handle)["compute_instance_id"]

    def nvmlDeviceGetGpuInstanceById(self, handle, gi_id):
        for slot, mig in enumerate(self._device(handle)["mig_devices"]):
            if isinstance(mig, dict) and mig.get("gpu_instance_id") == gi_id:
                self._answer(mig["gpu_instance_info"])
                return ("gi", handle[1], slot)
        raise pynvml.NVMLError_NotFound()

    def nvmlGpuInstanceGetInfo(self, gi):
        info = self._answer(self.recording["devices"][gi[1]]["mig_devices"][gi[2]]["gpu_instance_info"])
        return SimpleNamespace(profileId=info["profileId"], placement=SimpleNamespace(**info["placement"]))
