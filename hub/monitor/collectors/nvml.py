"""Utilisation and memory of this host's GPUs and MIG instances, through NVML.

Whole GPUs: `nvmlDeviceGetUtilizationRates` (the share of the last sample period a kernel
ran), memory in use, and per process the memory and SM share (`nvmlDeviceGetProcessUtilization`),
so a process is attributed to the user whose system account runs it.

MIG instances do not report `nvmlDeviceGetUtilizationRates`; on GPUs with GPM (Hopper and
newer) their graphics-engine activity comes from two GPM samples, one round apart
(`nvmlGpmMigSampleGet` + `nvmlGpmMetricsGet`, the same counter DCGM exports as
`DCGM_FI_PROF_GR_ENGINE_ACTIVE`). Without GPM (A100, A30) a MIG instance's utilisation is
unknown (None) — never reported as idle.

`pynvml` (nvidia-ml-py) is imported only when no module is handed in: the tests hand in a
double that replays recorded responses (tests/monitoring/nvml_util_replay.py), in the form
`record_nvml_utilisation` writes on a real host.
"""
from __future__ import annotations

import pwd
import re
from typing import Any, Callable

from ..readings import DeviceReading, ProcessReading

_MIG_NAME_PROFILE = re.compile(r"(\d+g\.\d+gb(?:\+me)?)\s*$")
NVML_VALUE_NOT_AVAILABLE = 0xFFFFFFFFFFFFFFFF  # what NVML puts in usedGpuMemory when it cannot tell


class NvmlUnavailable(RuntimeError):
    """NVML cannot be loaded or initialised on this host."""


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _is_error(nvml, error, name: str) -> bool:
    cls = getattr(nvml, name, None)
    return cls is not None and isinstance(error, cls)


def process_user(pid: int, prefix: str = "astrago-") -> str | None:
    """The hub user whose system account (`astrago-<user>`) runs `pid`, if any."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("Uid:"):
                    uid = int(line.split()[1])
                    break
            else:
                return None
        account = pwd.getpwuid(uid).pw_name
    except (OSError, KeyError, ValueError, IndexError):
        return None
    return account[len(prefix):] if account.startswith(prefix) else None


class NvmlUtilisationReader:
    """Keeps NVML open between rounds: GPM needs the previous round's sample, and the
    per-process samples are asked for "since the last one seen"."""

    def __init__(self, node: str, nvml=None, *, user_of_pid: Callable[[int], str | None] | None = None):
        self.node = node
        self._nvml_given = nvml
        self.nvml = None
        self.user_of_pid = user_of_pid or process_user
        self._gpm_previous: dict[str, Any] = {}  # MIG uuid -> last GPM sample
        self._process_seen_us: dict[str, int] = {}  # GPU uuid -> last per-process sample timestamp

    def _open(self):
        if self.nvml is not None:
            return self.nvml
        nvml = self._nvml_given
        if nvml is None:
            try:
                import pynvml as nvml
            except ImportError as error:
                raise NvmlUnavailable(f"NVML bindings are not installed: {error}") from None
        try:
            nvml.nvmlInit()
        except Exception as error:  # library missing, driver not loaded: no GPUs to read
            raise NvmlUnavailable(f"NVML could not be initialised: {error}") from None
        self.nvml = nvml
        return nvml

    def close(self) -> None:
        if self.nvml is None:
            return
        for sample in self._gpm_previous.values():
            try:
                self.nvml.nvmlGpmSampleFree(sample)
            except Exception:
                pass
        self._gpm_previous.clear()
        try:
            self.nvml.nvmlShutdown()
        finally:
            self.nvml = None

    def read(self) -> list[DeviceReading]:
        """One round: every GPU, and every MIG instance of GPUs in MIG mode."""
        nvml = self._open()
        try:
            out: list[DeviceReading] = []
            for index in range(nvml.nvmlDeviceGetCount()):
                out.extend(self._gpu(nvml, index))
            return out
        except Exception:
            self.close()  # start from a clean library next round (a GPU fell off the bus, ...)
            raise

    # -- one GPU ------------------------------------------------------------

    def _gpu(self, nvml, index: int) -> list[DeviceReading]:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        uuid = _text(nvml.nvmlDeviceGetUUID(handle))
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        gpu = DeviceReading(uuid=uuid, kind="gpu", node=self.node, gpu_uuid=uuid, gpu_index=index,
                            memory_used_bytes=int(memory.used), memory_total_bytes=int(memory.total))
        if not self._mig_enabled(nvml, handle):
            gpu.utilization = self._utilisation(nvml, handle)
            gpu.processes = self._processes(nvml, handle, sm=self._process_samples(nvml, handle, uuid))
            return [gpu]
        out = [gpu]
        gpm = self._gpm_supported(nvml, handle)
        for slot in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
            try:
                mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
            except nvml.NVMLError as error:
                if _is_error(nvml, error, "NVMLError_NotFound"):
                    continue  # an empty slot
                raise
            out.append(self._mig(nvml, handle, mig, index, uuid, gpm))
        return out

    def _mig(self, nvml, handle, mig, index: int, gpu_uuid: str, gpm: bool) -> DeviceReading:
        uuid = _text(nvml.nvmlDeviceGetUUID(mig))
        gi_id = nvml.nvmlDeviceGetGpuInstanceId(mig)
        match = _MIG_NAME_PROFILE.search(_text(nvml.nvmlDeviceGetName(mig)))
        memory = nvml.nvmlDeviceGetMemoryInfo(mig)
        reading = DeviceReading(uuid=uuid, kind="mig", node=self.node, gpu_uuid=gpu_uuid, gpu_index=index,
                                gi_id=gi_id, profile=match.group(1) if match else "",
                                memory_used_bytes=int(memory.used), memory_total_bytes=int(memory.total))
        reading.processes = self._processes(nvml, mig, sm={})
        if gpm:
            reading.utilization = self._gpm_activity(nvml, handle, gi_id, uuid)
        return reading

    # -- pieces ---------------------------------------------------------------

    @staticmethod
    def _mig_enabled(nvml, handle) -> bool:
        try:
            current, _pending = nvml.nvmlDeviceGetMigMode(handle)
        except nvml.NVMLError as error:
            if _is_error(nvml, error, "NVMLError_NotSupported"):
                return False
            raise
        return current == nvml.NVML_DEVICE_MIG_ENABLE

    @staticmethod
    def _utilisation(nvml, handle) -> float | None:
        try:
            return nvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0
        except nvml.NVMLError as error:
            if _is_error(nvml, error, "NVMLError_NotSupported"):
                return None
            raise

    @staticmethod
    def _gpm_supported(nvml, handle) -> bool:
        try:
            return bool(nvml.nvmlGpmQueryDeviceSupport(handle).isSupportedDevice)
        except (nvml.NVMLError, AttributeError):
            return False  # pre-Hopper GPU, or bindings without GPM

    def _gpm_activity(self, nvml, handle, gi_id: int, uuid: str) -> float | None:
        """Graphics-engine activity of a MIG instance between the previous round and now."""
        sample = nvml.nvmlGpmSampleAlloc()
        try:
            nvml.nvmlGpmMigSampleGet(handle, gi_id, sample)
        except nvml.NVMLError:
            nvml.nvmlGpmSampleFree(sample)
            return None
        previous = self._gpm_previous.pop(uuid, None)
        self._gpm_previous[uuid] = sample
        if previous is None:
            return None  # the first round only starts the measurement
        try:
            request = nvml.c_nvmlGpmMetricsGet_t()
            request.version = nvml.NVML_GPM_METRICS_GET_VERSION
            request.numMetrics = 1
            request.sample1 = previous
            request.sample2 = sample
            request.metrics[0].metricId = nvml.NVML_GPM_METRIC_GRAPHICS_UTIL
            result = nvml.nvmlGpmMetricsGet(request)
            if result.metrics[0].nvmlReturn != 0:
                return None
            return max(0.0, min(1.0, float(result.metrics[0].value) / 100.0))
        except nvml.NVMLError:
            return None
        finally:
            nvml.nvmlGpmSampleFree(previous)

    def _process_samples(self, nvml, handle, uuid: str) -> dict[int, float]:
        """pid -> SM share in the samples since the last round (NVML keeps a short buffer)."""
        since = self._process_seen_us.get(uuid, 0)
        try:
            samples = nvml.nvmlDeviceGetProcessUtilization(handle, since)
        except nvml.NVMLError as error:
            if _is_error(nvml, error, "NVMLError_NotFound") or _is_error(nvml, error, "NVMLError_NotSupported"):
                return {}  # no sample since `since`: nothing ran
            raise
        latest: dict[int, tuple[int, float]] = {}
        for s in samples:
            if s.pid not in latest or s.timeStamp >= latest[s.pid][0]:
                latest[s.pid] = (s.timeStamp, s.smUtil / 100.0)
            self._process_seen_us[uuid] = max(self._process_seen_us.get(uuid, 0), int(s.timeStamp))
        return {pid: value for pid, (_ts, value) in latest.items()}

    def _processes(self, nvml, handle, sm: dict[int, float]) -> list[ProcessReading]:
        try:
            running = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
        except nvml.NVMLError as error:
            if _is_error(nvml, error, "NVMLError_NotSupported") or _is_error(nvml, error, "NVMLError_NoPermission"):
                return []
            raise
        out = []
        for p in running:
            used = p.usedGpuMemory
            out.append(ProcessReading(pid=int(p.pid),
                                      memory_used_bytes=None if used in (None, NVML_VALUE_NOT_AVAILABLE) else int(used),
                                      sm_utilization=sm.get(int(p.pid)), user=self.user_of_pid(int(p.pid))))
        return out


# ---------------------------------------------------------------- recording (run on a GPU host)

def record_nvml_utilisation(nvml=None) -> dict[str, Any]:
    """One round of what this host's NVML answers to the calls above, in the form the tests
    replay. Call it a few times while a workload runs and save {"rounds": [...]}."""
    if nvml is None:
        import pynvml as nvml
    nvml.nvmlInit()
    try:
        devices = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            device = {
                "index": index, "uuid": _text(nvml.nvmlDeviceGetUUID(handle)),
                "name": _text(nvml.nvmlDeviceGetName(handle)),
                "memory": {"total": int(memory.total), "used": int(memory.used)},
                "mig_mode": _recorded(nvml, lambda: list(nvml.nvmlDeviceGetMigMode(handle))),
                "utilization": _recorded(nvml, lambda: {"gpu": nvml.nvmlDeviceGetUtilizationRates(handle).gpu,
                                                        "memory": nvml.nvmlDeviceGetUtilizationRates(handle).memory}),
                "processes": _recorded(nvml, lambda: _record_processes(nvml, handle)),
                "process_utilization": _recorded(nvml, lambda: [
                    {"pid": s.pid, "timeStamp": s.timeStamp, "smUtil": s.smUtil, "memUtil": s.memUtil}
                    for s in nvml.nvmlDeviceGetProcessUtilization(handle, 0)]),
                "gpm_supported": _recorded(nvml, lambda: bool(nvml.nvmlGpmQueryDeviceSupport(handle).isSupportedDevice)),
                "mig_devices": [],
            }
            if isinstance(device["mig_mode"], list) and device["mig_mode"][0] == nvml.NVML_DEVICE_MIG_ENABLE:
                device["max_mig_devices"] = nvml.nvmlDeviceGetMaxMigDeviceCount(handle)
                gpm = device["gpm_supported"] is True
                for slot in range(device["max_mig_devices"]):
                    device["mig_devices"].append(_recorded(nvml, lambda: _record_mig(nvml, handle, slot, gpm)))
            devices.append(device)
        return {"driver_version": _text(nvml.nvmlSystemGetDriverVersion()), "devices": devices}
    finally:
        nvml.nvmlShutdown()


def _record_processes(nvml, handle):
    return [{"pid": int(p.pid), "usedGpuMemory": None if p.usedGpuMemory in (None, NVML_VALUE_NOT_AVAILABLE)
             else int(p.usedGpuMemory)} for p in nvml.nvmlDeviceGetComputeRunningProcesses(handle)]


def _record_mig(nvml, handle, slot, gpm: bool):
    mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
    memory = nvml.nvmlDeviceGetMemoryInfo(mig)
    gi_id = nvml.nvmlDeviceGetGpuInstanceId(mig)
    out = {"uuid": _text(nvml.nvmlDeviceGetUUID(mig)), "name": _text(nvml.nvmlDeviceGetName(mig)),
           "gpu_instance_id": gi_id, "memory": {"total": int(memory.total), "used": int(memory.used)},
           "processes": _recorded(nvml, lambda: _record_processes(nvml, mig))}
    if gpm:  # the graphics-engine activity over half a second, as the reader measures it between rounds
        import time

        reader = NvmlUtilisationReader("record", nvml)
        reader.nvml = nvml
        reader._gpm_activity(nvml, handle, gi_id, out["uuid"])
        time.sleep(0.5)
        value = reader._gpm_activity(nvml, handle, gi_id, out["uuid"])
        for sample in reader._gpm_previous.values():
            nvml.nvmlGpmSampleFree(sample)
        out["gpm_graphics_util"] = None if value is None else value * 100.0
    return out


def _recorded(nvml, call):
    try:
        return call()
    except nvml.NVMLError as error:
        return {"nvml_error": type(error).__name__}
