"""GPU usage, kept as it changes (pure): the one place GPU-hours are worked out.

Every figure comes from the same intervals - an allocation holds `units` GPU units from its
admission to its release - and the one formula `gpu_hours(units, start, end)`:

- **Decayed usage** per user and per accounting group, for the fair-share order: the integral
  of units x 2^-(age / half-life) in GPU-hours. Kept as Kueue keeps its usage ledger: a value
  anchored at its last update and the rate (units) held since. Between updates the rate is
  constant, so moving the anchor is exact: value x decay + rate x (1 - decay) / k. Reading it is
  O(1), never a walk over history.
- **GPU-hours in the rolling quota period** per user (the `gpu_hours` quota dimension): the
  user's intervals that reach into the period, summed when asked (intervals that left the
  period are dropped as time goes on).
- **What each user holds now** (units, CPU, memory, servers, slices, running jobs): the
  quota check's usage, and the jobs' bounds.

The desk feeds it admissions and releases and rebuilds it from the ledger's history at start.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from fractions import Fraction

from .limits import Usage


def gpu_hours(units: float, start: float, end: float) -> float:
    """GPU-hours of `units` held from `start` to `end` (unix seconds; 0 when end <= start)."""
    return units * (end - start) / 3600.0 if end > start else 0.0


def decayed_gpu_hours(units: float, start: float, end: float, now: float, k: float) -> float:
    """The integral of units x exp(-k (now - t)) dt over [start, end], in GPU-hours."""
    end = min(end, now)
    if end <= start:
        return 0.0
    return units * (math.exp(-k * (now - end)) - math.exp(-k * (now - start))) / k / 3600.0


@dataclass(frozen=True)
class Interval:
    """One allocation's use of GPU units from `start` to `end` (None: still held). Seconds."""

    subject: str
    gpu_units: Fraction
    start: float
    end: float | None


def decayed_from_history(intervals, now: float, half_life_s: float) -> dict[str, float]:
    """Decayed GPU-hours per subject recomputed from every interval: what the ledger keeps
    incrementally (its tests compare the two)."""
    k = math.log(2) / half_life_s
    out: dict[str, float] = {}
    for iv in intervals:
        value = decayed_gpu_hours(float(iv.gpu_units), iv.start, now if iv.end is None else iv.end, now, k)
        if value:
            out[iv.subject] = out.get(iv.subject, 0.0) + value
    return out


@dataclass(frozen=True, slots=True)
class Held:
    """One admitted allocation as usage sees it."""

    id: str
    user: str
    group: str
    slice: str
    units: Fraction
    cpu: Fraction
    memory_gib: Fraction
    kind: str  # workspace | job
    start: float  # admitted at (unix seconds)
    replicas: int = 1  # slices of `slice` held (a gang); units, cpu and memory are their sum


class Decayed:
    """A decayed quantity anchored at `at`: its `value` then, and the `rate` held since."""

    __slots__ = ("value", "rate", "at")

    def __init__(self, value: float = 0.0, rate: Fraction = Fraction(0), at: float = 0.0):
        self.value, self.rate, self.at = value, rate, at  # rate: exact, so releases return it to 0

    def value_at(self, now: float, k: float) -> float:
        dt = now - self.at
        if dt <= 0:
            return self.value
        decay = math.exp(-k * dt)
        return self.value * decay + float(self.rate) * (1.0 - decay) / k / 3600.0

    def state(self) -> tuple:
        return self.value, self.rate, self.at


class _Holding:
    """What one user holds now."""

    __slots__ = ("items", "units", "cpu", "memory_gib", "counts", "jobs", "job_cpu", "job_memory_gib")

    def __init__(self):
        self.items: dict[str, Held] = {}
        self.units = self.cpu = self.memory_gib = self.job_cpu = self.job_memory_gib = Fraction(0)
        self.counts: dict[str, int] = {}
        self.jobs = 0

    def change(self, h: Held, sign: int) -> None:
        if sign > 0:
            self.items[h.id] = h
        else:
            self.items.pop(h.id, None)
        self.units += sign * h.units
        self.cpu += sign * h.cpu
        self.memory_gib += sign * h.memory_gib
        n = self.counts.get(h.slice, 0) + sign * h.replicas
        if n:
            self.counts[h.slice] = n
        else:
            self.counts.pop(h.slice, None)
        if h.kind == "job":
            self.jobs += sign
            self.job_cpu += sign * h.cpu
            self.job_memory_gib += sign * h.memory_gib


class UsageLedger:
    def __init__(self, half_life_s: float, period_s: float):
        self.k = math.log(2) / half_life_s
        self.period_s = period_s
        self._decayed: dict[tuple[str, str], Decayed] = {}  # ("user" | "group", name) -> usage
        self._holding: dict[str, _Holding] = {}
        self._held: dict[str, Held] = {}
        #: user -> released intervals (end, start, units) that may still reach into the period, by end
        self._closed: dict[str, deque] = {}
        #: what admitted jobs hold together (the local executor's bound)
        self.job_cpu = Fraction(0)
        self.job_memory_gib = Fraction(0)
        #: bumped on every admission and release (what is computed from usage may be kept until then)
        self.version = 0

    # -- changes -----------------------------------------------------------

    def _move(self, subject: tuple[str, str], now: float, rate_change: Fraction) -> None:
        d = self._decayed.get(subject)
        if d is None:
            d = self._decayed[subject] = Decayed(0.0, Fraction(0), now)
        else:
            d.value = d.value_at(now, self.k)
            d.at = max(d.at, now)
        d.rate += rate_change

    def _states(self, h: Held):
        return [(s, self._decayed[s].state() if s in self._decayed else None)
                for s in (("user", h.user), ("group", h.group))]

    def _restore(self, states) -> None:
        for subject, state in states:
            if state is None:
                self._decayed.pop(subject, None)
            else:
                d = self._decayed.setdefault(subject, Decayed())
                d.value, d.rate, d.at = state

    def _change_holding(self, h: Held, sign: int) -> None:
        self.version += 1
        holding = self._holding.get(h.user)
        if holding is None:
            holding = self._holding[h.user] = _Holding()
        holding.change(h, sign)
        if not holding.items:
            del self._holding[h.user]
        if h.kind == "job":
            self.job_cpu += sign * h.cpu
            self.job_memory_gib += sign * h.memory_gib

    def hold(self, h: Held, now: float):
        """`h` is admitted (its usage runs from `h.start`); returns the undo."""
        states = self._states(h)
        units = float(h.units)
        for subject in (("user", h.user), ("group", h.group)):
            self._move(subject, now, h.units)
            if units and h.start < now:  # admitted before now (the ledger rebuilt at start): what it used since
                self._decayed[subject].value += decayed_gpu_hours(units, h.start, now, now, self.k)
        self._held[h.id] = h
        self._change_holding(h, +1)

        def undo():
            self._restore(states)
            self._held.pop(h.id, None)
            self._change_holding(h, -1)

        return undo

    def release(self, allocation_id: str, now: float):
        """The allocation ends at `now`; returns the undo (None when it was not held)."""
        h = self._held.pop(allocation_id, None)
        if h is None:
            return None
        states = self._states(h)
        for subject in (("user", h.user), ("group", h.group)):
            self._move(subject, now, -h.units)
        self._change_holding(h, -1)
        closed = self._closed.setdefault(h.user, deque())
        closed.append((now, h.start, float(h.units)))

        def undo():
            self._restore(states)
            closed.pop()
            self._held[h.id] = h
            self._change_holding(h, +1)

        return undo

    def add_past(self, subject_kind: str, name: str, value: float, now: float) -> None:
        """Add usage that ended before the ledger was built (its decayed value at `now`)."""
        d = self._decayed.get((subject_kind, name))
        if d is None:
            d = self._decayed[(subject_kind, name)] = Decayed(0.0, Fraction(0), now)
        d.value = d.value_at(now, self.k) + value
        d.at = max(d.at, now)

    # -- reading -------------------------------------------------------------

    def decayed(self, subject_kind: str, name: str, now: float) -> float:
        d = self._decayed.get((subject_kind, name))
        return 0.0 if d is None else d.value_at(now, self.k)

    def held_units(self, subject_kind: str, name: str) -> float:
        d = self._decayed.get((subject_kind, name))
        return 0.0 if d is None else float(d.rate)

    def fair_value(self, subject_kind: str, name: str, now: float, charge_hours: float) -> float:
        """One subject's usage as the fair order weighs it (see `fair_usage`); 0 when it has none."""
        d = self._decayed.get((subject_kind, name))
        return 0.0 if d is None else d.value_at(now, self.k) + float(d.rate) * charge_hours

    def fair_usage(self, groups, users, now: float, charge_hours: float) -> tuple[dict, dict]:
        """(group, user) usage as the fair order weighs it: decayed GPU-hours plus what is held now
        counted as `charge_hours` more of it (`cycle.committed_usage`), for these groups and users."""
        out = []
        for kind, names in (("group", groups), ("user", users)):
            values = {}
            for name in names:
                d = self._decayed.get((kind, name))
                if d is not None:
                    values[name] = d.value_at(now, self.k) + float(d.rate) * charge_hours
            out.append(values)
        return out[0], out[1]

    def gpu_hours(self, user: str, now: float) -> float:
        """GPU-hours of `user` in the rolling period that ends at `now`."""
        since = now - self.period_s
        total = 0.0
        closed = self._closed.get(user)
        if closed:
            while closed and closed[0][0] <= since:
                closed.popleft()
            for end, start, units in closed:
                total += gpu_hours(units, max(start, since), end)
            if not closed:
                del self._closed[user]
        holding = self._holding.get(user)
        if holding is not None:
            for h in holding.items.values():
                total += gpu_hours(float(h.units), max(h.start, since), now)
        return total

    def all_gpu_hours(self, now: float) -> dict[str, float]:
        """Every user with GPU-hours in the period -> those hours."""
        out = {}
        for user in set(self._closed) | set(self._holding):
            hours = self.gpu_hours(user, now)
            if hours > 0:
                out[user] = hours
        return out

    def usage(self, user: str, now: float, *, with_hours: bool = True) -> Usage:
        """What `user` holds now, and their GPU-hours in the period (exact Fractions, as `check` wants)."""
        hours = Fraction(self.gpu_hours(user, now)) if with_hours else Fraction(0)
        holding = self._holding.get(user)
        if holding is None:
            return Usage(gpu_hours=hours)
        return Usage(gpu_units=holding.units, cpu=holding.cpu, memory_gib=holding.memory_gib,
                     servers=len(holding.items), gpu_hours=hours, profile_counts=dict(holding.counts))

    def running_jobs(self, user: str) -> int:
        holding = self._holding.get(user)
        return 0 if holding is None else holding.jobs

    def running_jobs_by_user(self) -> dict[str, int]:
        return {u: h.jobs for u, h in self._holding.items() if h.jobs}

    def is_held(self, allocation_id: str) -> bool:
        return allocation_id in self._held


def rebuild(half_life_s: float, period_s: float, held: list[Held], released: list[tuple], now: float) -> UsageLedger:
    """The ledger at `now` from history: `held` (admitted now) and `released` intervals
    (user, group, units, start, end), as if every change had been fed to it as it happened."""
    ledger = UsageLedger(half_life_s, period_s)
    since = now - period_s
    for user, group, units, start, end in sorted(released, key=lambda r: r[4]):
        end = min(end, now)  # a ledger of a past moment: what ran on after it counts up to it
        if end <= start:
            continue
        value = decayed_gpu_hours(units, start, end, now, ledger.k)
        ledger.add_past("user", user, value, now)
        ledger.add_past("group", group, value, now)
        if end > since:
            ledger._closed.setdefault(user, deque()).append((end, start, units))
    for h in held:
        if h.start is not None and h.start < now:
            ledger.hold(h, now)
    return ledger
