"""The catalogue of environments (frameworks) users' servers and jobs run in.

Provided by the environments area; used by the jobs area (a job spec's `environment`), and
over HTTP by the spawners (they never import hub/). Lookups are answered from the area's
memory, so they are plain calls, safe on the event loop.

An environment is either a Python environment on this machine (`kind` "python": a venv
layered on the shared user environment; `prefix` is where it lives) or a container image
(`kind` "image", cluster mode). `base` is always there: the shared user environment in
embedded mode, the deployment's own image in a cluster.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

#: the name of the environment every user has: the shared user environment / the deployment's image
BASE = "base"


@dataclass(frozen=True)
class EnvironmentRecord:
    name: str
    kind: str  # "python" | "image"
    status: str  # "queued" | "building" | "ready" | "failed"
    teams: tuple[str, ...] = ()  # empty: everyone
    description: str = ""
    prefix: str | None = None  # kind "python": the environment's sys.prefix
    image: str | None = None  # kind "image": what the pod runs (registry prefix applied); None: the deployment's
    pull_policy: str | None = None  # kind "image": Always | IfNotPresent | Never

    @property
    def python(self) -> str | None:
        """The interpreter of a Python environment (None for an image)."""
        return posixpath.join(self.prefix, "bin", "python") if self.prefix else None

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    def allows(self, groups: Sequence[str]) -> bool:
        """Whether a member of `groups` may use it (an environment without teams is everyone's)."""
        return not self.teams or bool(set(self.teams) & set(groups))


class EnvironmentRefused(Exception):
    """An environment a user may not use now; `kind` is a problem type, the message is for people."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@runtime_checkable
class EnvironmentCatalog(Protocol):
    def environment(self, name: str) -> EnvironmentRecord | None:
        """The environment called `name` in any status, None when there is none."""

    def allowed_for(self, user: str, groups: Sequence[str]) -> list[EnvironmentRecord]:
        """The ready environments a user in `groups` may choose, `base` first."""

    def usable_by(self, name: str | None, user: str, groups: Sequence[str]) -> EnvironmentRecord:
        """The environment `name` (None or "": `base`) when the user may run in it now; raises
        EnvironmentRefused (not-found, forbidden, conflict while it builds or after it failed)."""
