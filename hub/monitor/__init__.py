"""Monitoring: GPU and slice metrics, dashboards, alerts and idle-GPU reclaim.

- `area`: the `MonitorArea` (the service's contract): what it wants of other areas, its routes;
- `collectors/`: where readings come from (NVML on one machine, DCGM through Prometheus in a
  cluster, a simulated source for simulated inventories, JupyterHub's API for servers);
- `snapshot`: the ledger, the device layout and the readings joined into one view (pure);
- `families` + `exposition`: the view as prometheus_client metric families, kept per round and
  rendered only where they changed; the service's one registry as the `/metrics` document;
- `monitor`: the rounds (collect, read, join, history, reclaim, families);
- `history`: bounded in-memory time series for the dashboards;
- `reclaim/`: the idle-GPU rules (pure, on any clock) and their actions (warn, stop, release);
- `api` + `pages` + `views` + `schemas`: the area's routes (metrics, JSON, dashboards).

A failing collector degrades its own panel: the service and every other panel keep working.
"""
