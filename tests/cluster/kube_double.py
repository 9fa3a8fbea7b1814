"""FakeKubeAPI: a TEST DOUBLE of the Kubernetes API. It is not a Kubernetes API server.

No Kubernetes API server runs here (DESIGN.md "What is real in tests"). This double stands
in for kubernetes_asyncio's `CoreV1Api` at the client boundary: it has the methods
KubeSpawner, its reflectors, AstraGo's node watch and the fleet area's client call, with the
same names and keyword arguments, and it answers in the shapes the real client gives:

- `_preload_content=False` (the reflectors' list and watch calls): a response with `ok`,
  `status`, `read()`, `json()`, `release()`, and for a watch a `content.readline()` that
  yields one JSON watch event per line and an empty line when `timeout_seconds` pass;
- otherwise: the stored object as a dict, or `kubernetes_asyncio.client.ApiException`
  (404 not found, 409 conflict) as the real client raises.

Objects are kept as plain dicts (model objects sent in, such as KubeSpawner's V1Pod, are
serialised the way the real client serialises them). Nothing is scheduled or run on its
own: the tests play the scheduler and the kubelet with `run_pod`, `add_event` and
`set_node_labels`. Equality label selectors and field selectors only. A test double is
never counted as an end-to-end test.
"""
from __future__ import annotations

import asyncio
import copy
import itertools
import json
import uuid
from typing import Any

from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

_SERIALISER = ApiClient.__new__(ApiClient)  # sanitize_for_serialization needs no connection


def serialise(obj: Any) -> Any:
    """A model object (V1Pod, ...) as the JSON the real client would send."""
    return json.loads(json.dumps(_SERIALISER.sanitize_for_serialization(obj)))


def _matches(obj: dict, label_selector: str = "", field_selector: str = "") -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, (label_selector or "").split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    for term in filter(None, (field_selector or "").split(",")):
        path, _, value = term.partition("=")
        current: Any = obj
        for part in path.split("."):
            current = (current or {}).get(part) if isinstance(current, dict) else None
        if current != value:
            return False
    return True


class _Lines:
    """`response.content` of a watch: readline() gives the next event, b"" at the timeout."""

    def __init__(self, queue: asyncio.Queue, timeout: float | None):
        self.queue = queue
        self.timeout = timeout

    async def readline(self) -> bytes:
        try:
            if self.timeout is None:
                return await self.queue.get()
            return await asyncio.wait_for(self.queue.get(), self.timeout)
        except asyncio.TimeoutError:
            return b""


class FakeResponse:
    """What a `_preload_content=False` call returns (the parts of aiohttp's response used)."""

    def __init__(self, status: int = 200, body: Any = None, lines: _Lines | None = None, on_close=None):
        self.status = status
        self.ok = 200 <= status < 300
        self.reason = "OK" if self.ok else "Error"
        self._body = body
        self.content = lines
        self._on_close = on_close

    async def read(self) -> bytes:
        return json.dumps(self._body).encode()

    async def json(self) -> Any:
        return copy.deepcopy(self._body)

    def release(self) -> None:
        if self._on_close:
            self._on_close()
            self._on_close = None

    def close(self) -> None:
        self.release()


class FakeKubeAPI:
    """Test double of CoreV1Api: pods, events, nodes, config maps, PVCs, namespaces."""

    KINDS = ("pods", "events", "nodes", "configmaps", "persistentvolumeclaims", "namespaces")

    def __init__(self):
        self.objects: dict[str, dict[str, dict]] = {kind: {} for kind in self.KINDS}
        self.calls: list[tuple[str, dict]] = []
        self._version = itertools.count(1)
        self._watchers: list[tuple[str, str | None, str, str, asyncio.Queue]] = []
        self.fail_next: dict[str, ApiException] = {}

    # -- bookkeeping ----------------------------------------------------------------------

    def _key(self, namespace: str | None, name: str) -> str:
        return f"{namespace}/{name}" if namespace else name

    def _stamp(self, obj: dict) -> dict:
        metadata = obj.setdefault("metadata", {})
        metadata["resourceVersion"] = str(next(self._version))
        metadata.setdefault("uid", str(uuid.uuid4()))
        metadata.setdefault("creationTimestamp", "2030-01-01T00:00:00Z")
        return obj

    def _publish(self, kind: str, event_type: str, obj: dict) -> None:
        namespace = (obj.get("metadata") or {}).get("namespace")
        line = json.dumps({"type": event_type, "object": obj}).encode() + b"\n"
        for w_kind, w_namespace, labels, fields, queue in self._watchers:
            if w_kind == kind and (w_namespace is None or w_namespace == namespace) and _matches(obj, labels, fields):
                queue.put_nowait(line)

    def _store(self, kind: str, obj: dict, event_type: str) -> dict:
        obj = self._stamp(copy.deepcopy(obj))
        metadata = obj["metadata"]
        self.objects[kind][self._key(metadata.get("namespace"), metadata["name"])] = obj
        self._publish(kind, event_type, obj)
        return copy.deepcopy(obj)

    def _check_failure(self, method: str) -> None:
        if method in self.fail_next:
            raise self.fail_next.pop(method)

    def _list(self, kind: str, namespace: str | None, *, label_selector="", field_selector="", watch=False,
              timeout_seconds=None, _preload_content=True, **_ignored):
        items = [copy.deepcopy(o) for o in self.objects[kind].values()
                 if (namespace is None or (o.get("metadata") or {}).get("namespace") == namespace)
                 and _matches(o, label_selector, field_selector)]
        if watch:
            queue: asyncio.Queue = asyncio.Queue()
            entry = (kind, namespace, label_selector or "", field_selector or "", queue)
            self._watchers.append(entry)
            return FakeResponse(lines=_Lines(queue, timeout_seconds),
                                on_close=lambda: self._watchers.remove(entry) if entry in self._watchers else None)
        body = {"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": str(next(self._version))},
                "items": items}
        return FakeResponse(body=body) if not _preload_content else body

    def _read(self, kind: str, namespace: str | None, name: str, _preload_content=True):
        obj = self.objects[kind].get(self._key(namespace, name))
        if obj is None:
            if not _preload_content:
                return FakeResponse(status=404, body={"kind": "Status", "code": 404, "message": f"{name} not found"})
            raise ApiException(status=404, reason="Not Found")
        return FakeResponse(body=copy.deepcopy(obj)) if not _preload_content else copy.deepcopy(obj)

    def _create(self, kind: str, namespace: str | None, body: Any) -> dict:
        obj = serialise(body)
        if namespace:
            obj.setdefault("metadata", {})["namespace"] = namespace
        if self._key(namespace, obj["metadata"]["name"]) in self.objects[kind]:
            raise ApiException(status=409, reason="AlreadyExists")
        return self._store(kind, obj, "ADDED")

    def _record(self, method: str, **kwargs) -> None:
        self.calls.append((method, kwargs))
        self._check_failure(method)

    # -- CoreV1Api: list / watch ----------------------------------------------------------------

    async def list_namespaced_pod(self, namespace, **kw):
        self._record("list_namespaced_pod", namespace=namespace, **kw)
        return self._list("pods", namespace, **kw)

    async def list_pod_for_all_namespaces(self, **kw):
        self._record("list_pod_for_all_namespaces", **kw)
        return self._list("pods", None, **kw)

    async def list_namespaced_event(self, namespace, **kw):
        self._record("list_namespaced_event", namespace=namespace, **kw)
        return self._list("events", namespace, **kw)

    async def list_event_for_all_namespaces(self, **kw):
        self._record("list_event_for_all_namespaces", **kw)
        return self._list("events", None, **kw)

    async def list_node(self, **kw):
        self._record("list_node", **kw)
        return self._list("nodes", None, **kw)

    # -- CoreV1Api: objects ---------------------------------------------------------------------

    async def create_namespaced_pod(self, namespace, body, **kw):
        self._record("create_namespaced_pod", namespace=namespace, body=serialise(body))
        pod = serialise(body)
        pod.setdefault("status", {"phase": "Pending"})
        return self._create("pods", namespace, pod)

    async def delete_namespaced_pod(self, name, namespace, body=None, grace_period_seconds=None, **kw):
        self._record("delete_namespaced_pod", name=name, namespace=namespace,
                     grace_period_seconds=grace_period_seconds)
        pod = self.objects["pods"].pop(self._key(namespace, name), None)
        if pod is None:
            raise ApiException(status=404, reason="Not Found")
        self._publish("pods", "DELETED", self._stamp(pod))
        return {"kind": "Status", "status": "Success"}

    async def create_namespaced_persistent_volume_claim(self, namespace, body, **kw):
        self._record("create_namespaced_persistent_volume_claim", namespace=namespace, body=serialise(body))
        return self._create("persistentvolumeclaims", namespace, body)

    async def read_namespaced_persistent_volume_claim(self, name, namespace, **kw):
        self._record("read_namespaced_persistent_volume_claim", name=name, namespace=namespace)
        return self._read("persistentvolumeclaims", namespace, name, kw.get("_preload_content", True))

    async def create_namespace(self, body, **kw):
        self._record("create_namespace", body=serialise(body))
        return self._create("namespaces", None, body)

    async def read_namespaced_config_map(self, name, namespace, **kw):
        self._record("read_namespaced_config_map", name=name, namespace=namespace)
        return self._read("configmaps", namespace, name, kw.get("_preload_content", True))

    async def create_namespaced_config_map(self, namespace, body, **kw):
        self._record("create_namespaced_config_map", namespace=namespace, body=serialise(body))
        return self._create("configmaps", namespace, body)

    async def replace_namespaced_config_map(self, name, namespace, body, **kw):
        self._record("replace_namespaced_config_map", name=name, namespace=namespace, body=serialise(body))
        current = self.objects["configmaps"].get(self._key(namespace, name))
        if current is None:
            raise ApiException(status=404, reason="Not Found")
        sent = serialise(body)
        version = (sent.get("metadata") or {}).get("resourceVersion")
        if version is not None and version != current["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        sent["metadata"]["namespace"] = namespace
        return self._store("configmaps", sent, "MODIFIED")

    async def patch_node(self, name, body, **kw):
        self._record("patch_node", name=name, body=serialise(body))
        node = self.objects["nodes"].get(name)
        if node is None:
            raise ApiException(status=404, reason="Not Found")
        labels = ((serialise(body).get("metadata") or {}).get("labels") or {})
        node = copy.deepcopy(node)
        node["metadata"].setdefault("labels", {}).update(labels)
        return self._store("nodes", node, "MODIFIED")

    # -- what the scheduler, the kubelet and the GPU operator would do (driven by tests) ----------

    def add_node(self, node: dict) -> dict:
        return self._store("nodes", node, "ADDED")

    def set_node_labels(self, name: str, labels: dict[str, str]) -> dict:
        node = copy.deepcopy(self.objects["nodes"][name])
        node["metadata"].setdefault("labels", {}).update(labels)
        return self._store("nodes", node, "MODIFIED")

    def touch_node(self, name: str, heartbeat: str) -> dict:
        """A status-only update (as kubelets send every few seconds)."""
        node = copy.deepcopy(self.objects["nodes"][name])
        node.setdefault("status", {})["conditions"] = [{"type": "Ready", "status": "True",
                                                        "lastHeartbeatTime": heartbeat}]
        return self._store("nodes", node, "MODIFIED")

    def remove_node(self, name: str) -> None:
        node = self.objects["nodes"].pop(name)
        self._publish("nodes", "DELETED", self._stamp(node))

    def pod(self, namespace: str, name: str) -> dict | None:
        obj = self.objects["pods"].get(self._key(namespace, name))
        return copy.deepcopy(obj) if obj else None

    def run_pod(self, namespace: str, name: str, ip: str = "10.1.2.3", node: str = "gpu-node-1") -> dict:
        pod = copy.deepcopy(self.objects["pods"][self._key(namespace, name)])
        pod["spec"]["nodeName"] = node
        pod["status"] = {"phase": "Running", "podIP": ip,
                         "containerStatuses": [{"name": "notebook", "ready": True, "state": {"running": {}}}]}
        return self._store("pods", pod, "MODIFIED")

    def add_event(self, namespace: str, pod_name: str, reason: str, message: str, type_: str = "Warning") -> dict:
        number = next(self._version)
        event = {"apiVersion": "v1", "kind": "Event",
                 "metadata": {"name": f"{pod_name}.{number}", "namespace": namespace},
                 "involvedObject": {"kind": "Pod", "name": pod_name, "namespace": namespace},
                 "reason": reason, "message": message, "type": type_,
                 "lastTimestamp": f"2030-01-01T00:00:{number % 60:02d}Z", "eventTime": None}
        return self._store("events", event, "ADDED")

    def expire_watches(self, kind: str) -> None:
        """What the API server sends when a watch's resourceVersion is too old (410 Gone)."""
        line = json.dumps({"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired",
                                                        "message": "too old resource version"}}).encode() + b"\n"
        for w_kind, _, _, _, queue in self._watchers:
            if w_kind == kind:
                queue.put_nowait(line)

    def watcher_count(self, kind: str) -> int:
        return sum(1 for w in self._watchers if w[0] == kind)
