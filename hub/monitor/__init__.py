"""Monitoring: GPU and slice metrics, dashboards, alerts and idle-GPU reclaim.

- `collectors/`: where readings come from (NVML on one machine, DCGM through Prometheus in a
  cluster, a simulated source for simulated inventories, JupyterHub's API for servers);
- `attribution`: readings -> the allocation (user, workspace or job) holding each slice (pure);
- `snapshot` + `exposition`: the `/services/astrago/metrics` document (render is pure and fast);
- `history`: bounded in-memory time series for the dashboards;
- `reclaim/`: the idle-GPU rules (pure, on any clock) and their actions (warn, stop, release);
- `api` + `pages`: the area's routes (metrics, JSON, dashboards).

A failing collector degrades its own panel: the service and every other panel keep working.
"""
