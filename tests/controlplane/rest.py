"""A small synchronous client of the API server for the harness and its doubles.

The code under test talks to the API server through kubernetes_asyncio (as kubespawner
does); the harness itself is synchronous (pytest fixtures, background threads), so it uses
`requests` with the admin client certificate. `apply` is real server-side apply; paths come
from the server's own discovery documents, so CRDs installed during the session work too.
"""
from __future__ import annotations

import json
import threading
from typing import Any, Iterable, Iterator

import requests


class KubeError(RuntimeError):
    def __init__(self, status: int, body: Any, what: str):
        self.status = status
        self.body = body
        message = body.get("message") if isinstance(body, dict) else str(body)
        super().__init__(f"{what}: HTTP {status} {message}")


class KubeREST:
    def __init__(self, server: str, ca_path: str, cert: tuple[str, str] | None = None, token: str | None = None):
        self.server = server.rstrip("/")
        self.ca_path = ca_path
        self.cert = cert
        self.token = token
        self._local = threading.local()
        self._resources: dict[tuple[str, str], tuple[str, bool]] = {}
        self._lock = threading.Lock()

    @property
    def http(self) -> requests.Session:
        """One requests.Session per thread (a Session is not thread-safe)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            # loopback only: REQUESTS_CA_BUNDLE and proxy settings must not replace the session's CA
            session.trust_env = False
            session.verify = self.ca_path
            if self.cert:
                session.cert = self.cert
            if self.token:
                session.headers["Authorization"] = f"Bearer {self.token}"
        return session

    # -- raw requests -------------------------------------------------------------------

    def request(self, method: str, path: str, *, body: Any = None, params: dict | None = None,
                content_type: str = "application/json", ok: Iterable[int] = (), timeout: float = 30) -> Any:
        data = None
        headers = {}
        if body is not None:
            data = body if isinstance(body, (str, bytes)) else json.dumps(body)
            headers["Content-Type"] = content_type
        response = self.http.request(method, self.server + path, data=data, params=params, headers=headers,
                                     timeout=timeout)
        try:
            payload = response.json()
        except ValueError:
            payload = response.text
        if response.status_code >= 400 and response.status_code not in ok:
            raise KubeError(response.status_code, payload, f"{method} {path}")
        return payload

    def get(self, path: str, **params) -> Any:
        return self.request("GET", path, params=params or None)

    # -- paths from discovery ------------------------------------------------------------------

    def resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) of a kind, from the server's discovery document."""
        key = (api_version, kind)
        with self._lock:
            if key not in self._resources:
                base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
                for item in self.get(base)["resources"]:
                    if "/" not in item["name"]:
                        self._resources[(api_version, item["kind"])] = (item["name"], item["namespaced"])
            if key not in self._resources:
                raise KeyError(f"the API server serves no {kind} in {api_version}")
            return self._resources[key]

    def forget_discovery(self) -> None:
        with self._lock:
            self._resources.clear()

    def path(self, api_version: str, kind: str, name: str | None = None, namespace: str | None = None) -> str:
        plural, namespaced = self.resource(api_version, kind)
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        if namespaced:
            base += f"/namespaces/{namespace or 'default'}"
        base += f"/{plural}"
        return f"{base}/{name}" if name else base

    def path_of(self, obj: dict) -> str:
        metadata = obj.get("metadata") or {}
        return self.path(obj["apiVersion"], obj["kind"], metadata.get("name"), metadata.get("namespace"))

    # -- objects --------------------------------------------------------------------------

    def read(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        found = self.request("GET", self.path(api_version, kind, name, namespace), ok=(404,))
        return None if isinstance(found, dict) and found.get("kind") == "Status" and found.get("code") == 404 \
            else found

    def list(self, api_version: str, kind: str, namespace: str | None = None, **params) -> dict:
        plural, namespaced = self.resource(api_version, kind)
        if namespace is None and namespaced:
            base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            return self.get(f"{base}/{plural}", **params)
        return self.get(self.path(api_version, kind, namespace=namespace), **params)

    def create(self, obj: dict) -> dict:
        metadata = obj.get("metadata") or {}
        return self.request("POST", self.path(obj["apiVersion"], obj["kind"], namespace=metadata.get("namespace")),
                            body=obj)

    def apply(self, obj: dict, manager: str = "astrago-testbed") -> dict:
        """Server-side apply (create or update, conflicts forced to the harness)."""
        return self.request("PATCH", self.path_of(obj), body=obj, content_type="application/apply-patch+yaml",
                            params={"fieldManager": manager, "force": "true"})

    def merge_patch(self, api_version: str, kind: str, name: str, patch: dict, namespace: str | None = None,
                    subresource: str = "") -> dict:
        path = self.path(api_version, kind, name, namespace) + (f"/{subresource}" if subresource else "")
        return self.request("PATCH", path, body=patch, content_type="application/merge-patch+json")

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None,
               propagation: str = "Background") -> Any:
        return self.request("DELETE", self.path(api_version, kind, name, namespace), ok=(404,),
                            body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation})

    # -- watching -------------------------------------------------------------------------------

    def watch(self, path: str, resource_version: str, timeout_seconds: int = 60, stop: threading.Event | None = None,
              **params) -> Iterator[dict]:
        """Watch events from `resource_version` until the server ends the watch (or `stop` is set)."""
        query = {"watch": "true", "resourceVersion": resource_version, "timeoutSeconds": str(timeout_seconds),
                 "allowWatchBookmarks": "true", **params}
        with self.http.get(self.server + path, params=query, stream=True, timeout=timeout_seconds + 30) as response:
            if response.status_code >= 400:
                raise KubeError(response.status_code, response.text, f"watch {path}")
            for line in response.iter_lines():
                if stop is not None and stop.is_set():
                    return
                if line:
                    yield json.loads(line)

    def list_path(self, api_version: str, kind: str) -> str:
        """The cluster-wide list path of a kind (all namespaces for a namespaced one)."""
        plural, _ = self.resource(api_version, kind)
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        return f"{base}/{plural}"
