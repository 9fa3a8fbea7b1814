"""When a job definition runs next (pure): a cron expression in an IANA time zone."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .spec import SpecError


def check_schedule(expression: str, tz: str) -> None:
    """Raise SpecError unless `expression` is a 5-field cron expression and `tz` a time zone."""
    from croniter import croniter

    if not isinstance(expression, str) or len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise SpecError("schedule", f"schedule must be a cron expression like '0 3 * * *' (5 fields), "
                        f"not {expression!r}.")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise SpecError("timezone", f"{tz!r} is not a time zone name like Europe/Berlin or UTC.") from None


def next_run(expression: str, tz: str, after: datetime) -> datetime:
    """The first time strictly after `after` (naive UTC) the schedule fires, as naive UTC.

    The expression is read in `tz`, so '0 3 * * *' in Europe/Berlin is 03:00 Berlin time
    in summer and in winter.
    """
    from croniter import croniter

    zone = ZoneInfo(tz)
    local = after.replace(tzinfo=timezone.utc).astimezone(zone)
    fire = croniter(expression, local).get_next(datetime)
    return fire.astimezone(timezone.utc).replace(tzinfo=None)
