"""The idle-GPU rules (pure): given what each workspace's slice did, when to warn and when to stop.

No clock, no I/O: `step(tracks, candidates, now, policy)` takes the state of the previous round
and this round's readings and returns the new state and the actions to take. The monitor calls
it every sample with the wall clock; tests call it with a simulated one.

A workspace (never a job: jobs end by themselves) holding GPU units is *idle* while its slice
is under `idle_threshold_percent` busy. Rules:

- the idle streak starts at the first idle reading; a busy reading ends it; a gap in readings
  longer than `max_gap_seconds` ends it too (no reading is "unknown", never "idle");
- idle for `idle_hours` -> **warn** (banner, notification hook), stop due `grace_hours` later;
- still the same idle streak when the stop is due -> **reclaim** (stop the server, release the
  allocation);
- busy again (or the streak broken) after a warning -> **withdraw** the warning;
- members of an exempt group are never warned nor stopped (a pending warning is withdrawn);
- `dry_run`: the same decisions, marked dry run — the actions only audit what would happen.
  Switching dry run off starts over: nobody is stopped without a real warning first.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping
from urllib.parse import urlparse

WATCHING, WARNED, RECLAIMED, EXEMPT = "watching", "warned", "reclaimed", "exempt"
#: a real stop that did not take (the allocation is still there) is tried again after this long
RETRY_SECONDS = 600.0


@dataclass(frozen=True)
class Policy:
    enabled: bool = True
    dry_run: bool = True
    idle_threshold_percent: float = 5.0
    idle_hours: float = 4.0
    grace_hours: float = 1.0
    exempt_groups: tuple[str, ...] = ()
    max_gap_seconds: float = 600.0
    webhook_url: str = ""

    @property
    def idle_seconds(self) -> float:
        return self.idle_hours * 3600.0

    @property
    def grace_seconds(self) -> float:
        return self.grace_hours * 3600.0

    def to_dict(self) -> dict:
        return {"enabled": self.enabled, "dry_run": self.dry_run,
                "idle_threshold_percent": self.idle_threshold_percent, "idle_hours": self.idle_hours,
                "grace_hours": self.grace_hours, "exempt_groups": list(self.exempt_groups),
                "max_gap_seconds": self.max_gap_seconds, "webhook_url": self.webhook_url}

    @classmethod
    def from_dict(cls, data: Mapping, base: "Policy | None" = None) -> "Policy":
        """A policy from `data` (only the keys it sets change `base`); ValueError says what is wrong."""
        base = base or cls()
        known = set(base.to_dict())
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown policy setting(s): {', '.join(sorted(unknown))}; known: "
                             f"{', '.join(sorted(known))}")
        values = base.to_dict()
        for key in ("enabled", "dry_run"):
            if key in data:
                if not isinstance(data[key], bool):
                    raise ValueError(f"{key} must be true or false")
                values[key] = data[key]
        for key, low, high, low_open in (("idle_threshold_percent", 0, 100, True), ("idle_hours", 0, 24 * 365, True),
                                         ("grace_hours", 0, 24 * 365, False), ("max_gap_seconds", 0, 86400 * 7, True)):
            if key in data:
                v = data[key]
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ValueError(f"{key} must be a number")
                if (v <= low if low_open else v < low) or v > high:
                    raise ValueError(f"{key} must be {'over' if low_open else 'at least'} {low} and at most {high}")
                values[key] = float(v)
        if "exempt_groups" in data:
            groups = data["exempt_groups"]
            if not isinstance(groups, (list, tuple)) or not all(isinstance(g, str) and g for g in groups):
                raise ValueError("exempt_groups must be a list of group names")
            values["exempt_groups"] = sorted(set(groups))
        if "webhook_url" in data:
            url = data["webhook_url"]
            if not isinstance(url, str) or (url and urlparse(url).scheme not in ("http", "https")):
                raise ValueError("webhook_url must be an http(s) URL, or empty for none")
            values["webhook_url"] = url
        values["exempt_groups"] = tuple(values["exempt_groups"])
        return cls(**values)


@dataclass(frozen=True)
class Candidate:
    """An admitted allocation and this round's reading of its slice."""

    allocation_id: str
    user: str
    groups: tuple[str, ...]
    owner_kind: str  # workspace | job
    owner_id: str  # "<user>/<server name>" for a workspace
    slice: str
    gpu_units: float
    utilization: float | None  # ratio in [0, 1]; None: no reading this round


@dataclass(frozen=True)
class Track:
    """What the rules remember about one allocation between rounds."""

    allocation_id: str
    user: str
    owner_id: str
    slice: str
    state: str = WATCHING
    idle_since: float | None = None
    last_reading_at: float | None = None
    last_utilization: float | None = None
    warned_at: float | None = None
    reclaim_at: float | None = None
    acted_at: float | None = None
    dry_run: bool = False  # the warning / stop in `state` was a dry run

    def idle_for(self, now: float) -> float:
        return 0.0 if self.idle_since is None else max(0.0, now - self.idle_since)


@dataclass(frozen=True)
class Action:
    kind: str  # warn | withdraw | reclaim
    allocation_id: str
    user: str
    owner_id: str
    slice: str
    at: float
    idle_since: float | None
    reclaim_at: float | None
    dry_run: bool
    reason: str = ""
    detail: dict = field(default_factory=dict, compare=False)


def _action(kind: str, t: Track, now: float, dry_run: bool, reason: str) -> Action:
    return Action(kind, t.allocation_id, t.user, t.owner_id, t.slice, now, t.idle_since, t.reclaim_at, dry_run, reason)


def _hours(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def step(tracks: Mapping[str, Track], candidates: Iterable[Candidate], now: float,
         policy: Policy) -> tuple[dict[str, Track], list[Action]]:
    """One round of the rules. Returns (tracks of this round's candidates, actions to take)."""
    new: dict[str, Track] = {}
    actions: list[Action] = []
    threshold = policy.idle_threshold_percent / 100.0
    exempt_groups = set(policy.exempt_groups)
    for c in sorted(candidates, key=lambda c: c.allocation_id):
        if c.owner_kind != "workspace" or c.gpu_units <= 0:
            continue
        old = tracks.get(c.allocation_id) or Track(c.allocation_id, c.user, c.owner_id, c.slice)
        t = old
        # 1. the idle streak
        if c.utilization is not None:
            continuous = t.last_reading_at is not None and now - t.last_reading_at <= policy.max_gap_seconds
            if c.utilization < threshold:
                idle_since = t.idle_since if (continuous and t.idle_since is not None) else now
            else:
                idle_since = None
            t = replace(t, idle_since=idle_since, last_reading_at=now, last_utilization=c.utilization)
        elif t.last_reading_at is None or now - t.last_reading_at > policy.max_gap_seconds:
            t = replace(t, idle_since=None)
        # 2. exemptions and switches
        if exempt_groups & set(c.groups):
            if t.state == WARNED:
                actions.append(_action("withdraw", t, now, t.dry_run, "the user's group is exempt"))
            new[c.allocation_id] = replace(t, state=EXEMPT, warned_at=None, reclaim_at=None, dry_run=False)
            continue
        if t.state == EXEMPT:
            t = replace(t, state=WATCHING)
        if not policy.enabled:
            if t.state == WARNED:
                actions.append(_action("withdraw", t, now, t.dry_run, "idle-GPU reclaim was switched off"))
            new[c.allocation_id] = replace(t, state=WATCHING, warned_at=None, reclaim_at=None, dry_run=False)
            continue
        if t.state in (WARNED, RECLAIMED) and t.dry_run != policy.dry_run:
            if t.state == WARNED and not t.dry_run:
                actions.append(_action("withdraw", t, now, False, "dry run was switched on"))
            t = replace(t, state=WATCHING, warned_at=None, reclaim_at=None, acted_at=None, dry_run=policy.dry_run)
        # 3. the state machine
        if t.state == WARNED and (t.idle_since is None or t.idle_since != old.idle_since):
            busy = t.last_utilization is not None and t.last_utilization >= threshold and t.last_reading_at == now
            actions.append(_action("withdraw", t, now, t.dry_run,
                                   "the slice is busy again" if busy else "its readings were interrupted"))
            t = replace(t, state=WATCHING, warned_at=None, reclaim_at=None)
        if t.state == RECLAIMED and t.idle_since is None:
            t = replace(t, state=WATCHING, warned_at=None, reclaim_at=None, acted_at=None)
        if t.state == WATCHING and t.idle_since is not None and t.idle_for(now) >= policy.idle_seconds:
            t = replace(t, state=WARNED, warned_at=now, reclaim_at=now + policy.grace_seconds, dry_run=policy.dry_run)
            actions.append(_action("warn", t, now, policy.dry_run,
                                   f"under {policy.idle_threshold_percent:g}% busy for {_hours(t.idle_for(now))}"))
        if t.state == WARNED and now >= t.reclaim_at:
            t = replace(t, state=RECLAIMED, acted_at=now)
            actions.append(_action("reclaim", t, now, policy.dry_run,
                                   f"under {policy.idle_threshold_percent:g}% busy for {_hours(t.idle_for(now))}"))
        elif (t.state == RECLAIMED and not t.dry_run and t.acted_at is not None
              and now - t.acted_at >= RETRY_SECONDS):
            t = replace(t, acted_at=now)
            actions.append(_action("reclaim", t, now, False, "the previous stop did not take; trying again"))
        new[c.allocation_id] = t
    return new, actions
