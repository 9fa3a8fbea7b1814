"""A real Prometheus scrapes the real service; PromQL, the Grafana panels and the alert rules run on it.

The DCGM exporter is the one stand-in: a recorded exporter document (fixtures/dcgm_exporter.prom)
served over HTTP, scraped by the same Prometheus, and read back by AstraGo's cluster collector.
"""
import asyncio
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from astrago.hub.monitor.collectors.prometheus import query_prometheus, readings_from_dcgm
from promkit import PROMETHEUS, PROMTOOL, RunningPrometheus, StaticExposition
from support.fixtures import require
from support.platform import api_token, free_port

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"
GRAFANA = sorted((REPO / "config" / "grafana").glob("*.json"))
ALERTS = REPO / "config" / "prometheus" / "alerts.yml"


@pytest.fixture(scope="module")
def prometheus(gpu_platform):
    require(Path(PROMETHEUS).exists(), "Prometheus (Debian package prometheus)")
    work = Path(tempfile.mkdtemp(prefix="astrago-prom-"))
    token = api_token(gpu_platform.p, gpu_platform.admin_session, "admin",
                      scopes=["custom:astrago:metrics:read", "read:metrics", "access:services!service=astrago"])
    shutil.copy(ALERTS, work / "alerts.yml")
    dcgm = StaticExposition((FIXTURES / "dcgm_exporter.prom").read_text())
    target = f"127.0.0.1:{gpu_platform.p.port}"
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(work / "alerts.yml")],
        "scrape_configs": [
            {"job_name": "astrago", "metrics_path": "/services/astrago/metrics",
             # JupyterHub's own scheme: `Authorization: token <t>`
             "authorization": {"type": "token", "credentials": token}, "static_configs": [{"targets": [target]}]},
            {"job_name": "jupyterhub", "metrics_path": "/hub/metrics",
             "authorization": {"credentials": token}, "static_configs": [{"targets": [target]}]},
            {"job_name": "dcgm-exporter", "static_configs": [{"targets": [f"127.0.0.1:{dcgm.port}"]}]},
        ],
    }
    prom = RunningPrometheus(work, free_port())
    prom.start(config)
    yield prom
    prom.stop()
    dcgm.close()
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def busy_user(gpu_platform):
    """A user with a server on a 2g.20gb MIG slice at 63% (simulated readings), sampled."""
    u = gpu_platform.user_with_server("promuser", "2g.20gb")
    gpu_platform.set_utilisation(u["devices"][0], 63, memory_mib=20480)
    gpu_platform.round()
    return u


def test_prometheus_scrapes_the_service_and_the_hub_with_jupyterhub_tokens(prometheus):
    up = prometheus.wait_for('up{job=~"astrago|jupyterhub|dcgm-exporter"} == 1', lambda r: len(r) == 3)
    assert {r["metric"]["job"] for r in up} == {"astrago", "jupyterhub", "dcgm-exporter"}
    [info] = prometheus.wait_for("astrago_build_info")
    assert info["metric"]["mode"] == "embedded"
    assert prometheus.wait_for("jupyterhub_running_servers")  # the hub's own /hub/metrics (read:metrics)


def test_promql_returns_the_series_of_the_slice_its_holder_and_the_fleet(prometheus, busy_user, gpu_platform):
    name, device = busy_user["name"], busy_user["devices"][0]
    [allocated] = prometheus.wait_for(f'astrago_slice_allocated{{user="{name}"}} == 1')
    m = allocated["metric"]
    assert (m["slice"], m["profile"], m["kind"], m["owner_kind"], m["owner"], m["node"]) == (
        device, "2g.20gb", "mig", "workspace", f"{name}/", "demo")
    # the round that read 63% came after the user's first scrapes (at the default 40%): wait for it
    [util] = prometheus.wait_for(f'astrago_slice_utilization_ratio{{user="{name}"}} == 0.63')
    [mem] = prometheus.wait_for(f'astrago_slice_memory_used_bytes{{user="{name}"}}')
    assert float(mem["value"][1]) == 20480 * 2 ** 20
    [units] = prometheus.wait_for(f'astrago_user_gpu_units{{user="{name}"}}')
    assert float(units["value"][1]) == pytest.approx(2 / 7, abs=1e-6)
    [busy] = prometheus.wait_for(f'astrago_user_busy_gpu_units{{user="{name}"}}')
    assert float(busy["value"][1]) == pytest.approx(0.63 * 2 / 7, abs=1e-5)
    [capacity] = prometheus.query("astrago_capacity_gpu_units")
    assert float(capacity["value"][1]) == 3.0
    assert len(prometheus.query('astrago_gpu_info{node="demo"}')) == 3
    assert len(prometheus.query('astrago_slice_allocated{kind="mig"}')) == 4 + 7
    by_slice = {r["metric"]["slice"]: float(r["value"][1]) for r in
                prometheus.wait_for('sum by (slice) (astrago_allocations{owner_kind="workspace"})')}
    assert by_slice.get("2g.20gb", 0) >= 1
    assert prometheus.query('astrago_collector_up{collector="simulated"} == 1')
    assert prometheus.query('astrago_collector_up{collector="hub"} == 1')
    assert prometheus.wait_for('astrago_hub_servers{state="ready"} >= 1')
    assert prometheus.query("astrago_upload_bytes_received_total")  # the uploads area's registry, exposed here
    assert prometheus.query("astrago_reclaim_dry_run == 1")
    # bounded label sets: one series per slice for each per-slice metric
    assert len(prometheus.query("astrago_slice_allocated")) == len(prometheus.query("astrago_slice_memory_total_bytes"))


def test_the_cluster_collector_reads_dcgm_back_through_prometheus(prometheus):
    prometheus.wait_for("DCGM_FI_PROF_GR_ENGINE_ACTIVE", lambda r: len(r) == 3)
    prometheus.wait_for("kube_pod_labels", lambda r: len(r) == 2)
    results = asyncio.run(query_prometheus(prometheus.url))
    readings = {r.uuid: r for r in readings_from_dcgm(results)}
    whole = readings["GPU-11111111-2222-3333-4444-555555555555"]
    assert (whole.kind, whole.utilization, whole.allocation_hint) == ("gpu", 0.64, "0b1c2d3e-0000-4000-8000-00000000a11c")
    mig = readings["GPU-66666666-7777-8888-9999-000000000000/gi2"]
    assert (mig.kind, mig.profile, mig.utilization, mig.allocation_hint) == (
        "mig", "3g.40gb", 0.81, "0b1c2d3e-0000-4000-8000-0000000000b0")
    assert mig.memory_used_bytes == 20480 * 2 ** 20 and mig.memory_total_bytes == 40960 * 2 ** 20
    idle = readings["GPU-66666666-7777-8888-9999-000000000000/gi9"]
    assert idle.utilization == pytest.approx(0.004) and idle.allocation_hint is None


def _grafana_queries():
    for path in GRAFANA:
        board = json.loads(path.read_text())
        for var in board["templating"]["list"]:
            if var["type"] == "query":
                yield path.name, f"variable {var['name']}", var["query"]["query"]
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                yield path.name, panel["title"], target["expr"]


def _concrete(expr: str) -> str:
    """A Grafana expression as Grafana would send it: variables and built-ins filled in."""
    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "15s").replace("$__range", "1h")
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)


def _label_values(query: str):
    m = re.fullmatch(r"label_values\((?:(.*),\s*)?(\w+)\)", query)
    return m.group(1), m.group(2)


def test_every_grafana_panel_query_is_accepted_and_the_main_ones_have_data(prometheus, busy_user):
    assert {p.name for p in GRAFANA} == {"fleet.json", "user.json", "slice.json"}
    prometheus.wait_for(f'astrago_slice_utilization_ratio{{user="{busy_user["name"]}"}} == 0.63')
    time.sleep(2)  # a few scrapes, for the range functions
    failures, empty = [], []
    for board, title, expr in _grafana_queries():
        if expr.startswith("label_values("):
            selector, label = _label_values(expr)
            data = prometheus.api("series", **{"match[]": _concrete(selector)}) if selector else None
            if selector and not any(label in s for s in data):
                empty.append((board, title, expr))
            continue
        result = prometheus.check(_concrete(expr))
        if result["status"] != "success":
            failures.append((board, title, expr, result["error"]))
        elif result["results"] == 0:
            empty.append((board, title, expr))
    assert failures == []
    # empty is legitimate only where nothing of the kind exists here (jobs area, queue, idle, kube)
    allowed_empty = ("astrago_job", "astrago_jobs", "astrago_user_jobs", "astrago_queue_length", "idle_seconds",
                     "astrago_user_quota", "kube_", "astrago_gpu_utilization_ratio", "astrago_gpu_memory_used")
    unexpected = [e for e in empty if not any(k in e[2] for k in allowed_empty)]
    assert unexpected == []


def test_alert_rules_pass_promtool_load_into_prometheus_and_each_expression_runs(prometheus):
    require(Path(PROMTOOL).exists(), "promtool (Debian package prometheus)")
    out = subprocess.run([PROMTOOL, "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    deadline = time.monotonic() + 30
    while True:
        groups = prometheus.api("rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        if rules and all(r.get("health") == "ok" for r in rules) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    names = {r["name"] for r in rules}
    assert {"AstraGoServiceDown", "AstraGoGpuIdle", "AstraGoQuotaNearLimit", "AstraGoGpuGone",
            "AstraGoCollectorFailing"} <= names
    assert [(r["name"], r.get("lastError")) for r in rules if r.get("health") != "ok"] == []
    for r in rules:
        assert prometheus.check(r["query"])["status"] == "success", r["name"]
    firing = {a["labels"]["alertname"] for a in prometheus.api("alerts")["alerts"]}
    assert "AstraGoServiceDown" not in firing and "AstraGoGpuGone" not in firing
