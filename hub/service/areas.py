"""The areas the service can serve: name -> the `contract.Area` class that implements it.

The service is the composition root: the only place that names every area. Areas
themselves never import one another (see contract.py); a deployment could run some of
them as separate services (DESIGN.md: the Core / Batch / Monitor split) without rewriting
them.
"""
from __future__ import annotations

import importlib

#: area name -> "module:AreaClass"; `AstraGoService.enabled_areas` picks among them
AREAS = {
    "core": "astrago.hub.service.root:CoreArea",
    "audit": "astrago.hub.service.audit_api:AuditArea",
    "uploads": "astrago.hub.uploads.area:UploadsArea",
    "quota": "astrago.hub.quota.area:QuotaArea",
    "monitor": "astrago.hub.monitor.area:MonitorArea",
    "jobs": "astrago.hub.jobs.area:JobsArea",
    "fleet": "astrago.hub.fleet.area:FleetArea",
    "teams": "astrago.hub.teams.area:TeamsArea",
    "environments": "astrago.hub.environments.area:EnvironmentsArea",
}


def load(names, parent=None) -> list:
    """One instance per enabled area (Area classes get the service as their traitlets parent)."""
    loaded = []
    for name in names:
        if name not in AREAS:
            raise ValueError(f"unknown API area {name!r}; known: {', '.join(sorted(AREAS))}")
        module_path, class_name = AREAS[name].split(":")
        loaded.append(getattr(importlib.import_module(module_path), class_name)(parent=parent))
    return loaded
