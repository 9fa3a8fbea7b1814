"""The monitor's metric families: a prometheus_client custom collector over the monitor's view.

`FleetFamilies.refresh(document)` turns one round's view (and the monitor's state then) into
metric families; `collect()` yields the families of the last refresh, so a scrape costs no
reading, no joining and no formatting. A refresh keeps every family whose series and values are
those of the previous refresh as it was (its text is not written again), and label text is kept
per series (a slice's eight labels are formatted once while its holder stays), so a round renders
only what changed: the readings, the clocks, what the ledger moved.

Names are `astrago_*` in base units (`_bytes`, `_seconds`, `_ratio` in [0, 1]); label sets are
bounded by what exists: GPUs and slices by the inventory, users by who holds or held GPU time in
the quota period, jobs by the running ones. Unknown values (a MIG slice without GPM, a failing
collector) are absent series, never zero. Never a `job` or `instance` label: Prometheus sets those.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import compress
from operator import attrgetter
from typing import Any, Callable

from prometheus_client.samples import Sample

from ..service.interfaces.jobs import JobsSnapshot
from .exposition import RenderedFamily, _esc, _num
from .snapshot import FleetView


@dataclass
class Document:
    """What the families are made of: a round's view and the monitor's state at that time."""

    view: FleetView
    version: str = ""
    mode: str = ""
    jobs: JobsSnapshot | None = None
    job_buckets: tuple = ()  # upper bounds of the job duration histogram (JobsReader.duration_buckets)
    idle_seconds: dict = field(default_factory=dict)  # allocation id -> idle seconds
    track_states: dict = field(default_factory=dict)  # reclaim track state -> count
    reclaim_counts: dict = field(default_factory=dict)  # (action, dry run) -> count
    policy: Any = None
    collectors: list = field(default_factory=list)  # CollectorResult of the round
    last_success: dict = field(default_factory=dict)  # collector -> unix time


class _Series(RenderedFamily):
    """A family of one sample name: label values (`keys`, or a function making them: only samples
    need them), their label text (`rows`) and the values."""

    def __init__(self, name, documentation, typ, sample_name, label_names, keys, rows, values, fmt):
        self.sample_name, self.label_names, self.keys, self.rows, self.values, self.fmt = (
            sample_name, label_names, keys, rows, values, fmt)
        head = f"# HELP {sample_name} {documentation}\n# TYPE {sample_name} {typ}\n"
        super().__init__(name, documentation, typ, (head + _lines(sample_name, rows, values, fmt)).encode(),
                         self._samples_now)

    def _samples_now(self):
        names, keys = self.label_names, self.keys() if callable(self.keys) else self.keys
        return [Sample(self.sample_name, {n: str(x) for n, x in zip(names, key)}, float(self.fmt(v)))
                for key, v in zip(keys, self.values)]

    def same_as(self, documentation, rows, values) -> bool:
        return self.rows == rows and self.values == values and self.documentation == documentation


def _lines(name: str, rows, values, fmt) -> str:
    """The sample lines; the common formats inline (a call per line is most of the cost)."""
    if rows and not rows[0]:
        return "".join([f"{name} {fmt(v)}\n" for v in values])
    pairs = zip(rows, values)
    if fmt is repr:
        return "".join([f"{name}{{{lb}}} {v!r}\n" for lb, v in pairs])
    if fmt is str:
        return "".join([f"{name}{{{lb}}} {v}\n" for lb, v in pairs])
    if fmt is _int:
        return "".join([f"{name}{{{lb}}} {int(v)}\n" for lb, v in pairs])
    if fmt is _repr6:
        return "".join([f"{name}{{{lb}}} {round(v, 6)!r}\n" for lb, v in pairs])
    if fmt is _unit_seconds:
        return "".join([f"{name}{{{lb}}} {round(v * 3600.0, 3)!r}\n" for lb, v in pairs])
    return "".join([f"{name}{{{lb}}} {fmt(v)}\n" for lb, v in pairs])


def _repr6(v) -> str:
    return repr(round(v, 6))


def _repr3(v) -> str:
    return repr(round(v, 3))


def _int(v) -> str:
    return str(int(v))


def _num6(v) -> str:
    return _num(round(v, 6))


def _num3(v) -> str:
    return _num(round(v, 3))


def _held(allocation_id) -> str:
    return "1" if allocation_id else "0"


def _unit_seconds(gpu_hours) -> str:
    return repr(round(gpu_hours * 3600.0, 3))


def _escaped(raw: str) -> bool:
    return "\\" in raw or '"' in raw or "\n" in raw


# The label makers escape only where a value needs it (one test over the values joined): they
# run once per new series, 10,000 of them for a cold document.

def _slice_label(k) -> str:
    node, gpu, slice_id, profile, kind, user, owner_kind, owner = k
    if _escaped(f"{node}{slice_id}{profile}{user}{owner}"):
        node, slice_id, profile, user, owner = _esc(node), _esc(slice_id), _esc(profile), _esc(user), _esc(owner)
    return (f'node="{node}",gpu="{gpu}",slice="{slice_id}",profile="{profile}",kind="{kind}",'
            f'user="{user}",owner_kind="{owner_kind}",owner="{owner}"')


def _gpu_label(k) -> str:
    return f'node="{_esc(k[0])}",gpu="{k[1]}"'


def _gpu_info_label(k) -> str:
    node, index, uuid, model, mode = k
    return f'node="{_esc(node)}",gpu="{index}",uuid="{_esc(uuid)}",model="{_esc(model)}",mode="{mode}"'


def _user_label(k) -> str:
    return f'user="{_esc(k[0])}"'


def _user_dimension_label(k) -> str:
    user = k[0]
    return f'user="{_esc(user) if _escaped(user) else user}",dimension="{k[1]}"'


class _Builder:
    """One refresh: the families in document order, reusing the previous refresh's."""

    def __init__(self, previous: dict, labels: dict):
        self.previous, self.old_labels = previous, labels
        self.families: list = []
        self.by_name: dict = {}
        self.labels: dict = {}
        self.rendered = 0

    def rows(self, kind: str, keys: list, make: Callable) -> list[str]:
        """The label text of each key, formatted only for keys the previous refresh did not have."""
        old = self.old_labels.get(kind, {})
        out = list(map(old.get, keys))
        if None in out:
            for i, text in enumerate(out):
                if text is None:
                    out[i] = make(keys[i])
        elif len(old) == len(keys):  # (keys are unique) the same series as before: the same labels
            self.labels[kind] = old
            return out
        self.labels[kind] = dict(zip(keys, out))
        return out

    def family(self, name, typ, documentation, label_names=(), keys=(), rows=(), values=(), fmt=_num):
        prev = self.previous.get(name)
        if prev is not None and prev.same_as(documentation, rows, values):
            fam = prev
        else:
            sample_name = name + "_total" if typ == "counter" else name
            fam = _Series(name, documentation, typ, sample_name, tuple(label_names), keys, rows, values, fmt)
            self.rendered += 1
        self.families.append(fam)
        self.by_name[name] = fam

    def small(self, name, typ, documentation, label_names, items, fmt=_num):
        """A family of few series, from (label values, value) pairs (labels formatted each time)."""
        keys = [k for k, _v in items]
        rows = [",".join(f'{n}="{_esc(x)}"' for n, x in zip(label_names, k)) for k in keys]
        self.family(name, typ, documentation, label_names, keys, rows, [v for _k, v in items], fmt)

    def single(self, name, documentation, value, fmt=_num):
        self.family(name, "gauge", documentation, (), [()], [""], [value], fmt)

    def present(self, name, documentation, keys, rows, values, fmt):
        """A gauge of the series whose value is known (None: absent, never zero)."""
        if None in values:
            known = [v is not None for v in values]
            rows, values = list(compress(rows, known)), list(compress(values, known))
            all_keys = keys
            keys = (lambda: list(compress(all_keys, known))) if values else []
        self.family(name, "gauge", documentation, _LABELS[name], keys, rows, values, fmt)


_SLICE = ("node", "gpu", "slice", "profile", "kind", "user", "owner_kind", "owner")
_SLICE_KEY = attrgetter("node", "gpu_index", "slice_id", "profile", "kind", "user", "owner_kind", "owner")
_ALLOCATION, _UTILIZATION = attrgetter("allocation_id"), attrgetter("utilization")
_MEMORY_USED, _MEMORY_TOTAL = attrgetter("memory_used_bytes"), attrgetter("memory_total_bytes")
_GPU = ("node", "gpu")
_LABELS = {
    "astrago_gpu_up": _GPU, "astrago_gpu_utilization_ratio": _GPU, "astrago_gpu_memory_used_bytes": _GPU,
    "astrago_gpu_memory_total_bytes": _GPU, "astrago_slice_utilization_ratio": _SLICE,
    "astrago_slice_memory_used_bytes": _SLICE, "astrago_slice_memory_total_bytes": _SLICE,
    "astrago_slice_idle_seconds": _SLICE, "astrago_user_busy_gpu_units": ("user",),
}


class FleetFamilies:
    """The monitor's families for the service's registry (a prometheus_client custom collector)."""

    def __init__(self):
        self._families: list = []
        self._by_name: dict = {}
        self._labels: dict = {}
        self.rendered = 0  # families written by the last refresh (the others were kept)

    @property
    def ready(self) -> bool:
        return bool(self._families)

    def collect(self):
        return list(self._families)

    def refresh(self, doc: Document) -> None:
        """Make the families of `doc` (blocking, pure CPU: call it from a worker thread)."""
        b = _Builder(self._by_name, self._labels)
        _service_and_collectors(b, doc)
        _gpus_and_slices(b, doc)
        _capacity_and_queue(b, doc.view)
        _users_and_groups(b, doc.view)
        _servers_jobs_and_reclaim(b, doc)
        # swapped in one assignment each: a scrape in another thread sees one refresh or the other
        self._families, self._by_name, self._labels, self.rendered = b.families, b.by_name, b.labels, b.rendered


def _service_and_collectors(b: _Builder, doc: Document) -> None:
    view = doc.view
    b.small("astrago_build_info", "gauge", "AstraGo service version and mode (always 1).", ("version", "mode"),
            [((doc.version, doc.mode), 1)])
    b.single("astrago_monitor_view_timestamp_seconds", "When the data behind this document was read.", view.at,
             _num3)
    # collectors: one broken source shows here, and only its panel goes blank
    collectors = list(doc.collectors)
    b.small("astrago_collector_up", "gauge", "1 if the collector's last round succeeded, 0 if it failed.",
            ("collector",), [((c.name,), 1 if c.ok else 0) for c in collectors])
    b.small("astrago_collector_duration_seconds", "gauge", "How long the collector's last round took.",
            ("collector",), [((c.name,), c.duration_s) for c in collectors], _num6)
    b.small("astrago_collector_last_success_timestamp_seconds", "gauge",
            "When the collector last succeeded (unix time).", ("collector",),
            [((name,), at) for name, at in sorted(doc.last_success.items())], _num3)


def _gpus_and_slices(b: _Builder, doc: Document) -> None:
    view = doc.view
    gpus = view.gpus
    info_keys = [(g.node, g.index, g.uuid, g.model, g.mode) for g in gpus]
    b.family("astrago_gpu_info", "gauge", "A GPU of the inventory (always 1); mode is full, mig or mps.",
             ("node", "gpu", "uuid", "model", "mode"), info_keys, b.rows("gpu_info", info_keys, _gpu_info_label),
             [1] * len(gpus))
    keys = [(g.node, g.index) for g in gpus]
    rows = b.rows("gpu", keys, _gpu_label)
    b.present("astrago_gpu_up", "1 if the GPU answered the last round, 0 if its node reports but it does not "
              "(a GPU gone); absent where no collector covers the node.", keys, rows,
              [None if g.up is None else (1 if g.up else 0) for g in gpus], _num)
    b.present("astrago_gpu_utilization_ratio", "Share of time the GPU was busy (0-1); absent for GPUs in MIG "
              "mode, whose slices report instead.", keys, rows, [g.utilization for g in gpus], _num)
    b.present("astrago_gpu_memory_used_bytes", "GPU memory in use.", keys, rows,
              [g.memory_used_bytes for g in gpus], _num)
    b.present("astrago_gpu_memory_total_bytes", "GPU memory in all.", keys, rows,
              [g.memory_total_bytes for g in gpus], _num)

    # slices, each with who holds it: the bulk of the document
    slices = view.slices
    keys = list(map(_SLICE_KEY, slices))
    rows = b.rows("slice", keys, _slice_label)
    b.family("astrago_slice_allocated", "gauge", "1 if the slice (MIG instance, whole GPU or MPS share) is "
             "allocated; user/owner say to whom (a workspace \"user/server\" or a job id).", _SLICE, keys, rows,
             list(map(_ALLOCATION, slices)), _held)
    b.present("astrago_slice_utilization_ratio", "Share of time the slice was busy (0-1): GPU utilisation, a MIG "
              "instance's graphics-engine activity, an MPS share's SM use.", keys, rows,
              list(map(_UTILIZATION, slices)), repr)
    b.present("astrago_slice_memory_used_bytes", "GPU memory the slice uses.", keys, rows,
              list(map(_MEMORY_USED, slices)), _int)
    b.present("astrago_slice_memory_total_bytes", "GPU memory the slice has.", keys, rows,
              list(map(_MEMORY_TOTAL, slices)), _int)
    idle = doc.idle_seconds
    b.present("astrago_slice_idle_seconds", "How long an allocated workspace slice has been under the reclaim "
              "policy's idle threshold (0 while busy).", keys, rows,
              [idle.get(s.allocation_id) if s.allocation_id else None for s in slices], _repr3)


def _capacity_and_queue(b: _Builder, view: FleetView) -> None:
    b.single("astrago_capacity_gpu_units", "GPU units the inventory has (a whole GPU is 1).", view.capacity_units)
    b.single("astrago_allocated_gpu_units", "GPU units allocated now.", view.allocated_units, _num6)
    b.small("astrago_allocations", "gauge", "Admitted allocations by slice and owner kind (workspace, job).",
            ("slice", "owner_kind"), sorted(view.allocations.items()))
    queue = sorted(view.queue.items())
    b.small("astrago_queue_length", "gauge", "Requests waiting in the admission queue, by slice.", ("slice",),
            [((slc,), n) for slc, (n, _oldest) in queue])
    b.small("astrago_queue_oldest_wait_seconds", "gauge", "How long the oldest waiting request for the slice has "
            "waited.", ("slice",), [((slc,), oldest) for slc, (_n, oldest) in queue], _num3)


def _users_and_groups(b: _Builder, view: FleetView) -> None:
    users = sorted(view.users.values(), key=lambda u: u.name)
    keys = [(u.name,) for u in users]
    rows = b.rows("user", keys, _user_label)
    user = ("user",)
    b.family("astrago_user_gpu_units", "gauge", "GPU units the user holds now.", user, keys, rows,
             [u.gpu_units for u in users], _repr6)
    b.present("astrago_user_busy_gpu_units", "Sum over the user's measured slices of utilisation x GPU units: how "
              "much of what they hold is busy.", keys, rows, [u.busy_units for u in users], _repr6)
    b.family("astrago_user_servers", "gauge", "Servers and jobs the user holds allocations for.", user, keys, rows,
             [u.servers for u in users], str)
    b.family("astrago_user_gpu_unit_seconds", "gauge", "GPU-unit seconds allocated to the user in the rolling quota "
             "period (divide by 3600 for GPU-hours).", user, keys, rows, [u.gpu_hours for u in users], _unit_seconds)
    keys, limits, used = [], [], []
    for u in users:
        for dim, limit in u.limits.items():
            keys.append((u.name, dim))
            limits.append(limit)
            used.append(getattr(u, dim))  # a quota dimension names the UserView field it limits
    rows = b.rows("user_dimension", keys, _user_dimension_label)
    b.family("astrago_user_quota_limit", "gauge", "The user's effective quota per dimension, in the dimension's "
             "unit (gpu_units, cpu cores, memory_gib, servers, gpu_hours); only dimensions with a limit.",
             ("user", "dimension"), keys, rows, limits)
    b.family("astrago_user_quota_used", "gauge", "What the user uses of each dimension that has a limit.",
             ("user", "dimension"), keys, rows, used, _repr6)
    b.small("astrago_group_gpu_units", "gauge", "GPU units held by members charged to the group (their "
            "accounting group).", ("group",), [((g,), units) for g, units in sorted(view.groups.items())], _num6)
    b.small("astrago_group_quota_limit", "gauge", "A group's quota per dimension.", ("group", "dimension"),
            [((g, dim), limit) for g, limits in sorted(view.group_limits.items()) for dim, limit in limits.items()])


def _servers_jobs_and_reclaim(b: _Builder, doc: Document) -> None:
    view, jobs, policy = doc.view, doc.jobs, doc.policy
    if any(c.ok and c.name == "hub" for c in doc.collectors):
        b.small("astrago_hub_servers", "gauge", "Users' servers as JupyterHub reports them, by state.", ("state",),
                [((state,), n) for state, n in sorted(view.servers.items())])
    if jobs is not None:  # the jobs area is there
        b.small("astrago_jobs", "gauge", "Jobs by status.", ("status",), [((s,), n) for s, n in
                                                                             sorted(jobs.by_status.items())])
        b.small("astrago_user_jobs", "gauge", "A user's jobs that are not finished, by status.", ("user", "status"),
                sorted(jobs.active_by_user.items()))
        b.small("astrago_job_runtime_seconds", "gauge", "How long each running job has run.",
                ("job_id", "user", "slice"), [((jid, user, slc), seconds) for jid, user, slc, seconds in jobs.running],
                _num3)
        b.families.append(_duration_histogram(doc.job_buckets, jobs))
    if policy is not None:
        b.single("astrago_reclaim_enabled", "1 if the idle-GPU rules run.", policy.enabled)
        b.single("astrago_reclaim_dry_run", "1 if reclaim only reports what it would do.", policy.dry_run)
        b.single("astrago_reclaim_idle_threshold_ratio", "A slice under this utilisation counts as idle.",
                 policy.idle_threshold_percent / 100.0)
        b.single("astrago_reclaim_warn_after_seconds", "Idle time after which a user is warned.", policy.idle_seconds)
    b.small("astrago_reclaim_tracks", "gauge", "Workspace slices the idle-GPU rules watch, by state.", ("state",),
            [((state,), n) for state, n in sorted(doc.track_states.items())])
    b.small("astrago_reclaim_actions", "counter", "Idle-GPU actions since the service started.", ("action", "dry_run"),
            [((action, "true" if dry else "false"), n) for (action, dry), n in sorted(doc.reclaim_counts.items())])


def _duration_histogram(bounds, jobs: JobsSnapshot) -> RenderedFamily:
    name, doc = "astrago_job_duration_seconds", "Run time of jobs finished since the service started."
    samples = [Sample(name + "_bucket", {"le": _num(bound)}, float(count))
               for bound, count in zip(bounds, jobs.duration_buckets)]
    samples += [Sample(name + "_sum", {}, float(_num(round(jobs.duration_sum, 3)))),
                Sample(name + "_count", {}, float(jobs.duration_count))]
    lines = [f'{name}_bucket{{le="{_num(bound)}"}} {_num(count)}\n' for bound, count in zip(bounds, jobs.duration_buckets)]
    lines += [f"{name}_sum {_num(round(jobs.duration_sum, 3))}\n", f"{name}_count {_num(jobs.duration_count)}\n"]
    text = f"# HELP {name} {doc}\n# TYPE {name} histogram\n" + "".join(lines)
    return RenderedFamily(name, doc, "histogram", text.encode(), lambda: samples)


def render(view: FleetView, **document) -> str:
    """The monitor's part of the document for `view` alone (tests, benchmarks): what a scrape
    serves after a round with these inputs (see `Document` for the keywords)."""
    from prometheus_client import CollectorRegistry

    from .exposition import generate

    families = FleetFamilies()
    families.refresh(Document(view, **document))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(families)
    return generate(registry).decode()
