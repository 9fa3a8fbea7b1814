"""One scheduling cycle (pure): queued candidates in, admission decisions out.

No ORM and no session: the desk hands a cycle what it keeps in memory (the waiting queue,
usage, quotas) and writes the decisions. `plan_admissions` is the function the service runs
and bench/scheduler.py times; tests compare its decisions with literal values.
"""
from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from operator import itemgetter
from fractions import Fraction
from typing import Iterator, Mapping

from astrago.spawners.placement import Placer

from .limits import DEFAULT_RUNNING_JOBS, QuotaLimits, Request, Usage, check
from .placements import place_gang

UNLIMITED = QuotaLimits()

#: within one cycle, each admission counts against its group and user as this many hours of
#: its GPU units, so capacity freed at once is shared out rather than going to one group
ADMISSION_CHARGE_HOURS = 1.0


@dataclass(frozen=True, slots=True)
class Candidate:
    """A queued request as a scheduling cycle sees it."""

    id: str
    user: str
    group: str  # accounting group ("" when none)
    created: float
    priority: int
    slice: str
    units: Fraction
    cpu: Fraction = Fraction(0)
    memory_gib: Fraction = Fraction(0)
    kind: str = "workspace"  # workspace | job
    groups: tuple = ()  # the user's groups when asked (their quotas apply)
    #: a gang: this many replicas, each on a `slice` of its own, placed all or none; `units`, `cpu`
    #: and `memory_gib` are the sum over the replicas
    replicas: int = 1
    gpu: float = field(init=False, repr=False, compare=False)  # float(units), what the fair order charges

    def __post_init__(self):
        object.__setattr__(self, "gpu", float(self.units))


def within_user(c: Candidate):
    """The order of one user's requests: highest priority, then first come first served."""
    return (-c.priority, c.created, c.id)


@dataclass
class JobBounds:
    """Running jobs against their bounds: per user (`running_jobs` of the quota) and on the
    machine (the local executor's cores and memory). Updated as a cycle admits."""

    running: dict  # user -> admitted jobs
    caps: Mapping  # user -> running_jobs limit (absent: the default)
    capacity: tuple | None  # (cores, GiB) all admitted jobs may hold; None: unbounded
    cpu: Fraction = Fraction(0)
    memory_gib: Fraction = Fraction(0)

    def at_cap(self, user: str) -> bool:
        """The user runs as many jobs as they may."""
        return self.running.get(user, 0) >= self.caps.get(user, DEFAULT_RUNNING_JOBS)

    def refusal(self, user: str, cpu: Fraction, memory_gib: Fraction) -> str:
        """Why a job of `user` asking for cpu and memory cannot start now ('' : it can)."""
        n, cap = self.running.get(user, 0), self.caps.get(user, DEFAULT_RUNNING_JOBS)
        if n >= cap:
            return f"you have {n} running jobs, the limit is {cap}"
        if self.capacity is not None:
            cores, gib = self.capacity
            if self.cpu + cpu > cores and self.cpu > 0:
                return (f"the machine's {_fmt_amount(cores)} cores for jobs are taken "
                        f"({_fmt_amount(self.cpu)} held by running jobs)")
            if self.memory_gib + memory_gib > gib and self.memory_gib > 0:
                return (f"the machine's {_fmt_amount(gib)} GiB of memory for jobs is taken "
                        f"({_fmt_amount(self.memory_gib)} GiB held by running jobs)")
        return ""

    def add(self, user: str, cpu: Fraction, memory_gib: Fraction) -> None:
        self.running[user] = self.running.get(user, 0) + 1
        self.cpu += cpu
        self.memory_gib += memory_gib


def _fmt_amount(v: Fraction) -> str:
    return f"{float(v):.2f}".rstrip("0").rstrip(".")


def _grouped(candidates) -> dict[str, dict[str, list]]:
    """group -> user -> that user's candidates in `within_user` order. A `WaitingQueue` keeps
    this grouping as requests come and go; any other iterable is grouped here."""
    grouped = getattr(candidates, "grouped", None)
    if grouped is not None:
        return grouped()
    groups: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for c in candidates:
        groups[c.group][c.user].append(c)
    for users in groups.values():
        for items in users.values():
            items.sort(key=within_user)
    return groups


def _heaps(candidates, group_usage: Mapping[str, float], user_usage: Mapping[str, float],
           weights: Mapping[str, float]) -> list:
    """The fair order's state: a heap of groups by weighted usage, each with a heap of its users by
    usage, each user's requests in `within_user` order with the index of the next one."""
    heap = []
    for group, users in _grouped(candidates).items():
        weight = weights.get(group, 1.0) or 1.0
        uheap = [(user_usage.get(user, 0.0), user, items, 0) for user, items in users.items() if items]
        if not uheap:
            continue
        heapq.heapify(uheap)
        heap.append((group_usage.get(group, 0.0) / weight, group, weight, uheap))
    heapq.heapify(heap)
    return heap


def _advance(heap: list, charge: float, skip_to: int | None = None) -> None:
    """Move the order past the request at its head, charging its group and user `charge`
    GPU-hours (`skip_to`: past that user's requests up to that index too)."""
    key, group, weight, uheap = heap[0]
    ukey, user, items, i = uheap[0]
    nxt = i + 1 if skip_to is None else skip_to
    if nxt < len(items):
        heapq.heapreplace(uheap, (ukey + charge, user, items, nxt))
    else:
        heapq.heappop(uheap)
    if uheap:
        heapq.heapreplace(heap, (key + charge / weight, group, weight, uheap))
    else:
        heapq.heappop(heap)


def iter_fair_order(candidates, group_usage: Mapping[str, float], user_usage: Mapping[str, float],
                    weights: Mapping[str, float], charge_hours: float = ADMISSION_CHARGE_HOURS) -> Iterator[Candidate]:
    """The queue in the order it is served (pure, lazy).

    Hierarchical fair share by usage: the group furthest below its weighted share goes next,
    inside it the user with the least usage, inside a user the highest priority, then first
    come first served. Each request charges its group and user `units x charge_hours`, so
    groups and users interleave instead of one taking everything freed at once (a scheduling
    cycle charges only what it admits: `plan_admissions`).
    """
    heap = _heaps(candidates, group_usage, user_usage, weights)
    while heap:
        uheap = heap[0][3]
        _ukey, _user, items, i = uheap[0]
        c = items[i]
        yield c
        _advance(heap, c.gpu * charge_hours)


def fair_order(candidates, group_usage, user_usage, weights,
               charge_hours: float = ADMISSION_CHARGE_HOURS) -> list[Candidate]:
    """The whole queue in the order it is served (its positions)."""
    return list(iter_fair_order(candidates, group_usage, user_usage, weights, charge_hours))


def fair_positions(candidates, group_usage: Mapping[str, float], user_usage: Mapping[str, float],
                   weights: Mapping[str, float], charge_hours: float = ADMISSION_CHARGE_HOURS) -> dict[str, int]:
    """Each request's position (1 = next) in `fair_order`, by sorting instead of walking heaps.

    Every request taken charges its group and user, so each one's key when it comes up is known
    beforehand: a user's usage plus what their earlier requests charge, a group's (over its
    weight) plus what its earlier requests charge. Within a group the requests go by user key,
    then user; across groups by group key, then group - the heaps' order, with the same float
    sums, so the same ties."""
    order = []
    for group, users in _grouped(candidates).items():
        for j, (key, c) in enumerate(group_serving_order(group, users, group_usage, user_usage, weights,
                                                         charge_hours)):
            order.append((key, group, j, c.id))
    order.sort(key=_first_three)
    return {entry[3]: n for n, entry in enumerate(order, start=1)}


def group_serving_order(group: str, users: Mapping[str, list], group_usage: Mapping[str, float],
                        user_usage: Mapping[str, float], weights: Mapping[str, float],
                        charge_hours: float) -> list[tuple[float, "Candidate"]]:
    """One group's requests (`users`: user -> their requests in order) in the order they are
    served, each with the group key it comes up at: by user key (usage plus what the user's earlier
    requests charge), then user; the group's key grows by each request's charge over its weight."""
    weight = weights.get(group, 1.0) or 1.0
    inner = []
    for user, items in users.items():
        ukey = user_usage.get(user, 0.0)
        for k, c in enumerate(items):
            inner.append((ukey, user, k, c))
            ukey = ukey + c.gpu * charge_hours
    if len(users) > 1:
        inner.sort(key=_first_three)
    key = group_usage.get(group, 0.0) / weight
    out = []
    for entry in inner:
        c = entry[3]
        out.append((key, c))
        key = key + c.gpu * charge_hours / weight
    return out


_first_three = itemgetter(0, 1, 2)


def committed_usage(decayed: Mapping[str, float], held_units: Mapping[str, float],
                    charge_hours: float = ADMISSION_CHARGE_HOURS) -> dict[str, float]:
    """Usage as the fair order sees it (pure): decayed GPU-hours so far, plus what is held now
    counted as `charge_hours` more of it, so a group that was just given much does not look
    idle until its jobs have run for a while."""
    out = dict(decayed)
    for subject, units in held_units.items():
        out[subject] = out.get(subject, 0.0) + units * charge_hours
    return out


class _Held:
    """What a user holds, updated as a cycle admits (exact, like `Usage`)."""

    __slots__ = ("units", "cpu", "memory_gib", "servers", "gpu_hours", "counts")

    def __init__(self, usage: Usage):
        self.units, self.cpu, self.memory_gib = usage.gpu_units, usage.cpu, usage.memory_gib
        self.servers, self.gpu_hours, self.counts = usage.servers, usage.gpu_hours, dict(usage.profile_counts)

    def usage(self) -> Usage:
        return Usage(gpu_units=self.units, cpu=self.cpu, memory_gib=self.memory_gib, servers=self.servers,
                     gpu_hours=self.gpu_hours, profile_counts=self.counts)

    def add(self, c: Candidate) -> None:
        self.units += c.units
        self.cpu += c.cpu
        self.memory_gib += c.memory_gib
        self.servers += 1
        self.counts[c.slice] = self.counts.get(c.slice, 0) + c.replicas


class Reasons(Mapping):
    """Why each candidate not admitted still waits. Candidates the cycle looked at have their
    own reason; those it passed with their user (`capped`: the user's running jobs are at their
    limit) wait for that, and once every slice in the queue was found full the cycle stopped:
    the ones it never reached wait for their slice (`full`). Worked out when asked, not for
    every one."""

    def __init__(self, own: dict[str, str], full: dict[str, str], stopped_early: bool, candidates,
                 admitted: set[str], capped: dict[str, str] | None = None):
        self.own, self.full, self.stopped_early, self.capped = own, full, stopped_early, capped or {}
        self._candidates, self._admitted = candidates, admitted
        self._by_id = None

    def _lookup(self, cid: str):
        get = getattr(self._candidates, "get", None)
        if get is not None:
            return get(cid)
        if self._by_id is None:
            self._by_id = {c.id: c for c in self._candidates}
        return self._by_id.get(cid)

    def __getitem__(self, cid: str) -> str:
        found = self.own.get(cid)
        if found is not None:
            return found
        if cid not in self._admitted and (self.capped or self.stopped_early):
            c = self._lookup(cid)
            if c is not None:
                if c.kind == "job" and c.user in self.capped:
                    return self.capped[c.user]
                if self.stopped_early:
                    return self.full[c.slice]
        raise KeyError(cid)

    def __iter__(self):
        yield from self.own
        if self.capped or self.stopped_early:
            for c in self._candidates:
                if c.id not in self.own and c.id not in self._admitted:
                    yield c.id

    def __len__(self) -> int:
        return len(self._candidates) - len(self._admitted)


@dataclass
class CycleResult:
    admitted: list  # (candidate id, Placement), in admission order
    reasons: Mapping  # candidate id -> why it still waits (`Reasons`)
    considered: int = 0  # candidates looked at before the cycle could stop
    full: dict = field(default_factory=dict)  # slice -> why it cannot be placed this cycle
    stopped_early: bool = False  # every slice in the queue was full: the rest were not looked at
    capped: dict = field(default_factory=dict)  # user -> why their jobs wait (passed without a look)


class _SlicesLeft:
    """The slices of the requests a cycle has not dealt with yet, and how many of those slices
    may still be placed (`open`): at 0 nothing left can be admitted and the cycle stops."""

    def __init__(self, candidates):
        counts = getattr(candidates, "slice_counts", None)
        self.left = Counter(counts) if counts is not None else Counter(c.slice for c in candidates)
        self.open = len(self.left)
        self.full: dict[str, str] = {}  # slice -> why it cannot be placed this cycle

    def mark_full(self, slice_name: str, why: str) -> None:
        self.full[slice_name] = why
        if self.left[slice_name] > 0:
            self.open -= 1

    def dealt_with(self, slice_name: str, n: int = 1) -> None:
        left = self.left[slice_name] = self.left[slice_name] - n
        if left <= 0 and slice_name not in self.full:
            self.open -= 1


def _skipped_slices(candidates, group: str, user: str, items: list, i: int, skip_to: int) -> Counter:
    """The slices of `items[i + 1:skip_to]` (from the queue's counts when it skips them all)."""
    slices_of = getattr(candidates, "slices_of", None)
    if slices_of is not None and skip_to == len(items):
        counts = Counter(slices_of(group, user))
        counts.subtract(x.slice for x in items[:i + 1])
        return counts
    return Counter(x.slice for x in items[i + 1:skip_to])


def plan_admissions(candidates, placer: Placer, *, group_usage: Mapping[str, float],
                    user_usage: Mapping[str, float], weights: Mapping[str, float],
                    limits: Mapping[str, QuotaLimits], usage: Mapping[str, Usage],
                    charge_hours: float = ADMISSION_CHARGE_HOURS, jobs: JobBounds | None = None) -> CycleResult:
    """One scheduling cycle over in-memory state (pure but for `placer`, which it places on).

    Walks the fair order; a request that fits its owner's quota and the free capacity is
    placed, one that does not is passed over (backfilling: smaller requests behind a large
    head still go). Within a cycle capacity only shrinks and usage only grows, so a slice
    that could not be placed, or a (user, shape) over quota, is not tried again; once every
    slice in the queue is out of capacity the cycle stops early. `limits` and `usage` are read
    only for the users the cycle reaches (they may be lazy mappings).
    """
    admitted: list = []
    own: dict[str, str] = {}
    slices = _SlicesLeft(candidates)
    full = slices.full
    over: dict[tuple, str] = {}  # (user, slice, cpu, memory) -> the quota sentence
    capped: dict[str, str] = {}  # user -> why none of their jobs starts this cycle (running_jobs)
    held: dict[str, _Held] = {}
    considered = 0
    stopped_early = False
    limited: dict[str, QuotaLimits | None] = {}  # user -> limits, None when unlimited
    only_jobs = getattr(candidates, "only_jobs", None)  # a WaitingQueue knows without a scan
    heap = _heaps(candidates, group_usage, user_usage, weights)
    while heap:
        _ukey, user, items, i = heap[0][3][0]
        c = items[i]
        considered += 1
        skip_to = None
        why = full.get(c.slice)
        if why is None:
            try:
                lim = limited[user]
            except KeyError:
                lim = limits.get(user)
                lim = limited[user] = None if lim is None or lim == UNLIMITED else lim
            if lim is not None:
                cpu, mem = c.cpu, c.memory_gib  # ints hash fast, Fractions do not
                key = (user, c.slice, cpu.numerator, cpu.denominator, mem.numerator, mem.denominator, c.replicas)
                why = over.get(key)
                if why is None:
                    h = held.get(user)
                    if h is None:
                        h = held[user] = _Held(usage.get(user) or Usage())
                    exceeded = check(lim, h.usage(), Request(c.slice, c.units, c.cpu, c.memory_gib, c.replicas))
                    if exceeded:
                        why = over[key] = "over quota: " + " ".join(o.sentence() for o in exceeded)
            if why is None and jobs is not None and c.kind == "job":
                if jobs.at_cap(user):
                    # the user's running jobs only grow within a cycle: none of their next jobs
                    # starts either; they are passed with the user (their reason given when asked)
                    why = capped[user] = f"waiting: {jobs.refusal(user, c.cpu, c.memory_gib)}"
                    if only_jobs is not None and only_jobs(heap[0][1], user):
                        skip_to = len(items)
                    else:
                        skip_to = i + 1
                        while skip_to < len(items) and items[skip_to].kind == "job":
                            skip_to += 1
                    for slice_name, n in _skipped_slices(candidates, heap[0][1], user, items, i, skip_to).items():
                        if n:
                            slices.dealt_with(slice_name, n)
                else:
                    bound = jobs.refusal(user, c.cpu, c.memory_gib)
                    if bound:
                        why = f"waiting: {bound}"
            if why is None:
                placement = place_gang(placer, c.id, c.slice, c.replicas)
                if placement is None:
                    why = f"waiting: {placer.last_refusal or 'no capacity'}"
                    if c.replicas == 1:  # a gang that does not fit says nothing of one slice
                        slices.mark_full(c.slice, why)
                else:
                    admitted.append((c.id, placement))
                    if lim is not None:
                        held[user].add(c)
                    if jobs is not None and c.kind == "job":
                        jobs.add(user, c.cpu, c.memory_gib)
                    slices.dealt_with(c.slice)
                    _advance(heap, c.gpu * charge_hours)
                    if not slices.open and heap:
                        stopped_early = True
                        break
                    continue
        own[c.id] = why
        slices.dealt_with(c.slice)
        _advance(heap, 0.0, skip_to)  # passed over: its group and user keep their turn
        if not slices.open and heap:
            stopped_early = True  # nothing left in the queue can be placed this cycle
            break
    reasons = Reasons(own, full, stopped_early, candidates, {cid for cid, _ in admitted}, capped)
    return CycleResult(admitted, reasons, considered, full, stopped_early, capped)
