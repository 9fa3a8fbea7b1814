"""Quota limits, the effective-quota rule and the quota check (pure, exact arithmetic).

GPU units are Fractions (DESIGN.md: a whole GPU is 1, a MIG slice its compute
slices over the GPU's total, an MPS share its percentage / 100), so 7 x 1g on a
7-slice GPU is exactly 1 and never 0.9999.

Effective quota of a user, per dimension (documented in docs/quota.md):
1. the user's own quota, where it sets that dimension (an override, even if lower);
2. else the most generous of the user's groups' quotas that set it (unset = not considered);
3. else the default quota;
4. else unlimited.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from fractions import Fraction

#: dimension -> (unit, what it counts)
DIMENSIONS = {
    "gpu_units": ("GPU units", "GPU units held at once"),
    "cpu": ("cores", "CPU cores held at once"),
    "memory_gib": ("GiB", "memory held at once"),
    "storage_gib": ("GiB", "storage used"),
    "servers": ("servers", "running servers and jobs"),
    "gpu_hours": ("GPU-hours", "GPU-hours in the rolling period"),
    "queued_jobs": ("jobs", "jobs waiting to run (CREATED or QUEUED)"),
    "running_jobs": ("jobs", "jobs running at once"),
}

#: what a user may have of jobs when no quota sets it: no user floods the machine by default
#: (an administrator raises them per user, group or in the default quota)
DEFAULT_QUEUED_JOBS = 20
DEFAULT_RUNNING_JOBS = 8


def queued_jobs_limit(limits: "QuotaLimits") -> int:
    return DEFAULT_QUEUED_JOBS if limits.queued_jobs is None else limits.queued_jobs


def running_jobs_limit(limits: "QuotaLimits") -> int:
    return DEFAULT_RUNNING_JOBS if limits.running_jobs is None else limits.running_jobs


def as_fraction(value) -> Fraction:
    if isinstance(value, Fraction):
        return value
    if isinstance(value, float):
        return Fraction(value).limit_denominator(1000)
    return Fraction(value)


@dataclass(frozen=True)
class QuotaLimits:
    """Limits of one subject; None means the subject does not set that dimension."""

    gpu_units: Fraction | None = None
    cpu: Fraction | None = None
    memory_gib: Fraction | None = None
    storage_gib: Fraction | None = None
    servers: int | None = None
    gpu_hours: Fraction | None = None
    gpu_hours_period_days: int | None = None
    profile_caps: dict = field(default_factory=dict)  # slice name -> max held at once
    allowed_slices: tuple | None = None  # slice names this subject may use (None: all)
    queued_jobs: int | None = None  # jobs waiting at once (None here: DEFAULT_QUEUED_JOBS in the end)
    running_jobs: int | None = None  # jobs running at once (None here: DEFAULT_RUNNING_JOBS in the end)

    @classmethod
    def from_dict(cls, data: dict | None) -> "QuotaLimits":
        data = data or {}
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown quota dimension(s): {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(f.name for f in fields(cls))}")
        values = {}
        for f in fields(cls):
            if f.name not in data or data[f.name] is None:
                continue
            raw = data[f.name]
            if f.name == "allowed_slices":
                if not isinstance(raw, (list, tuple)) or not all(isinstance(x, str) for x in raw):
                    raise ValueError("allowed_slices must be a list of slice names")
                values[f.name] = tuple(sorted(set(raw)))
            elif f.name == "profile_caps":
                if not isinstance(raw, dict):
                    raise ValueError("profile_caps must be an object of slice name -> count")
                caps = {}
                for k, v in raw.items():
                    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                        raise ValueError(f"profile cap of {k} must be a whole number >= 0")
                    caps[str(k)] = v
                values[f.name] = caps
            elif f.name in ("servers", "gpu_hours_period_days", "queued_jobs", "running_jobs"):
                if not isinstance(raw, int) or isinstance(raw, bool) or raw < 0:
                    raise ValueError(f"{f.name} must be a whole number >= 0")
                values[f.name] = raw
            else:
                if isinstance(raw, bool):
                    raise ValueError(f"{f.name} must be a number >= 0")
                try:
                    num = as_fraction(raw if not isinstance(raw, str) else Fraction(raw))
                except (ValueError, ZeroDivisionError, TypeError):
                    raise ValueError(f"{f.name} must be a number >= 0, not {raw!r}") from None
                if num < 0:
                    raise ValueError(f"{f.name} must be a number >= 0")
                values[f.name] = num
        return cls(**values)

    def to_dict(self) -> dict:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "profile_caps":
                if v:
                    out[f.name] = dict(v)
            elif f.name == "allowed_slices":
                if v is not None:
                    out[f.name] = list(v)
            elif v is not None:
                out[f.name] = float(v) if isinstance(v, Fraction) else v
        return out


def _allowed(user, groups, default):
    """Same rule as the other dimensions; "most generous" of lists is their union."""
    if user is not None and user.allowed_slices is not None:
        return user.allowed_slices
    lists = [g.allowed_slices for g in groups if g.allowed_slices is not None]
    if lists:
        return tuple(sorted(set().union(*lists)))
    return default.allowed_slices if default is not None else None


def _more_generous(a, b):
    return a if b is None else b if a is None else max(a, b)


def effective_quota(user: QuotaLimits | None, groups: list[QuotaLimits], default: QuotaLimits | None) -> QuotaLimits:
    """The rule in this module's docstring, dimension by dimension."""
    values = {}
    for f in fields(QuotaLimits):
        name = f.name
        if name == "profile_caps":
            caps: dict = {}
            for g in groups:
                for k, v in g.profile_caps.items():
                    caps[k] = _more_generous(caps.get(k), v)
            if not caps and default is not None:
                caps = dict(default.profile_caps)
            if user is not None:
                caps.update(user.profile_caps)
            values[name] = caps
            continue
        if name == "allowed_slices":
            values[name] = _allowed(user, groups, default)
            continue
        chosen = getattr(user, name) if user is not None else None
        if chosen is None:
            group_values = [getattr(g, name) for g in groups if getattr(g, name) is not None]
            if group_values:
                chosen = max(group_values)
        if chosen is None and default is not None:
            chosen = getattr(default, name)
        values[name] = chosen
    return QuotaLimits(**values)


@dataclass(frozen=True)
class Usage:
    """What a user holds now (and has used in the period)."""

    gpu_units: Fraction = Fraction(0)
    cpu: Fraction = Fraction(0)
    memory_gib: Fraction = Fraction(0)
    storage_gib: Fraction = Fraction(0)
    servers: int = 0
    gpu_hours: Fraction = Fraction(0)
    profile_counts: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    slice_name: str
    gpu_units: Fraction
    cpu: Fraction = Fraction(0)
    memory_gib: Fraction = Fraction(0)
    count: int = 1  # slices of `slice_name` (a gang's replicas); the units, cpu and memory are their sum


@dataclass(frozen=True)
class Exceeded:
    dimension: str
    limit: Fraction | int
    used: Fraction | int
    requested: Fraction | int

    @property
    def left(self):
        return max(self.limit - self.used, 0)

    def sentence(self) -> str:
        unit = DIMENSIONS.get(self.dimension, ("", ""))[0] if not self.dimension.startswith("slice:") else "slices"
        what = self.dimension if not self.dimension.startswith("slice:") else f"{self.dimension[6:]} slices"
        return (f"Over your {what} quota: you asked for {_fmt(self.requested)} {unit}, "
                f"{_fmt(self.left)} of {_fmt(self.limit)} left ({_fmt(self.used)} in use).")

    def to_dict(self) -> dict:
        return {"dimension": self.dimension, "limit": _num(self.limit), "used": _num(self.used),
                "requested": _num(self.requested), "left": _num(self.left)}


def _num(v):
    return float(v) if isinstance(v, Fraction) else v


def _fmt(v) -> str:
    if isinstance(v, Fraction):
        return f"{float(v):.2f}".rstrip("0").rstrip(".") if v.denominator != 1 else str(v.numerator)
    return str(v)


def check(limits: QuotaLimits, usage: Usage, request: Request) -> list[Exceeded]:
    """Every dimension the request would take over its limit (empty: within quota)."""
    over = []

    def consider(dimension, limit, used, wanted):
        if limit is not None and wanted > 0 and used + wanted > limit:
            over.append(Exceeded(dimension, limit, used, wanted))

    consider("gpu_units", limits.gpu_units, usage.gpu_units, request.gpu_units)
    consider("cpu", limits.cpu, usage.cpu, request.cpu)
    consider("memory_gib", limits.memory_gib, usage.memory_gib, request.memory_gib)
    consider("servers", limits.servers, usage.servers, 1)
    if limits.gpu_hours is not None and request.gpu_units > 0 and usage.gpu_hours >= limits.gpu_hours:
        over.append(Exceeded("gpu_hours", limits.gpu_hours, usage.gpu_hours, Fraction(0)))
    if limits.allowed_slices is not None and request.slice_name not in limits.allowed_slices:
        over.append(Exceeded(f"slice:{request.slice_name}", 0, 0, 1))
        return over
    cap = limits.profile_caps.get(request.slice_name)
    if cap is not None:
        consider(f"slice:{request.slice_name}", cap, usage.profile_counts.get(request.slice_name, 0), request.count)
    return over


def remaining(limits: QuotaLimits, usage: Usage) -> dict:
    """What is left per dimension (None: unlimited), for pages and the options form."""
    out = {}
    for name in ("gpu_units", "cpu", "memory_gib", "storage_gib", "servers", "gpu_hours"):
        limit = getattr(limits, name)
        out[name] = None if limit is None else _num(max(limit - getattr(usage, name), 0))
    return out


def with_overrides(base: QuotaLimits, **changes) -> QuotaLimits:
    return replace(base, **changes)
