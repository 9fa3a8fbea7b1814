"""The few Kubernetes calls MIG re-cutting makes, over a CoreV1Api.

`core_v1` is a kubernetes_asyncio `CoreV1Api` in a deployment (made from the hub pod's
service account, see `spawners.inventory.kube_watch.core_v1_api`) and the Kubernetes API
test double in the tests. Nothing else in the fleet area talks to Kubernetes.
"""
from __future__ import annotations

import json

from kubernetes_asyncio.client.exceptions import ApiException

from astrago.spawners.kube.operator_config import (
    MIG_PARTED_CONFIG_MAP,
    OPERATOR_NAMESPACE,
    mig_parted_config_map,
    read_mig_configs,
)


class KubeCallFailed(RuntimeError):
    """Kubernetes refused or did not answer; the message says which call and why."""


class FleetKubeClient:
    def __init__(self, core_v1, namespace: str = OPERATOR_NAMESPACE, config_map: str = MIG_PARTED_CONFIG_MAP,
                 request_timeout: float = 30):
        self.core_v1 = core_v1
        self.namespace = namespace
        self.config_map = config_map
        self.request_timeout = request_timeout

    async def read_config_map(self) -> dict | None:
        """The mig-parted ConfigMap as a dict, None when it does not exist yet."""
        try:
            response = await self.core_v1.read_namespaced_config_map(
                self.config_map, self.namespace, _preload_content=False, _request_timeout=self.request_timeout)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise KubeCallFailed(f"reading ConfigMap {self.namespace}/{self.config_map}: {exc.reason}") from None
        try:
            if response.status == 404:
                return None
            body = json.loads(await response.read())
        finally:
            response.release()
        if response.status >= 400:
            raise KubeCallFailed(f"reading ConfigMap {self.namespace}/{self.config_map}: HTTP {response.status} "
                                 f"{body.get('message', '')}")
        return body

    async def write_mig_configs(self, configs: dict) -> dict:
        """Create or replace the mig-parted ConfigMap with `configs`; returns the object written.

        A replace carries the resourceVersion read, so a concurrent writer makes it fail (409)
        rather than be overwritten silently.
        """
        current = await self.read_config_map()
        body = mig_parted_config_map(configs, self.namespace, self.config_map)
        try:
            if current is None:
                await self.core_v1.create_namespaced_config_map(self.namespace, body,
                                                                _request_timeout=self.request_timeout)
            else:
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                await self.core_v1.replace_namespaced_config_map(self.config_map, self.namespace, body,
                                                                 _request_timeout=self.request_timeout)
        except ApiException as exc:
            raise KubeCallFailed(f"writing ConfigMap {self.namespace}/{self.config_map}: "
                                 f"HTTP {exc.status} {exc.reason}") from None
        return body

    async def current_mig_configs(self) -> dict:
        return read_mig_configs(await self.read_config_map())

    async def label_node(self, node: str, labels: dict[str, str]) -> dict:
        """Set labels on a Node (a strategic merge patch of metadata.labels); returns the patch."""
        patch = {"metadata": {"labels": dict(labels)}}
        try:
            await self.core_v1.patch_node(node, patch, _request_timeout=self.request_timeout)
        except ApiException as exc:
            raise KubeCallFailed(f"labelling node {node}: HTTP {exc.status} {exc.reason}") from None
        return patch
