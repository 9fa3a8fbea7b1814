"""Storage limits. Provided by the quota area; used by uploads (and teams for team spaces)."""
from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class StorageLimits(Protocol):
    def storage_limit_bytes(self, user: str) -> int | None:
        """The user's effective storage quota in bytes, None when no quota sets one.

        Blocking (it may ask the hub for the user's groups and read the quotas): call it from
        worker threads, never the event loop."""
