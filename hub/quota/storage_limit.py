"""The storage dimension of quotas, for the uploads area (which checks it on its I/O threads)."""
from __future__ import annotations

import time
from urllib.parse import quote

import requests

GIB = 1024 ** 3


def make_storage_limit_lookup(service, ttl_s: float = 60.0):
    """user -> their effective `storage_gib` quota in bytes, or None when no quota sets one.

    Blocking (HTTP to the hub for the user's groups, a read of the quotas): meant for the
    uploads area's worker threads, never the event loop.
    """
    groups_cache: dict[str, tuple[float, list[str]]] = {}

    def groups_of(user: str) -> list[str]:
        hit = groups_cache.get(user)
        if hit and time.monotonic() - hit[0] < ttl_s:
            return hit[1]
        auth = service.hub_auth
        resp = requests.get(auth.api_url.rstrip("/") + f"/users/{quote(user)}",
                            headers={"Authorization": f"token {auth.api_token}"}, timeout=10)
        groups = sorted(resp.json().get("groups", [])) if resp.status_code == 200 else []
        groups_cache[user] = (time.monotonic(), groups)
        return groups

    def lookup(user: str) -> int | None:
        groups = groups_of(user)
        with service.db.transaction() as session:
            limits = service.desk.limits_for(session, user, groups)
        return None if limits.storage_gib is None else int(limits.storage_gib * GIB)

    return lookup
