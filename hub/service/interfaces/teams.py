"""Datasets and team spaces. `DatasetCatalog` is provided by the teams area and used by jobs;
`DatasetUsage` is provided by jobs and used by teams; `TeamStorageLimits` is provided by quota
(a team's group quota) and used by teams (without a provider a team's space has no limit)."""
from __future__ import annotations

from typing import Awaitable, Protocol, Sequence, runtime_checkable


@runtime_checkable
class DatasetCatalog(Protocol):
    async def resolve(self, user: str, groups: Sequence[str], refs: Sequence[str]) -> dict[str, str]:
        """Dataset refs (`["imagenet-mini:2", "ml/tokens:1"]`) -> the job's environment
        (`{"ASTRAGO_DATASET_IMAGENET_MINI": "/…/2", ...}`). Runs on the event loop.

        Raises LookupError (unknown or not visible to the user) or ValueError (a bad ref),
        with words for people."""


@runtime_checkable
class DatasetUsage(Protocol):
    def active_jobs_using(self, paths: Sequence[str]) -> Awaitable[list[dict]]:
        """The jobs that have not ended and attach one of these dataset paths:
        `[{"id", "owner", "status"}]` (awaitable, from the event loop)."""


@runtime_checkable
class TeamStorageLimits(Protocol):
    def team_storage_limit_bytes(self, team: str) -> int | None:
        """The team's storage quota in bytes, None when none is set. Blocking: call it from a
        worker thread."""
