"""The Area contract: what every area of the service implements, and how areas meet.

An area (quota, jobs, uploads, monitor, fleet, teams) is one `Area` subclass. The
service makes one instance of each enabled area (a traitlets `Configurable` whose
parent is the service, so `c.JobsArea.some_setting` in the service's config file
reaches it), calls `setup(context)` in an order that puts providers before the
areas that need them, collects `routes()`, `schemas()`, `admin_sections()` and
`page_context()`, and runs `background(context)` on the event loop.

Areas never import each other's modules (tests/unit/test_area_imports.py fails on
one). What an area needs from another is an interface of `astrago.hub.service.interfaces`,
provided at setup with `context.provide(Interface, implementation)` and obtained
with `context.need(Interface)` (or `context.want(Interface)` where it is optional).
An area declares what it provides and needs as class attributes, so the service
can order setups and refuse a configuration that lacks a provider, before
anything starts.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, ClassVar, Iterable, TypeVar

from traitlets.config import LoggingConfigurable

I = TypeVar("I")


class ContractError(RuntimeError):
    """The areas as configured cannot work together (a missing provider, a cycle)."""


@dataclass(frozen=True)
class AdminSection:
    """An entry of the admin panel: `admin/<path>` titled `title`, shown to holders of `scope`."""

    path: str
    title: str
    scope: str
    order: int = 100


@dataclass
class AreaContext:
    """What the service hands an area: its database, the hub, and the interface registry.

    `hub_api(method, path, body=None) -> (status, json)` calls JupyterHub's REST API with
    the service's token; `hub_user(name)` reads one user. `settings` is the service itself
    (read-only use: mode, data_dir, prefix, version, and the service-wide traits).
    """

    db: Any
    settings: Any
    hub_api: Callable[..., Awaitable[tuple[int, Any]]]
    hub_user: Callable[[str], Awaitable[dict | None]]
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("astrago.service"))
    _provided: dict[type, list[Any]] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        return self.settings.mode

    @property
    def data_dir(self) -> str:
        return self.settings.data_dir

    @property
    def prefix(self) -> str:
        return self.settings.prefix

    def provide(self, interface: type[I], implementation: I) -> None:
        """Offer `implementation` to the areas that need `interface` (several may provide
        a many-valued interface such as `MetricsSource`; read those with `all`)."""
        self._provided.setdefault(interface, []).append(implementation)

    def want(self, interface: type[I]) -> I | None:
        """The one provider of `interface`, or None when no enabled area provides it."""
        found = self._provided.get(interface, [])
        if len(found) > 1:
            raise ContractError(f"{interface.__name__} has {len(found)} providers; use all() for many-valued ones")
        return found[0] if found else None

    def need(self, interface: type[I]) -> I:
        """The one provider of `interface`; a ContractError names what is missing."""
        found = self.want(interface)
        if found is None:
            raise ContractError(f"no enabled area provides {interface.__name__}")
        return found

    def all(self, interface: type[I]) -> list[I]:
        """Every provider of a many-valued interface, in setup order."""
        return list(self._provided.get(interface, []))


@dataclass(frozen=True)
class Route:
    """One API or page route of an area.

    `template` is the path under the service prefix with OpenAPI-style parameters
    (`api/jobs/{job_id}`); `patterns` gives each parameter's regular expression (default
    `[^/]+`). The tornado rule and the OpenAPI path are both derived from it, so they
    cannot drift apart. `kwargs` go to the handler's `initialize` (areas pass `area=self`).
    """

    template: str
    handler: type
    patterns: dict[str, str] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)
    trailing_slash: bool = False  # also match the template with a "/" appended

    def regex(self, prefix: str) -> str:
        import re

        out, pos = [], 0
        for m in re.finditer(r"\{(\w+)\}", self.template):
            out.append(re.escape(self.template[pos:m.start()]))
            out.append(f"(?P<{m.group(1)}>{self.patterns.get(m.group(1), '[^/]+')})")
            pos = m.end()
        out.append(re.escape(self.template[pos:]))
        return re.escape(prefix) + "".join(out) + ("/?" if self.trailing_slash else "")

    @property
    def openapi_path(self) -> str:
        return "/" + self.template + ("/" if self.trailing_slash else "")


class Area(LoggingConfigurable):
    """Base of every area. Subclasses set `name`, `provides`, `needs` (and `wants`),
    and override the methods they use; every method has a harmless default."""

    #: the name in `AstraGoService.enabled_areas` and in the API's `areas` list
    name: ClassVar[str] = ""
    #: interfaces this area offers at setup
    provides: ClassVar[tuple[type, ...]] = ()
    #: interfaces this area needs at setup (their providers are set up first)
    needs: ClassVar[tuple[type, ...]] = ()
    #: interfaces it uses when present (no ordering, no error when missing)
    wants: ClassVar[tuple[type, ...]] = ()

    def setup(self, context: AreaContext) -> None:
        """Build the area's state (blocking work is fine: the event loop has not started)."""

    def routes(self) -> list[Route]:
        """The area's API and page routes."""
        return []

    def schemas(self) -> dict[str, dict]:
        """JSON Schemas the area's operations refer to as `#/components/schemas/<name>`."""
        return {}

    def admin_sections(self) -> list[AdminSection]:
        """Entries the area adds to the admin panel."""
        return []

    def page_context(self) -> list[Callable[[Any], Awaitable[dict]]]:
        """Coroutines `(handler) -> dict` whose results every page's template gets
        (e.g. the monitor's idle-GPU banner)."""
        return []

    def background(self, context: AreaContext) -> list[Awaitable]:
        """Coroutines the service runs on its event loop until it stops."""
        return []

    async def stop(self) -> None:
        """Called once when the service stops, after the background tasks are cancelled."""


def setup_order(areas: Iterable[Area]) -> list[Area]:
    """Areas ordered so every provider comes before the areas that need its interfaces.

    Raises ContractError for an interface nobody provides or a cycle of needs.
    """
    areas = list(areas)
    providers: dict[type, list[Area]] = {}
    for area in areas:
        for iface in area.provides:
            providers.setdefault(iface, []).append(area)
    for area in areas:
        for iface in area.needs:
            if iface not in providers:
                raise ContractError(f"the {area.name} area needs {iface.__name__}, which no enabled area provides; "
                                    f"enable its provider or disable {area.name}")
    ordered: list[Area] = []
    visiting: set[int] = set()

    def visit(area: Area, chain: tuple[str, ...]) -> None:
        if area in ordered:
            return
        if id(area) in visiting:
            raise ContractError("areas need each other in a cycle: " + " -> ".join(chain + (area.name,)))
        visiting.add(id(area))
        for iface in area.needs:
            for provider in providers[iface]:
                if provider is not area:
                    visit(provider, chain + (area.name,))
        visiting.discard(id(area))
        ordered.append(area)

    for area in areas:
        visit(area, ())
    return ordered
