"""The storage dimension of quotas: a user's (the StorageLimits interface, for the uploads area,
which asks on its I/O threads) and a team's (TeamStorageLimits: a team is a hub group, so its
storage is its group quota's `storage_gib`)."""
from __future__ import annotations

import asyncio
import time

from sqlalchemy import select

from .limits import QuotaLimits
from .models import Quota

GIB = 1024 ** 3


class QuotaStorageLimits:
    """user -> their effective `storage_gib` quota in bytes, or None when no quota sets one.

    Blocking (the hub is asked for the user's groups on the service's event loop, the quotas
    read from the database): for worker threads, never the event loop itself. A user's groups
    are remembered `ttl_s` seconds."""

    def __init__(self, db, hub_user, desk, ttl_s: float = 60.0, timeout_s: float = 10.0):
        self.db = db
        self.hub_user = hub_user  # async (name) -> the hub's user model or None
        self.desk = desk
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.loop: asyncio.AbstractEventLoop | None = None  # the service's, once it runs
        self._groups: dict[str, tuple[float, list[str]]] = {}

    def groups_of(self, user: str) -> list[str]:
        hit = self._groups.get(user)
        if hit and time.monotonic() - hit[0] < self.ttl_s:
            return hit[1]
        if self.loop is None:
            raise RuntimeError("the service's event loop is not running yet: the hub cannot be asked")
        model = asyncio.run_coroutine_threadsafe(self.hub_user(user), self.loop).result(self.timeout_s)
        groups = sorted(model.get("groups", [])) if model else []
        self._groups[user] = (time.monotonic(), groups)
        return groups

    def storage_limit_bytes(self, user: str) -> int | None:
        groups = self.groups_of(user)
        with self.db.transaction() as session:
            limits = self.desk.limits_for(session, user, groups)
        return None if limits.storage_gib is None else int(limits.storage_gib * GIB)

    def team_storage_limit_bytes(self, team: str) -> int | None:
        """The team's group quota `storage_gib` in bytes; None when its group has no quota or the
        quota sets no storage (the team's space then has no limit). Blocking."""
        with self.db.transaction() as session:
            row = session.scalars(select(Quota).where(Quota.subject_kind == "group",
                                                      Quota.subject_name == team)).first()
            limits = QuotaLimits.from_dict(row.limits) if row is not None else None
        return None if limits is None or limits.storage_gib is None else int(limits.storage_gib * GIB)
