"""How pages show values to people (pure): times as `<time>` elements, dicts as words, job reasons.

The browser turns every `<time datetime=...>` into a relative or local time (nav.html's script,
which follows `relative` here); the exact UTC time stays in the element's title, shown on hover.
"""
from __future__ import annotations

from datetime import datetime, timezone
from html import escape

from markupsafe import Markup


def parse_time(value) -> datetime | None:
    """An aware UTC datetime from a datetime (naive = UTC), an ISO 8601 string or epoch seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, timezone.utc)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def exact_utc(value) -> str:
    """'2026-12-01 18:23:48 UTC' (seconds, no fraction); '' for no time."""
    dt = parse_time(value)
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC") if dt else ""


def iso_z(value) -> str:
    dt = parse_time(value)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt else ""


_UNITS = ((365 * 86400, "year"), (30 * 86400, "month"), (7 * 86400, "week"), (86400, "day"), (3600, "hour"),
          (60, "minute"), (1, "second"))


def relative(seconds: float) -> str:
    """A difference in seconds (negative: past) in words: 'just now', '3 minutes ago', 'in 2 hours'."""
    ago = seconds <= 0
    n = abs(seconds)
    if n < 45:
        return "just now" if ago else "in a few seconds"
    for size, unit in _UNITS:
        if n >= size * 0.9 or unit == "second":
            count = max(1, int(n / size + 0.5))  # as JavaScript's Math.round (2.5 -> 3)
            words = f"{count} {unit}{'' if count == 1 else 's'}"
            return f"{words} ago" if ago else f"in {words}"
    return ""  # not reached


def time_tag(value, empty: str = "-") -> Markup:
    """`<time datetime="...Z" title="exact UTC">exact UTC</time>`; the page's script makes it human."""
    dt = parse_time(value)
    if dt is None:
        return Markup(escape(empty))
    exact = exact_utc(dt)
    return Markup(f'<time datetime="{iso_z(dt)}" title="{exact}">{exact}</time>')


def duration(seconds: float | None) -> str:
    """'45 s', '12 min 5 s', '3 h 20 min', '2 d 4 h'."""
    if seconds is None:
        return "-"
    s = int(round(max(0.0, float(seconds))))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min" + (f" {s % 60} s" if s % 60 else "")
    if s < 86400:
        return f"{s // 3600} h" + (f" {s % 3600 // 60} min" if s % 3600 // 60 else "")
    return f"{s // 86400} d" + (f" {s % 86400 // 3600} h" if s % 86400 // 3600 else "")


def _number(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


#: the words for quota dimensions and job fields people see in tables
LABELS = {"gpu_units": "GPU units", "cpu": "CPU cores", "memory_gib": "memory (GiB)", "memory": "memory",
          "storage_gib": "storage (GiB)", "servers": "servers", "gpu_hours": "GPU-hours", "jobs": "jobs"}


def pairs(value, empty: str = "-") -> str:
    """A dict as 'GPU units 0.5, CPU cores 4' (nested values in the same words), never JSON."""
    if value is None or value == {} or value == []:
        return empty
    if isinstance(value, dict):
        return ", ".join(f"{LABELS.get(k, str(k).replace('_', ' '))} {pairs(v, empty)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(pairs(v, empty) for v in value)
    return _number(value)


#: notes meant for whoever runs the server (how limits are enforced on this host), not for a job's owner
_ADMIN_NOTES = ("cgroup", "limits are not enforced", "JobsConfig", "enforce_limits")


def user_reason(reason: str | None) -> str:
    """A job's reason for its owner: server-admin notes dropped, first letter capitalised, a full stop."""
    if not reason:
        return ""
    parts = [p.strip() for p in reason.split("; ")]
    kept = [p for p in parts if p and not any(note in p for note in _ADMIN_NOTES)]
    text = "; ".join(kept)
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", ")", "!", "?")) else text + "."


def admin_notes(reason: str | None) -> str:
    """What user_reason drops: the server-admin part of a reason ('' when none)."""
    if not reason:
        return ""
    return "; ".join(p.strip() for p in reason.split("; ") if any(note in p for note in _ADMIN_NOTES))


def install(env) -> None:
    """The filters every AstraGo template may use."""
    env.filters.update(when=time_tag, exact=exact_utc, pairs=pairs, duration=duration, reason=user_reason,
                       admin_notes=admin_notes)
