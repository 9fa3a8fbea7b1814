"""Settings of the monitoring area (traitlets; `c.MonitorConfig.<setting>` in the service's config file).

Deployment settings live here (where readings come from, how often); the reclaim
*policy* lives in the database and is changed by administrators through the API or the
"Idle GPUs" page — these traits give only its defaults. $ASTRAGO_MONITOR_INTERVAL,
$ASTRAGO_PROMETHEUS_URL and $ASTRAGO_PROMETHEUS_TOKEN set the traits of the same meaning
(astrago.hub.service.environment).
"""
from __future__ import annotations

from pathlib import Path

from traitlets import Any, Bool, Float, Integer, List, Unicode, default, validate
from traitlets.config import Configurable


class MonitorConfig(Configurable):
    """Its parent is the monitor area, whose parent is the service."""

    sample_interval = Float(30.0, config=True, help="Seconds between two rounds of the collectors (and of the "
                            "idle-GPU rules); at least 1. The metrics document is that of the last round.")

    @validate("sample_interval")
    def _at_least_a_second(self, proposal):
        return max(1.0, proposal["value"])

    history_points = Integer(720, config=True, help="Points kept per time series for the dashboards "
                             "(720 at 30 s = the last 6 hours). Memory: about 8 bytes per point and series.")

    collectors = List(Unicode(), config=True, help="Collectors to run: nvml, prometheus, simulated, hub. "
                      "Default (empty): hub, plus simulated for a static inventory, prometheus when "
                      "prometheus_url is set (cluster), else nvml.")

    collector_timeout = Float(10.0, config=True, help="Seconds a collector round may take before it counts "
                              "as failed (its panel shows the error; the others carry on).")

    prometheus_url = Unicode("", config=True, help="Prometheus that scrapes NVIDIA's DCGM exporter (cluster mode).")

    prometheus_token = Unicode("", config=True, help="Bearer token for prometheus_url, if it needs one.")

    simulated_load_file = Unicode(config=True, help="Readings of simulated GPUs (static inventory only): "
                                  "a JSON file of utilisation and memory per device UUID. Default: "
                                  "<data dir>/simulated-gpu-load.json.")

    @default("simulated_load_file")
    def _default_simulated_load_file(self):
        return str(Path(_data_dir(self)) / "simulated-gpu-load.json")

    system_user_prefix = Unicode("astrago-", config=True,
                                 help="Prefix of users' system accounts: a GPU process of astrago-alice is alice's.")

    # -- defaults of the reclaim policy (the live policy is in the database) --

    reclaim_enabled = Bool(True, config=True, help="Default: evaluate the idle-GPU rules.")
    reclaim_dry_run = Bool(True, config=True, help="Default: dry run (audit what would happen, stop nothing). "
                           "Administrators turn it off on the Idle GPUs page.")
    idle_threshold_percent = Float(5.0, config=True, help="Default: a slice under this % busy counts as idle.")
    idle_hours = Float(4.0, config=True, help="Default: hours a slice stays idle before its user is warned.")
    grace_hours = Float(1.0, config=True, help="Default: hours between the warning and the stop.")
    exempt_groups = List(Unicode(), config=True, help="Default: groups whose members' workspaces are never reclaimed.")
    webhook_url = Unicode("", config=True, help="Default: URL that receives a JSON POST for every warning, "
                          "withdrawal and stop (a notification hook: chat, mail gateway).")
    notify_hook = Any(None, allow_none=True, config=True,
                      help="Also called with every real warning, withdrawal and stop: a callable taking the "
                      "event dict (may be async), or its import path 'module:function'.")


def _data_dir(configurable) -> str:
    """The service's data directory: the first parent that has one (the area's parent, the service)."""
    node = configurable.parent
    while node is not None:
        if getattr(node, "data_dir", None):
            return node.data_dir
        node = getattr(node, "parent", None)
    return str(Path.cwd())
