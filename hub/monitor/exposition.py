"""The `/services/astrago/metrics` document (Prometheus text format 0.0.4), rendered from a view.

`render(...)` is pure and written for speed: a scrape of 1,000 users, 2,000 slices and 500 jobs
is a few tens of thousands of lines (bench/metrics.py). Names are `astrago_*` in base units
(`_bytes`, `_seconds`, `_ratio` in [0, 1]); label sets are bounded by what exists — GPUs and
slices by the inventory, users by who holds or held GPU time in the quota period, jobs by the
running ones. Unknown values (a MIG slice without GPM, a failing collector) are absent series,
never zero. Never a `job` or `instance` label: Prometheus sets those itself.
"""
from __future__ import annotations

from typing import Iterable

from .jobs_adapter import DURATION_BUCKETS, JobsSnapshot
from .readings import CollectorResult
from .snapshot import FleetView

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})


def _esc(value) -> str:
    s = str(value)
    if "\\" in s or '"' in s or "\n" in s:
        return s.translate(_ESCAPES)
    return s


def _num(v) -> str:
    if v is True:
        return "1"
    if v is False:
        return "0"
    if isinstance(v, int):
        return str(v)
    if v != v:
        return "NaN"
    if v == float("inf"):
        return "+Inf"
    return repr(float(v))


class _Doc:
    __slots__ = ("parts",)

    def __init__(self):
        self.parts: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.parts.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")

    def line(self, name: str, labels: str, value) -> None:
        self.parts.append(f"{name}{{{labels}}} {_num(value)}\n" if labels else f"{name} {_num(value)}\n")


def render(view: FleetView, *, version: str = "", mode: str = "", jobs: JobsSnapshot | None = None,
           idle_seconds: dict[str, float] | None = None, track_states: dict[str, int] | None = None,
           reclaim_counts: dict[tuple[str, bool], int] | None = None, policy=None,
           collectors: Iterable[CollectorResult] = (), last_success: dict[str, float] | None = None,
           extra: Iterable[bytes | str] = ()) -> str:
    d = _Doc()
    line, family = d.line, d.family
    idle_seconds = idle_seconds or {}

    family("astrago_build_info", "gauge", "AstraGo service version and mode (always 1).")
    line("astrago_build_info", f'version="{_esc(version)}",mode="{_esc(mode)}"', 1)
    family("astrago_monitor_view_timestamp_seconds", "gauge", "When the data behind this document was read.")
    line("astrago_monitor_view_timestamp_seconds", "", round(view.at, 3))

    # -- collectors: one broken source shows here, and only its panel goes blank
    collectors = list(collectors)
    family("astrago_collector_up", "gauge", "1 if the collector's last round succeeded, 0 if it failed.")
    for c in collectors:
        line("astrago_collector_up", f'collector="{_esc(c.name)}"', 1 if c.ok else 0)
    family("astrago_collector_duration_seconds", "gauge", "How long the collector's last round took.")
    for c in collectors:
        line("astrago_collector_duration_seconds", f'collector="{_esc(c.name)}"', round(c.duration_s, 6))
    family("astrago_collector_last_success_timestamp_seconds", "gauge",
           "When the collector last succeeded (unix time).")
    for name, at in sorted((last_success or {}).items()):
        line("astrago_collector_last_success_timestamp_seconds", f'collector="{_esc(name)}"', round(at, 3))

    # -- GPUs
    gpu_labels = {}
    family("astrago_gpu_info", "gauge", "A GPU of the inventory (always 1); mode is full, mig or mps.")
    for g in view.gpus:
        gl = gpu_labels[g.uuid] = f'node="{_esc(g.node)}",gpu="{g.index}"'
        line("astrago_gpu_info", f'{gl},uuid="{_esc(g.uuid)}",model="{_esc(g.model)}",mode="{g.mode}"', 1)
    family("astrago_gpu_up", "gauge", "1 if the GPU answered the last round, 0 if its node reports but it "
           "does not (a GPU gone); absent where no collector covers the node.")
    for g in view.gpus:
        if g.up is not None:
            line("astrago_gpu_up", gpu_labels[g.uuid], 1 if g.up else 0)
    family("astrago_gpu_utilization_ratio", "gauge", "Share of time the GPU was busy (0-1); absent for "
           "GPUs in MIG mode, whose slices report instead.")
    for g in view.gpus:
        if g.utilization is not None:
            line("astrago_gpu_utilization_ratio", gpu_labels[g.uuid], g.utilization)
    family("astrago_gpu_memory_used_bytes", "gauge", "GPU memory in use.")
    for g in view.gpus:
        if g.memory_used_bytes is not None:
            line("astrago_gpu_memory_used_bytes", gpu_labels[g.uuid], g.memory_used_bytes)
    family("astrago_gpu_memory_total_bytes", "gauge", "GPU memory in all.")
    for g in view.gpus:
        if g.memory_total_bytes is not None:
            line("astrago_gpu_memory_total_bytes", gpu_labels[g.uuid], g.memory_total_bytes)

    # -- slices, each with who holds it
    labels = []
    for s in view.slices:
        labels.append(f'node="{_esc(s.node)}",gpu="{s.gpu_index}",slice="{_esc(s.slice_id)}",'
                      f'profile="{_esc(s.profile)}",kind="{s.kind}",user="{_esc(s.user)}",'
                      f'owner_kind="{s.owner_kind}",owner="{_esc(s.owner)}"')
    a = d.parts.append  # the per-slice families are the bulk of the document: no call per line
    family("astrago_slice_allocated", "gauge", "1 if the slice (MIG instance, whole GPU or MPS share) is "
           "allocated; user/owner say to whom (a workspace \"user/server\" or a job id).")
    for s, lb in zip(view.slices, labels):
        a(f"astrago_slice_allocated{{{lb}}} {1 if s.allocation_id else 0}\n")
    family("astrago_slice_utilization_ratio", "gauge", "Share of time the slice was busy (0-1): GPU "
           "utilisation, a MIG instance's graphics-engine activity, an MPS share's SM use.")
    for s, lb in zip(view.slices, labels):
        if s.utilization is not None:
            a(f"astrago_slice_utilization_ratio{{{lb}}} {s.utilization!r}\n")
    family("astrago_slice_memory_used_bytes", "gauge", "GPU memory the slice uses.")
    for s, lb in zip(view.slices, labels):
        if s.memory_used_bytes is not None:
            a(f"astrago_slice_memory_used_bytes{{{lb}}} {int(s.memory_used_bytes)}\n")
    family("astrago_slice_memory_total_bytes", "gauge", "GPU memory the slice has.")
    for s, lb in zip(view.slices, labels):
        if s.memory_total_bytes is not None:
            a(f"astrago_slice_memory_total_bytes{{{lb}}} {int(s.memory_total_bytes)}\n")
    family("astrago_slice_idle_seconds", "gauge", "How long an allocated workspace slice has been under the "
           "reclaim policy's idle threshold (0 while busy).")
    for s, lb in zip(view.slices, labels):
        if s.allocation_id in idle_seconds:
            a(f"astrago_slice_idle_seconds{{{lb}}} {round(idle_seconds[s.allocation_id], 3)!r}\n")

    # -- capacity, allocations, queue
    family("astrago_capacity_gpu_units", "gauge", "GPU units the inventory has (a whole GPU is 1).")
    line("astrago_capacity_gpu_units", "", view.capacity_units)
    family("astrago_allocated_gpu_units", "gauge", "GPU units allocated now.")
    line("astrago_allocated_gpu_units", "", round(view.allocated_units, 6))
    family("astrago_allocations", "gauge", "Admitted allocations by slice and owner kind (workspace, job).")
    for (slc, kind), n in sorted(view.allocations.items()):
        line("astrago_allocations", f'slice="{_esc(slc)}",owner_kind="{kind}"', n)
    family("astrago_queue_length", "gauge", "Requests waiting in the admission queue, by slice.")
    for slc, (n, _oldest) in sorted(view.queue.items()):
        line("astrago_queue_length", f'slice="{_esc(slc)}"', n)
    family("astrago_queue_oldest_wait_seconds", "gauge", "How long the oldest waiting request for the slice "
           "has waited.")
    for slc, (_n, oldest) in sorted(view.queue.items()):
        line("astrago_queue_oldest_wait_seconds", f'slice="{_esc(slc)}"', round(oldest, 3))

    # -- users and groups
    users = sorted(view.users.values(), key=lambda u: u.name)
    ulabel = {u.name: f'user="{_esc(u.name)}"' for u in users}
    family("astrago_user_gpu_units", "gauge", "GPU units the user holds now.")
    for u in users:
        a(f"astrago_user_gpu_units{{{ulabel[u.name]}}} {round(u.gpu_units, 6)!r}\n")
    family("astrago_user_busy_gpu_units", "gauge", "Sum over the user's measured slices of utilisation x "
           "GPU units: how much of what they hold is busy.")
    for u in users:
        if u.busy_units is not None:
            a(f"astrago_user_busy_gpu_units{{{ulabel[u.name]}}} {round(u.busy_units, 6)!r}\n")
    family("astrago_user_servers", "gauge", "Servers and jobs the user holds allocations for.")
    for u in users:
        a(f"astrago_user_servers{{{ulabel[u.name]}}} {u.servers}\n")
    family("astrago_user_gpu_unit_seconds", "gauge", "GPU-unit seconds allocated to the user in the rolling "
           "quota period (divide by 3600 for GPU-hours).")
    for u in users:
        a(f"astrago_user_gpu_unit_seconds{{{ulabel[u.name]}}} {round(u.gpu_hours * 3600.0, 3)!r}\n")
    family("astrago_user_quota_limit", "gauge", "The user's effective quota per dimension, in the dimension's "
           "unit (gpu_units, cpu cores, memory_gib, servers, gpu_hours); only dimensions with a limit.")
    for u in users:
        for dim, limit in u.limits.items():
            line("astrago_user_quota_limit", f'{ulabel[u.name]},dimension="{dim}"', limit)
    family("astrago_user_quota_used", "gauge", "What the user uses of each dimension that has a limit.")
    for u in users:
        for dim in u.limits:
            used = {"gpu_units": u.gpu_units, "cpu": u.cpu, "memory_gib": u.memory_gib, "servers": u.servers,
                    "gpu_hours": u.gpu_hours}[dim]
            line("astrago_user_quota_used", f'{ulabel[u.name]},dimension="{dim}"', round(used, 6))
    family("astrago_group_gpu_units", "gauge", "GPU units held by members charged to the group "
           "(their accounting group).")
    for group, units in sorted(view.groups.items()):
        line("astrago_group_gpu_units", f'group="{_esc(group)}"', round(units, 6))
    family("astrago_group_quota_limit", "gauge", "A group's quota per dimension.")
    for group, limits in sorted(view.group_limits.items()):
        for dim, limit in limits.items():
            line("astrago_group_quota_limit", f'group="{_esc(group)}",dimension="{dim}"', limit)

    # -- servers (JupyterHub)
    if any(c.ok and c.name == "hub" for c in collectors):
        family("astrago_hub_servers", "gauge", "Users' servers as JupyterHub reports them, by state.")
        for state, n in sorted(view.servers.items()):
            line("astrago_hub_servers", f'state="{state}"', n)

    # -- jobs (when the jobs area is there)
    if jobs is not None:
        family("astrago_jobs", "gauge", "Jobs by status.")
        for status, n in sorted(jobs.by_status.items()):
            line("astrago_jobs", f'status="{_esc(status)}"', n)
        family("astrago_user_jobs", "gauge", "A user's jobs that are not finished, by status.")
        for (user, status), n in sorted(jobs.active_by_user.items()):
            line("astrago_user_jobs", f'user="{_esc(user)}",status="{_esc(status)}"', n)
        family("astrago_job_runtime_seconds", "gauge", "How long each running job has run.")
        for jid, user, slc, seconds in jobs.running:
            line("astrago_job_runtime_seconds", f'job_id="{_esc(jid)}",user="{_esc(user)}",slice="{_esc(slc)}"',
                 round(seconds, 3))
        family("astrago_job_duration_seconds", "histogram", "Run time of jobs finished since the service started.")
        for bound, count in zip(DURATION_BUCKETS, jobs.duration_buckets):
            line("astrago_job_duration_seconds_bucket", f'le="{_num(bound)}"', count)
        line("astrago_job_duration_seconds_sum", "", round(jobs.duration_sum, 3))
        line("astrago_job_duration_seconds_count", "", jobs.duration_count)

    # -- idle-GPU reclaim
    if policy is not None:
        family("astrago_reclaim_enabled", "gauge", "1 if the idle-GPU rules run.")
        line("astrago_reclaim_enabled", "", policy.enabled)
        family("astrago_reclaim_dry_run", "gauge", "1 if reclaim only reports what it would do.")
        line("astrago_reclaim_dry_run", "", policy.dry_run)
        family("astrago_reclaim_idle_threshold_ratio", "gauge", "A slice under this utilisation counts as idle.")
        line("astrago_reclaim_idle_threshold_ratio", "", policy.idle_threshold_percent / 100.0)
        family("astrago_reclaim_warn_after_seconds", "gauge", "Idle time after which a user is warned.")
        line("astrago_reclaim_warn_after_seconds", "", policy.idle_seconds)
    family("astrago_reclaim_tracks", "gauge", "Workspace slices the idle-GPU rules watch, by state.")
    for state, n in sorted((track_states or {}).items()):
        line("astrago_reclaim_tracks", f'state="{state}"', n)
    family("astrago_reclaim_actions_total", "counter", "Idle-GPU actions since the service started.")
    for (action, dry), n in sorted((reclaim_counts or {}).items()):
        line("astrago_reclaim_actions_total", f'action="{action}",dry_run="{"true" if dry else "false"}"', n)

    out = "".join(d.parts)
    for chunk in extra:
        out += chunk.decode() if isinstance(chunk, bytes) else chunk
    return out
