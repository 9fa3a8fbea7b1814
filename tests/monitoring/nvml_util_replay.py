"""Test double: an `nvml` module replaying recorded NVML *utilisation* responses.

The sibling of tests/spawners/nvml_replay.py (which replays the inventory calls): it answers
the calls `astrago.hub.monitor.collectors.nvml` makes, from a recording of rounds in the form
`record_nvml_utilisation` writes ({"rounds": [round, ...]}); `advance()` moves to the next
round, as time passing on a real host would. Errors are replayed as pynvml's own error
classes, and GPM requests use a stand-in for pynvml's `c_nvmlGpmMetricsGet_t` structure.

It is a double: nothing here has run on a GPU.
"""
import json
from pathlib import Path
from types import SimpleNamespace

import pynvml

FIXTURES = Path(__file__).parent / "fixtures"


class _GpmSample:
    def __init__(self):
        self.where = None  # (device index, gpu instance id, round)
        self.freed = False


class _GpmMetricsGet:
    """Python stand-in for pynvml.c_nvmlGpmMetricsGet_t: same fields, no ctypes."""

    def __init__(self):
        self.version = 0
        self.numMetrics = 0
        self.sample1 = None
        self.sample2 = None
        self.metrics = [SimpleNamespace(metricId=0, nvmlReturn=0, value=0.0) for _ in range(pynvml.NVML_GPM_METRIC_MAX)]


class RecordedNvmlUtilisation:
    NVMLError = pynvml.NVMLError
    NVMLError_NotFound = pynvml.NVMLError_NotFound
    NVMLError_NotSupported = pynvml.NVMLError_NotSupported
    NVMLError_NoPermission = pynvml.NVMLError_NoPermission
    NVML_DEVICE_MIG_ENABLE = pynvml.NVML_DEVICE_MIG_ENABLE
    NVML_GPM_METRICS_GET_VERSION = pynvml.NVML_GPM_METRICS_GET_VERSION
    NVML_GPM_METRIC_GRAPHICS_UTIL = pynvml.NVML_GPM_METRIC_GRAPHICS_UTIL
    c_nvmlGpmMetricsGet_t = _GpmMetricsGet

    def __init__(self, recording: dict):
        self.rounds = recording["rounds"]
        self.round = 0
        self.initialised = 0
        self.shutdowns = 0
        self.samples: list[_GpmSample] = []

    @classmethod
    def from_fixture(cls, name: str) -> "RecordedNvmlUtilisation":
        return cls(json.loads((FIXTURES / name).read_text()))

    def advance(self) -> None:
        self.round = min(self.round + 1, len(self.rounds) - 1)

    @staticmethod
    def _answer(value):
        if isinstance(value, dict) and "nvml_error" in value:
            raise getattr(pynvml, value["nvml_error"])()
        return value

    def _dev(self, handle, round_=None):
        return self.rounds[self.round if round_ is None else round_]["devices"][handle[1]]

    def _node(self, handle):
        if handle[0] == "mig":
            return self._answer(self._dev(handle)["mig_devices"][handle[2]])
        return self._dev(handle)

    # library
    def nvmlInit(self):
        self.initialised += 1

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self):
        return self.rounds[self.round]["driver_version"]

    # devices
    def nvmlDeviceGetCount(self):
        return len(self.rounds[self.round]["devices"])

    def nvmlDeviceGetHandleByIndex(self, index):
        return ("gpu", index)

    def nvmlDeviceGetUUID(self, handle):
        return self._node(handle)["uuid"]

    def nvmlDeviceGetName(self, handle):
        return self._node(handle)["name"]

    def nvmlDeviceGetMemoryInfo(self, handle):
        m = self._node(handle)["memory"]
        return SimpleNamespace(total=m["total"], used=m["used"], free=m["total"] - m["used"])

    def nvmlDeviceGetMigMode(self, handle):
        return self._answer(self._dev(handle)["mig_mode"])

    def nvmlDeviceGetMaxMigDeviceCount(self, handle):
        return self._dev(handle)["max_mig_devices"]

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle, slot):
        devices = self._dev(handle)["mig_devices"]
        if slot >= len(devices):
            raise pynvml.NVMLError_NotFound()
        self._answer(devices[slot])
        return ("mig", handle[1], slot)

    def nvmlDeviceGetGpuInstanceId(self, handle):
        return self._node(handle)["gpu_instance_id"]

    def nvmlDeviceGetUtilizationRates(self, handle):
        u = self._answer(self._node(handle)["utilization"])
        return SimpleNamespace(gpu=u["gpu"], memory=u["memory"])

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        procs = self._answer(self._node(handle).get("processes", []))
        return [SimpleNamespace(pid=p["pid"], usedGpuMemory=p["usedGpuMemory"]) for p in procs]

    def nvmlDeviceGetProcessUtilization(self, handle, since):
        samples = self._answer(self._node(handle).get("process_utilization", []))
        newer = [SimpleNamespace(**s) for s in samples if s["timeStamp"] > since]
        if not newer:
            raise pynvml.NVMLError_NotFound()
        return newer

    # GPM (Hopper and newer)
    def nvmlGpmQueryDeviceSupport(self, handle):
        return SimpleNamespace(isSupportedDevice=int(bool(self._answer(self._dev(handle).get("gpm_supported", False)))))

    def nvmlGpmSampleAlloc(self):
        sample = _GpmSample()
        self.samples.append(sample)
        return sample

    def nvmlGpmSampleFree(self, sample):
        sample.freed = True

    def nvmlGpmMigSampleGet(self, handle, gi_id, sample):
        sample.where = (handle[1], gi_id, self.round)
        return sample

    def nvmlGpmMetricsGet(self, request):
        index, gi_id, round_ = request.sample2.where
        mig = next(m for m in self.rounds[round_]["devices"][index]["mig_devices"]
                   if isinstance(m, dict) and m.get("gpu_instance_id") == gi_id)
        value = mig.get("gpm_graphics_util")
        request.metrics[0].nvmlReturn = 0 if value is not None else pynvml.NVML_ERROR_NOT_SUPPORTED
        request.metrics[0].value = value or 0.0
        return request
