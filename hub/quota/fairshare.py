"""Fair-share ordering of the queue (pure).

Kueue-style: a group's share is its decayed past usage (GPU-hours, halving every
`half_life`) divided by its weight; the group furthest below its share goes
first, then the user with the least decayed usage, then first come first served
(so one user's requests stay in the order they were made).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

DEFAULT_HALF_LIFE_S = 7 * 24 * 3600.0


@dataclass(frozen=True)
class Interval:
    """One allocation's use of GPU units from `start` to `end` (None: still held). Seconds."""

    subject: str
    gpu_units: Fraction
    start: float
    end: float | None


def decayed_gpu_hours(intervals, now: float, half_life_s: float = DEFAULT_HALF_LIFE_S) -> dict[str, float]:
    """Per subject: the integral of units x 2^-(age/half_life) over time, in GPU-hours."""
    k = math.log(2) / half_life_s
    out: dict[str, float] = {}
    for iv in intervals:
        end = now if iv.end is None else min(iv.end, now)
        if end <= iv.start:
            continue
        # integral of exp(-k (now - t)) dt from start to end
        weight = (math.exp(-k * (now - end)) - math.exp(-k * (now - iv.start))) / k
        out[iv.subject] = out.get(iv.subject, 0.0) + float(iv.gpu_units) * weight / 3600.0
    return out


@dataclass(frozen=True)
class Waiting:
    """A queued request as the ordering sees it."""

    id: str
    user: str
    group: str  # the accounting group ("" when none)
    created: float
    priority: int = 0


def fair_order(waiting, group_usage: dict[str, float], user_usage: dict[str, float],
               weights: dict[str, float]) -> list[Waiting]:
    """The queue in the order it is served."""

    def key(w: Waiting):
        weight = weights.get(w.group, 1.0) or 1.0
        return (group_usage.get(w.group, 0.0) / weight, user_usage.get(w.user, 0.0), -w.priority, w.created, w.id)

    return sorted(waiting, key=key)


def accounting_group(groups: list[str], weights: dict[str, float]) -> str:
    """The group a user's usage is charged to: the first (by name) that has a weight, else the first."""
    weighted = sorted(g for g in groups if g in weights)
    if weighted:
        return weighted[0]
    return sorted(groups)[0] if groups else ""
