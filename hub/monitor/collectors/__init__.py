"""Collectors: each one source of readings, run once per round by the monitor.

A collector answers a `CollectorResult`; the monitor runs each under a timeout and turns any
exception into a failed result, so one broken source (no driver, Prometheus down, the hub
busy) degrades its own panel and nothing else.
"""
from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Awaitable, Callable

from ..readings import CollectorResult, ServerReading


class Collector:
    name = "collector"

    async def collect(self) -> CollectorResult:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


class NvmlCollector(Collector):
    """This host's GPUs through NVML (embedded mode on a GPU machine)."""

    name = "nvml"

    def __init__(self, node: str, nvml=None, user_prefix: str = "astrago-"):
        from .nvml import NvmlUtilisationReader, process_user

        self.reader = NvmlUtilisationReader(node, nvml, user_of_pid=lambda pid: process_user(pid, user_prefix))
        # NVML calls block: one thread of their own, never the event loop
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="astrago-nvml")

    async def collect(self) -> CollectorResult:
        devices = await asyncio.get_running_loop().run_in_executor(self._thread, self.reader.read)
        return CollectorResult(self.name, True, time.time(), devices=devices)

    def close(self) -> None:
        self._thread.submit(self.reader.close)
        self._thread.shutdown(wait=False)


class PrometheusCollector(Collector):
    """DCGM exporter series read through Prometheus (cluster mode)."""

    name = "prometheus"

    def __init__(self, url: str, token: str = "", timeout: float = 10.0):
        self.url, self.token, self.timeout = url, token, timeout

    async def collect(self) -> CollectorResult:
        from .prometheus import query_prometheus, readings_from_dcgm

        results = await query_prometheus(self.url, self.token, self.timeout)
        devices = readings_from_dcgm(results)
        note = "" if devices else "Prometheus has no DCGM series: is the DCGM exporter scraped?"
        return CollectorResult(self.name, True, time.time(), devices=devices, note=note)


class SimulatedCollector(Collector):
    """Readings of a simulated inventory from a JSON file (see collectors.simulated)."""

    name = "simulated"

    def __init__(self, inventory: Callable[[], object], load_file: str):
        self.inventory, self.load_file = inventory, load_file  # the ledger's inventory now (it can be replaced)

    async def collect(self) -> CollectorResult:
        from .simulated import read_load_file, simulated_readings

        load = read_load_file(self.load_file)
        note = (f"Simulated GPUs: readings from {os.path.basename(self.load_file)}." if load is not None
                else f"Simulated GPUs: no readings ({os.path.basename(self.load_file)} does not exist).")
        return CollectorResult(self.name, True, time.time(), devices=simulated_readings(self.inventory(), load),
                               note=note)


class HubCollector(Collector):
    """Users' servers from JupyterHub's REST API."""

    name = "hub"

    def __init__(self, hub_api: Callable[..., Awaitable[tuple[int, object]]]):
        self.hub_api = hub_api  # AreaContext.hub_api

    async def collect(self) -> CollectorResult:
        code, users = await self.hub_api("GET", "/users?state=active&limit=10000")
        if code != 200 or not isinstance(users, list):
            raise RuntimeError(f"JupyterHub's API answered {code}")
        servers = []
        for user in users:
            for name, server in (user.get("servers") or {}).items():
                servers.append(ServerReading(user=user["name"], name=name, ready=bool(server.get("ready")),
                                             pending=server.get("pending"),
                                             last_activity=_timestamp(server.get("last_activity"))))
        return CollectorResult(self.name, True, time.time(), servers=servers)


def _timestamp(value) -> float | None:
    if not value:
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def build_collectors(config, *, hub_api, inventory: Callable[[], object], simulated: bool) -> list[Collector]:
    """The collectors this deployment runs (MonitorConfig.collectors, or the mode's default).

    `inventory()` is the ledger's inventory now; `simulated`: it comes from a static file."""
    names = list(config.collectors)
    if not names:
        names = ["hub"]
        if simulated:
            names.append("simulated")
        elif config.prometheus_url:
            names.append("prometheus")
        elif inventory().gpu_count:
            names.append("nvml")  # a machine without GPUs has nothing to read
    out: list[Collector] = []
    for name in names:
        if name == "hub":
            out.append(HubCollector(hub_api))
        elif name == "nvml":
            out.append(NvmlCollector(os.uname().nodename, user_prefix=config.system_user_prefix))
        elif name == "prometheus":
            out.append(PrometheusCollector(config.prometheus_url, config.prometheus_token, config.collector_timeout))
        elif name == "simulated":
            out.append(SimulatedCollector(inventory, config.simulated_load_file))
        else:
            raise ValueError(f"unknown collector {name!r}; known: hub, nvml, prometheus, simulated")
    return out
