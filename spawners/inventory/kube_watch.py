"""Node objects kept current by list + watch, in ONE shared cache per process.

The pattern of kubespawner's `ResourceReflector`: a full list (which gives a
resourceVersion), then a watch from that version; on an expired version (410 Gone), a
network error or after `restart_seconds`, list again. Everyone in the process reads the same
`NodeWatch` (`NodeWatch.shared()`), as every KubeSpawner reads one pod reflector.

kubespawner's reflector cannot watch Nodes: it keys objects by `namespace/name`, and Nodes
have no namespace. This one keys them by name.

Listeners hear about a node only when something GPU-related changed (`gpu_signature`:
NVIDIA labels and NVIDIA capacity): Nodes report status every few seconds, and a re-read of
the inventory is not free. `inventory()` is `nodes_from_kubernetes` over the cache.

`api` is a kubernetes_asyncio `CoreV1Api` (`core_v1_api()` makes one from the in-cluster
configuration or ~/.kube/config, shared per event loop as kubespawner shares its clients),
or anything with the same `list_node` (the tests' Kubernetes API test double).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from functools import partial
from typing import Any, Callable, Mapping

from . import ClusterInventory, InventoryUnavailable
from .kubernetes_nodes import nodes_from_kubernetes

__all__ = ["NodeWatch", "PodWatch", "core_v1_api", "gpu_signature", "list_nodes_once", "pod_gpu_signature"]

log = logging.getLogger("astrago.inventory.kube_watch")

NVIDIA_PREFIX = "nvidia.com/"


def gpu_signature(node: Mapping[str, Any]) -> tuple:
    """What of a Node matters to the GPU inventory: NVIDIA labels and capacity, and whether it is cordoned."""
    metadata = node.get("metadata") or {}
    labels = metadata.get("labels") or {}
    capacity = (node.get("status") or {}).get("capacity") or {}
    return (
        tuple(sorted((k, v) for k, v in labels.items() if k.startswith(NVIDIA_PREFIX))),
        tuple(sorted((k, str(v)) for k, v in capacity.items() if k.startswith(NVIDIA_PREFIX))),
        bool((node.get("spec") or {}).get("unschedulable")),
    )


def core_v1_api():
    """A kubernetes_asyncio CoreV1Api for this event loop (in-cluster config, else kubeconfig)."""
    from kubespawner.clients import load_config, shared_client

    load_config()
    return shared_client("CoreV1Api")


async def _list(api, label_selector: str, request_timeout: float, method: str = "list_node",
                **selectors) -> tuple[list[dict], str]:
    response = await getattr(api, method)(label_selector=label_selector, _preload_content=False,
                                          _request_timeout=request_timeout, **selectors)
    try:
        body = json.loads(await response.read())
    finally:
        response.release()
    if not getattr(response, "ok", True) or "items" not in body:
        raise InventoryUnavailable(f"listing {method} failed: HTTP {getattr(response, 'status', '?')} "
                                   f"{body.get('message', '')}".strip())
    return body["items"], body["metadata"]["resourceVersion"]


def list_nodes_once(api_factory: Callable[[], Any] | None = None, label_selector: str = "",
                    attempts: int = 3, request_timeout: float = 30) -> list[dict]:
    """Node objects read once, from synchronous code that runs no event loop (service start-up).

    Raises InventoryUnavailable after `attempts` failed tries.
    """
    async def read():
        from kubernetes_asyncio import client

        if api_factory is not None:
            return (await _list(api_factory(), label_selector, request_timeout))[0]
        from kubespawner.clients import load_config

        load_config()
        async with client.ApiClient() as api_client:
            return (await _list(client.CoreV1Api(api_client), label_selector, request_timeout))[0]

    error: Exception | None = None
    for attempt in range(attempts):
        try:
            return asyncio.run(read())
        except Exception as exc:  # network, RBAC, configuration: say which
            error = exc
            if attempt + 1 < attempts:
                time.sleep(min(2 ** attempt, 10))
    raise InventoryUnavailable(f"the Kubernetes API could not list nodes ({error}). The hub's service account "
                               "needs get/list/watch on nodes: see docs/deploy-kubernetes.md.") from error


class NodeWatch:
    """A cache of Node objects by name, kept current by list + watch."""

    list_method = "list_node"
    selectors: dict = {}
    what = "nodes"

    @staticmethod
    def key(obj: Mapping[str, Any]) -> str | None:
        return (obj.get("metadata") or {}).get("name")

    signature = staticmethod(gpu_signature)

    #: one watch per (event loop, label selector) in this process
    _shared: dict[tuple, "NodeWatch"] = {}

    def __init__(self, api, label_selector: str = "", *, request_timeout: float = 60, timeout_seconds: int = 10,
                 restart_seconds: float = 30, max_backoff: float = 30):
        self.api = api
        self.label_selector = label_selector
        self.request_timeout = request_timeout
        self.timeout_seconds = timeout_seconds
        self.restart_seconds = restart_seconds
        self.max_backoff = max_backoff
        self.nodes: dict[str, dict] = {}
        self._signatures: dict[str, tuple] = {}
        self._listeners: list[Callable[[set[str]], Any]] = []
        self._task: asyncio.Task | None = None
        self._stopping = False
        self.first_load: asyncio.Future = asyncio.get_running_loop().create_future()

    @classmethod
    async def shared(cls, api_factory: Callable[[], Any] = core_v1_api, label_selector: str = "", **options) -> "NodeWatch":
        """The process's NodeWatch for `label_selector`, started (and loaded once) on first use."""
        key = (cls, asyncio.get_running_loop(), label_selector)
        watch = cls._shared.get(key)
        if watch is None:
            watch = cls._shared[key] = cls(api_factory(), label_selector, **options)
            try:
                await watch.start()
            except BaseException:
                cls._shared.pop(key, None)
                raise
        await watch.first_load
        return watch

    @classmethod
    async def stop_all(cls) -> None:
        for key in list(cls._shared):
            await cls._shared.pop(key).stop()

    # -- reading -----------------------------------------------------------

    def inventory(self) -> ClusterInventory:
        return nodes_from_kubernetes([self.nodes[name] for name in sorted(self.nodes)])

    def add_listener(self, listener: Callable[[set[str]], Any]) -> None:
        """Call `listener(changed node names)` after each GPU-relevant change (may be async)."""
        self._listeners.append(listener)

    # -- keeping it current ------------------------------------------------------

    async def start(self) -> None:
        """List once (raising if that fails), then keep watching in the background."""
        version = await self._relist()
        if not self.first_load.done():
            self.first_load.set_result(None)
        self._task = asyncio.create_task(self._watch_forever(version))

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await asyncio.wait_for(self._task, 5)
            except (asyncio.CancelledError, asyncio.TimeoutError):
                pass
        self._task = None

    async def _relist(self) -> str:
        items, version = await _list(self.api, self.label_selector, self.request_timeout, self.list_method,
                                     **self.selectors)
        fresh = {self.key(item): item for item in items}
        changed = set(self.nodes) - set(fresh)
        for name in changed:
            self._signatures.pop(name, None)
        self.nodes = fresh
        for name, node in fresh.items():
            changed |= self._remember(name, node)
        await self._notify(changed)
        return version

    def _remember(self, name: str, node: dict) -> set[str]:
        signature = self.signature(node)
        if self._signatures.get(name) == signature:
            return set()
        self._signatures[name] = signature
        return {name}

    async def _notify(self, changed: set[str]) -> None:
        if not changed:
            return
        for listener in list(self._listeners):
            try:
                result = listener(set(changed))
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # a listener's failure must not stop the watch
                log.exception("node listener failed")

    async def _watch_forever(self, version: str) -> None:
        from kubernetes_asyncio import watch

        delay = 0.1
        while not self._stopping:
            started = time.monotonic()
            stream = watch.Watch()
            try:
                if version is None:
                    version = await self._relist()
                method = partial(getattr(self.api, self.list_method), _preload_content=False)
                # bookmarks keep a quiet watch's resourceVersion current, so resuming it is not a 410
                async with stream.stream(method, label_selector=self.label_selector, resource_version=version,
                                         timeout_seconds=self.timeout_seconds, _request_timeout=self.request_timeout,
                                         allow_watch_bookmarks=True, **self.selectors) as events:
                    async for event in events:
                        delay = 0.1
                        version = self._apply(event) or version
                        changed = self._changed_by(event)
                        await self._notify(changed)
                        if self._stopping or time.monotonic() - started >= self.restart_seconds:
                            break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # 410 Gone, network, API errors: list again after a pause
                version = None
                delay = min(delay * 2, self.max_backoff)
                log.warning("watching %s failed (%s); listing again in %.1fs", self.what, exc, delay)
                await asyncio.sleep(delay)
            finally:
                stream.stop()
                await stream.close()

    def _apply(self, event: Mapping[str, Any]) -> str | None:
        node = event.get("raw_object") or {}
        metadata = node.get("metadata") or {}
        name = self.key(node)
        if event.get("type") == "BOOKMARK" or not name:
            return metadata.get("resourceVersion")
        if event.get("type") == "DELETED":
            self.nodes.pop(name, None)
        else:
            self.nodes[name] = node
        return metadata.get("resourceVersion")

    def _changed_by(self, event: Mapping[str, Any]) -> set[str]:
        name = self.key(event.get("raw_object") or {})
        if not name or event.get("type") == "BOOKMARK":
            return set()
        if event.get("type") == "DELETED":
            return {name} if self._signatures.pop(name, None) is not None else set()
        return self._remember(name, self.nodes[name])


def pod_gpu_signature(pod: Mapping[str, Any]) -> tuple:
    """What of a Pod matters to capacity: where it is bound, whether it still holds its
    resources there, its NVIDIA requests and AstraGo's labels on it."""
    from .cluster_capacity import ALLOCATION_LABEL, JOB_LABEL, is_bound, pod_requests

    labels = (pod.get("metadata") or {}).get("labels") or {}
    requests = pod_requests(pod)
    if not requests:
        return ()
    return ((pod.get("spec") or {}).get("nodeName"), is_bound(pod), tuple(sorted(requests.items())),
            labels.get(ALLOCATION_LABEL), labels.get(JOB_LABEL))


class PodWatch(NodeWatch):
    """The pods bound to nodes in every namespace (one list + watch, as kubespawner's pod
    reflector, cluster-wide): what kube-scheduler counts against a node's allocatable.

    The field selector leaves out unscheduled and finished pods; a pod that finishes leaves
    the selection, which the API server reports as DELETED. Listeners hear only of pods whose
    NVIDIA requests, node or AstraGo labels changed (`pod_gpu_signature`). `pods()` lists them.
    Needs list/watch on pods cluster-wide (config/z2jh/astrago-rbac.yaml)."""

    list_method = "list_pod_for_all_namespaces"
    selectors = {"field_selector": "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"}
    what = "pods"

    @staticmethod
    def key(obj: Mapping[str, Any]) -> str | None:
        metadata = obj.get("metadata") or {}
        return f"{metadata.get('namespace')}/{metadata['name']}" if metadata.get("name") else None

    signature = staticmethod(pod_gpu_signature)

    def pods(self) -> list[dict]:
        return [self.nodes[key] for key in sorted(self.nodes)]

    def _changed_by(self, event: Mapping[str, Any]) -> set[str]:
        name = self.key(event.get("raw_object") or {})
        if not name or event.get("type") == "BOOKMARK":
            return set()
        if event.get("type") == "DELETED":
            return {name} if self._signatures.pop(name, None) not in (None, ()) else set()
        return self._remember(name, self.nodes[name])

    def _remember(self, name: str, pod: dict) -> set[str]:
        before = self._signatures.get(name)
        signature = self.signature(pod)
        self._signatures[name] = signature
        return set() if before == signature or (before is None and signature == ()) else {name}
