"""A cluster's GPU readings: NVIDIA's DCGM exporter series, read back through Prometheus.

Whole GPUs report `DCGM_FI_DEV_GPU_UTIL` (percent). MIG instances do not: their activity is
`DCGM_FI_PROF_GR_ENGINE_ACTIVE` (a ratio, one series per GPU instance, `GPU_I_ID` and
`GPU_I_PROFILE` labels). Memory is `DCGM_FI_DEV_FB_USED` + `DCGM_FI_DEV_FB_FREE` (MiB).

With the exporter's Kubernetes pod mapping on, series carry `namespace` and `pod`; GPUKubeSpawner
labels every pod `astrago.io/allocation=<id>`, which kube-state-metrics exports as
`kube_pod_labels{label_astrago_io_allocation=...}` (add the label to its allowlist). The join
gives each reading its allocation, since in a cluster the ledger does not know device UUIDs.
"""
from __future__ import annotations

import json
from urllib.parse import urlencode

from ..readings import DeviceReading

QUERIES = {
    "gpu_util": "DCGM_FI_DEV_GPU_UTIL",
    "engine_active": "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
    "fb_used": "DCGM_FI_DEV_FB_USED",
    "fb_free": "DCGM_FI_DEV_FB_FREE",
    "pod_allocations": 'kube_pod_labels{label_astrago_io_allocation!=""}',
}

MIB = 1024 * 1024


def _key(labels: dict) -> tuple[str, str, str]:
    return (labels.get("Hostname", ""), labels.get("UUID", ""), labels.get("GPU_I_ID", ""))


def readings_from_dcgm(results: dict[str, list[dict]]) -> list[DeviceReading]:
    """Readings from the instant-query results (`data.result` lists) of QUERIES (pure)."""
    pods = {}
    for sample in results.get("pod_allocations", []):
        m = sample["metric"]
        pods[(m.get("namespace", ""), m.get("pod", ""))] = m.get("label_astrago_io_allocation")
    devices: dict[tuple, DeviceReading] = {}

    def device(labels: dict) -> DeviceReading:
        key = _key(labels)
        found = devices.get(key)
        if found is None:
            node, gpu_uuid, gi = key
            is_mig = gi != ""
            try:
                index = int(labels.get("gpu", ""))
            except ValueError:
                index = None
            found = devices[key] = DeviceReading(
                uuid=f"{gpu_uuid}/gi{gi}" if is_mig else gpu_uuid, kind="mig" if is_mig else "gpu", node=node,
                gpu_uuid=gpu_uuid, gpu_index=index, gi_id=int(gi) if is_mig and gi.isdigit() else None,
                profile=labels.get("GPU_I_PROFILE", "") if is_mig else "")
        pod = (labels.get("namespace", ""), labels.get("pod", ""))
        if pod[1] and pods.get(pod):
            found.allocation_hint = pods[pod]
        return found

    def value(sample) -> float:
        return float(sample["value"][1])

    for sample in results.get("gpu_util", []):
        labels = sample["metric"]
        if labels.get("GPU_I_ID", "") == "":  # MIG instances never report it; ignore if one did
            device(labels).utilization = max(0.0, min(1.0, value(sample) / 100.0))
    for sample in results.get("engine_active", []):
        labels = sample["metric"]
        if labels.get("GPU_I_ID", "") != "":
            device(labels).utilization = max(0.0, min(1.0, value(sample)))
        else:
            device(labels)  # a whole GPU: GPU_UTIL is its figure
    used = {_key(s["metric"]): value(s) for s in results.get("fb_used", [])}
    free = {_key(s["metric"]): value(s) for s in results.get("fb_free", [])}
    for sample in results.get("fb_used", []):
        d = device(sample["metric"])
        key = _key(sample["metric"])
        d.memory_used_bytes = int(used[key] * MIB)
        if key in free:
            d.memory_total_bytes = int((used[key] + free[key]) * MIB)
    return sorted(devices.values(), key=lambda d: (d.node, d.gpu_uuid, d.gi_id if d.gi_id is not None else -1))


async def query_prometheus(base_url: str, token: str = "", timeout: float = 10.0) -> dict[str, list[dict]]:
    """Run QUERIES against Prometheus's HTTP API; raises on any failure."""
    from tornado.httpclient import AsyncHTTPClient, HTTPRequest

    client = AsyncHTTPClient()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    out = {}
    for name, query in QUERIES.items():
        url = base_url.rstrip("/") + "/api/v1/query?" + urlencode({"query": query})
        resp = await client.fetch(HTTPRequest(url, headers=headers, request_timeout=timeout), raise_error=False)
        if resp.code != 200:
            raise RuntimeError(f"Prometheus answered {resp.code} to {query}: {(resp.body or b'')[:200]!r}")
        body = json.loads(resp.body)
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus refused {query}: {body.get('error')}")
        out[name] = body["data"]["result"]
    return out
