"""Scheduled-action schedules as AWS writes them — ``at(…)``, ``rate(…)``, ``cron(…)`` — as pure functions.

``at`` and ``cron`` are calendar times in the action's time zone and stay on the wall clock; ``rate``
intervals are durations, so they shrink with the cloud's time scale like every other simulated minute.
A cron expression has AWS's six fields (minutes, hours, day of month, month, day of week, year) with
``*``, ``?``, lists, ranges, steps and month/day names; one of the two day fields must be ``?``. The
``L``, ``W`` and ``#`` forms are refused rather than half supported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_AT = re.compile(r"at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)")
_RATE = re.compile(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)")
_CRON = re.compile(r"cron\(([^)]*)\)")
_UNIT_S = {"minute": 60, "hour": 3600, "day": 86_400}
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1
    )
}
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], 1)}
# (low, high, names) per cron field, in AWS's order
_FIELDS = ((0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, _MONTHS), (1, 7, _DAYS), (1970, 2199, {}))


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True)
class Schedule:
    kind: str  # "at" | "rate" | "cron"
    at: datetime | None = None  # naive, in the action's time zone
    every_s: int | None = None  # simulated seconds
    fields: tuple[frozenset[int] | None, ...] = ()  # cron: allowed values per field; None: any


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"Time zone {name} is not a valid IANA time zone.") from None


def parse(expression: str) -> Schedule:
    text = expression.strip()
    if match := _AT.fullmatch(text):
        try:
            return Schedule("at", at=datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S"))
        except ValueError:
            raise ScheduleError(f"The at expression {expression} is not a valid date and time.") from None
    if match := _RATE.fullmatch(text):
        value, unit = int(match.group(1)), match.group(2).rstrip("s")
        if value < 1:
            raise ScheduleError("A rate expression needs a positive value.")
        if (value == 1) != (match.group(2) == unit):
            raise ScheduleError(f"Use '{value} {unit}{'' if value == 1 else 's'}' in a rate expression.")
        return Schedule("rate", every_s=value * _UNIT_S[unit])
    if match := _CRON.fullmatch(text):
        parts = match.group(1).split()
        if len(parts) != 6:
            raise ScheduleError(
                "A cron expression has six fields: minutes hours day-of-month month day-of-week year."
            )
        if (parts[2] == "?") == (parts[4] == "?"):
            raise ScheduleError(
                "In a cron expression exactly one of day-of-month and day-of-week must be '?'."
            )
        fields = tuple(_field(part, *spec) for part, spec in zip(parts, _FIELDS, strict=True))
        return Schedule("cron", fields=fields)
    raise ScheduleError(
        f"Schedule {expression} is not valid: use at(yyyy-mm-ddThh:mm:ss), rate(value unit) or cron(fields)."
    )


def _field(text: str, low: int, high: int, names: dict[str, int]) -> frozenset[int] | None:
    if text in ("*", "?"):
        return None
    values: set[int] = set()
    for item in text.split(","):
        if any(mark in item.upper() for mark in ("L", "W", "#")) and not _named(item, names):
            raise ScheduleError(
                f"Kennel does not support the cron form '{item}' (L, W and # are not supported)."
            )
        body, _, step_text = item.partition("/")
        step = _number(step_text, 1, high, {}) if step_text else 1
        if body == "*":
            first, last = low, high
        elif "-" in body:
            a, b = body.split("-", 1)
            first, last = _number(a, low, high, names), _number(b, low, high, names)
        else:
            first = _number(body, low, high, names)
            last = high if step_text else first
        if first > last:
            raise ScheduleError(f"The cron range '{item}' runs backwards.")
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _named(item: str, names: dict[str, int]) -> bool:
    return all(part.upper() in names for part in re.split(r"[-/,]", item) if part and not part.isdigit())


def _number(text: str, low: int, high: int, names: dict[str, int]) -> int:
    value = names.get(text.upper()) if names else None
    if value is None:
        if not text.isdigit():
            raise ScheduleError(f"'{text}' is not a valid cron value.")
        value = int(text)
    if not low <= value <= high:
        raise ScheduleError(f"The cron value {text} is outside {low}-{high}.")
    return value


def cron_matches(schedule: Schedule, moment: datetime) -> bool:
    """Whether the minute containing ``moment`` (local time) is one the cron expression names."""
    minute, hour, dom, month, dow, year = schedule.fields
    aws_dow = (moment.weekday() + 1) % 7 + 1  # AWS counts SUN=1 … SAT=7
    checks = (
        (minute, moment.minute),
        (hour, moment.hour),
        (month, moment.month),
        (year, moment.year),
        (dom, moment.day),
        (dow, aws_dow),
    )
    return all(allowed is None or value in allowed for allowed, value in checks)


def due(
    schedule: Schedule,
    tz: ZoneInfo,
    *,
    now: float,
    last_run: float | None,
    created: float,
    start: float | None = None,
    end: float | None = None,
    time_factor: float = 1.0,
) -> bool:
    """Whether the action should run at ``now``; ``time_factor`` is real seconds per simulated second."""
    if (start is not None and now < start) or (end is not None and now > end):
        return False
    if schedule.kind == "at":
        assert schedule.at is not None
        return last_run is None and now >= schedule.at.replace(tzinfo=tz).timestamp()
    if schedule.kind == "rate":
        assert schedule.every_s is not None
        origin = last_run if last_run is not None else (start if start is not None else created)
        return now >= origin + schedule.every_s * time_factor
    local = datetime.fromtimestamp(now, UTC).astimezone(tz)
    if last_run is not None:
        previous = datetime.fromtimestamp(last_run, UTC).astimezone(tz)
        if previous.replace(second=0, microsecond=0) == local.replace(second=0, microsecond=0):
            return False  # already ran in this minute
    return cron_matches(schedule, local)
