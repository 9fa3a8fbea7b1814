"""Check the NVML collector on a real GPU: readings rise under load and name the right process.

    python -m astrago.hub.monitor.gpu_check [--seconds 20] [--record readings.json] [--json]

Reads the host's GPUs with the collector's own reader while idle, then while a CUDA process
(PyTorch matrix products, started here as a child) loads GPU 0, and reports: utilisation and
memory before and under load, and whether the load's pid is among the device's processes with
its memory and SM share. `--record` also saves the NVML answers of both phases in the form
tests/monitoring/nvml_util_replay.py replays (rounds of `record_nvml_utilisation`).

Needs an NVIDIA GPU, its driver and PyTorch with CUDA; exits 2 when there is none.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

LOAD = r"""
import sys, time, torch
x = torch.randn(8192, 8192, device="cuda:0")
print("ready", flush=True)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    y = x @ x
    torch.cuda.synchronize()
"""


def _summary(readings) -> list[dict]:
    return [{"uuid": r.uuid, "kind": r.kind, "index": r.gpu_index, "profile": r.profile,
             "utilization": r.utilization, "memory_used_bytes": r.memory_used_bytes,
             "memory_total_bytes": r.memory_total_bytes,
             "processes": [{"pid": p.pid, "memory_used_bytes": p.memory_used_bytes,
                            "sm_utilization": p.sm_utilization, "user": p.user} for p in r.processes]}
            for r in readings]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--record", default="")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    from .collectors.nvml import NvmlUnavailable, NvmlUtilisationReader, record_nvml_utilisation

    reader = NvmlUtilisationReader(os.uname().nodename, user_of_pid=lambda pid: None)
    try:
        idle = reader.read()
    except NvmlUnavailable as exc:
        print(f"no GPU to check: {exc}", file=sys.stderr)
        return 2
    rounds = [record_nvml_utilisation()] if args.record else []
    time.sleep(1.0)
    idle = reader.read()  # the second round: MIG instances have their GPM figure now
    load = subprocess.Popen([sys.executable, "-c", LOAD, str(args.seconds)], stdout=subprocess.PIPE, text=True)
    try:
        if load.stdout.readline().strip() != "ready":
            print("the CUDA load did not start (is PyTorch with CUDA installed?)", file=sys.stderr)
            return 2
        time.sleep(min(5.0, args.seconds / 3))
        busy = reader.read()
        time.sleep(1.0)
        busy = reader.read()
        if args.record:
            rounds.append(record_nvml_utilisation())
    finally:
        load.wait()
        reader.close()
    gpu0_idle = next((r for r in idle if r.kind == "gpu" and r.gpu_index == 0), None)
    gpu0_busy = next((r for r in busy if r.kind == "gpu" and r.gpu_index == 0), None)
    mine = [pr for pr in (gpu0_busy.processes if gpu0_busy else []) if pr.pid == load.pid]
    result = {
        "load_pid": load.pid,
        "gpu0_utilization": {"idle": gpu0_idle and gpu0_idle.utilization, "busy": gpu0_busy and gpu0_busy.utilization},
        "gpu0_memory_used_bytes": {"idle": gpu0_idle and gpu0_idle.memory_used_bytes,
                                   "busy": gpu0_busy and gpu0_busy.memory_used_bytes},
        "load_process_seen": bool(mine),
        "load_process": _summary([gpu0_busy])[0]["processes"] if gpu0_busy else [],
        "checks": {
            "utilization_rose": bool(gpu0_busy and gpu0_idle and (gpu0_busy.utilization or 0)
                                     > (gpu0_idle.utilization or 0) + 0.3),
            "memory_rose": bool(gpu0_busy and gpu0_idle and (gpu0_busy.memory_used_bytes or 0)
                                > (gpu0_idle.memory_used_bytes or 0) + 256 * 2 ** 20),
            "attributed_to_the_load": bool(mine and (mine[0].memory_used_bytes or 0) > 0),
        },
        "idle": _summary(idle), "busy": _summary(busy),
    }
    if args.record:
        with open(args.record, "w") as fh:
            json.dump({"provenance": f"Recorded on {os.uname().nodename} by astrago.hub.monitor.gpu_check.",
                       "rounds": rounds}, fh, indent=2)
    print(json.dumps(result, indent=2) if args.json else json.dumps(result["checks"]))
    return 0 if all(result["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
