"""The API areas the service can serve, each a module with `handlers(prefix)` and
its OpenAPI `PATHS` (and optional `SCHEMAS`).

Areas stay separate modules so a deployment can later run them as separate
services (DESIGN.md: the Core / Batch / Monitor split) without rewriting them.
"""
from __future__ import annotations

import importlib

#: area name -> module path; `AstraGoService.enabled_areas` picks among them
AREAS = {
    "core": "astrago.hub.service.root",
    "audit": "astrago.hub.service.audit_api",
    "uploads": "astrago.hub.uploads.api",
    "quota": "astrago.hub.quota.api",
    "monitor": "astrago.hub.monitor.api",  # after quota: it reads the ledger and the inventory
    "jobs": "astrago.hub.jobs.api",
    "fleet": "astrago.hub.fleet.api",
    "teams": "astrago.hub.teams.api",
}


def load(names) -> list:
    modules = []
    for name in names:
        if name not in AREAS:
            raise ValueError(f"unknown API area {name!r}; known: {', '.join(sorted(AREAS))}")
        modules.append(importlib.import_module(AREAS[name]))
    return modules
