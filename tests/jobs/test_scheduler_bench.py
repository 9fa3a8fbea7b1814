"""bench/scheduler.py runs and reports the fields docs/benchmarks-jobs.md quotes (a small run)."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_scheduler_benchmark_reports_its_fields():
    r = subprocess.run([sys.executable, "-m", "bench.scheduler", "--json", "--cycles", "5", "--pending", "2000",
                        "--day-hours", "2", "--service-cycles", "2"], capture_output=True, text=True, cwd=REPO,
                       timeout=240)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for key in ("cycle_ms_p50", "cycle_ms_p99", "fifo_cycle_ms_p50", "max_fair_share_deviation",
                "admitted_per_second", "service_cycle_ms_p50"):
        assert isinstance(out[key], (int, float)), key
    assert len(out["groups"]) == 20 and out["gpus"] == 1000
    assert 0 <= out["max_fair_share_deviation"] <= 1  # a 2-hour run says nothing about fairness: see the docs
