"""The storage dimension of quotas (the StorageLimits interface), for the uploads area, which
asks on its I/O threads."""
from __future__ import annotations

import time
from urllib.parse import quote

import requests

GIB = 1024 ** 3


class QuotaStorageLimits:
    """user -> their effective `storage_gib` quota in bytes, or None when no quota sets one.

    Blocking (HTTP to the hub for the user's groups, a read of the quotas): for worker
    threads, never the event loop. A user's groups are remembered `ttl_s` seconds."""

    def __init__(self, db, hub_auth, desk, ttl_s: float = 60.0):
        self.db = db
        self.hub_auth = hub_auth
        self.desk = desk
        self.ttl_s = ttl_s
        self._groups: dict[str, tuple[float, list[str]]] = {}

    def groups_of(self, user: str) -> list[str]:
        hit = self._groups.get(user)
        if hit and time.monotonic() - hit[0] < self.ttl_s:
            return hit[1]
        auth = self.hub_auth
        resp = requests.get(auth.api_url.rstrip("/") + f"/users/{quote(user)}",
                            headers={"Authorization": f"token {auth.api_token}"}, timeout=10)
        groups = sorted(resp.json().get("groups", [])) if resp.status_code == 200 else []
        self._groups[user] = (time.monotonic(), groups)
        return groups

    def storage_limit_bytes(self, user: str) -> int | None:
        groups = self.groups_of(user)
        with self.db.transaction() as session:
            limits = self.desk.limits_for(session, user, groups)
        return None if limits.storage_gib is None else int(limits.storage_gib * GIB)
