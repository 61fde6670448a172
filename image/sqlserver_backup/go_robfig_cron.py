"""robfig/cron v3.0.1's standard parser (cron.ParseStandard) and the
schedules it returns (SpecSchedule, ConstantDelaySchedule), the version
gocron v1.18.0 uses in GoBackup v3.1.1.

Five fields (minute hour day-of-month month day-of-week) with names, `?`,
ranges and steps; the descriptors `@daily` and friends; `@every <duration>`;
a `TZ=`/`CRON_TZ=` prefix. Next() follows robfig's walk field by field,
including its handling of wall times that a DST change skips or repeats.
Tested against robfig/cron itself (tests/standins/cmd/cronref)."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from typing import NamedTuple

from sqlserver_backup.go_strings import go_fields, go_trim_space
from sqlserver_backup.go_time_duration import go_parse_duration
from sqlserver_backup.go_time_location import go_load_location


class CronError(ValueError):
    """robfig/cron refuses the expression (or would panic on it)."""


_STAR_BIT = 1 << 63
_MONTH_NAMES = {
    name: number
    for number, name in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}
_DOW_NAMES = {name: number for number, name in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
# (min, max, names) of second, minute, hour, day of month, month, day of week.
_BOUNDS = ((0, 59, None), (0, 59, None), (0, 23, None), (1, 31, None), (1, 12, _MONTH_NAMES), (0, 6, _DOW_NAMES))
_DESCRIPTORS = {
    "@yearly": ("0", "0", "0", "1", "1", "*"),
    "@annually": ("0", "0", "0", "1", "1", "*"),
    "@monthly": ("0", "0", "0", "1", "*", "*"),
    "@weekly": ("0", "0", "0", "*", "*", "0"),
    "@daily": ("0", "0", "0", "*", "*", "*"),
    "@midnight": ("0", "0", "0", "*", "*", "*"),
    "@hourly": ("0", "0", "*", "*", "*", "*"),
}
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()


# --- Parsing ------------------------------------------------------------------


def _must_parse_int(text: str) -> int:
    """strconv.Atoi, then robfig's refusal of negative numbers."""
    if not re.fullmatch(r"[+-]?[0-9]+", text) or not -(1 << 63) <= int(text) < 1 << 63:
        raise CronError(f"failed to parse int from {text}")
    if int(text) < 0:
        raise CronError(f"negative number ({int(text)}) not allowed: {text}")
    return int(text)


def _get_range(expr: str, bounds: tuple[int, int, dict[str, int] | None]) -> int:
    low, high, names = bounds
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    single = len(low_and_high) == 1
    extra = 0

    def int_or_name(text: str) -> int:
        if names is not None and text.lower() in names:
            return names[text.lower()]
        return _must_parse_int(text)

    if low_and_high[0] in ("*", "?"):
        start, end, extra = low, high, _STAR_BIT
    else:
        start = int_or_name(low_and_high[0])
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = int_or_name(low_and_high[1])
        else:
            raise CronError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _must_parse_int(range_and_step[1])
        if single:  # "N/step" means "N-max/step"
            end = high
        if step > 1:
            extra = 0
    else:
        raise CronError(f"too many slashes: {expr}")
    if start < low:
        raise CronError(f"beginning of range ({start}) below minimum ({low}): {expr}")
    if end > high:
        raise CronError(f"end of range ({end}) above maximum ({high}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")
    bits = 0
    for value in range(start, end + 1, step):
        bits |= 1 << value
    return bits | extra


def _get_field(field: str, bounds: tuple[int, int, dict[str, int] | None]) -> int:
    bits = 0
    for expr in (part for part in field.split(",") if part):
        bits |= _get_range(expr, bounds)
    return bits


def robfig_parse_standard(spec: str) -> SpecSchedule | ConstantDelaySchedule:
    """cron.ParseStandard of robfig/cron v3.0.1; CronError when it errs or panics."""
    if not spec:
        raise CronError("empty spec string")
    location: datetime.tzinfo | None = None
    if spec.startswith(("TZ=", "CRON_TZ=")):
        space, equals = spec.find(" "), spec.find("=")
        if space < 0:  # robfig slices spec[eq+1:-1] and panics, killing GoBackup
            raise CronError("a TZ= prefix without a space after it makes robfig/cron panic")
        try:
            location = go_load_location(spec[equals + 1 : space])
        except ValueError as error:
            raise CronError(f"provided bad location {spec[equals + 1 : space]}: {error}") from None
        spec = go_trim_space(spec[space:])
    if spec.startswith("@"):
        if spec in _DESCRIPTORS:
            fields = _DESCRIPTORS[spec]
        elif spec.startswith("@every "):
            try:
                return ConstantDelaySchedule(go_parse_duration(spec[len("@every ") :]))
            except ValueError as error:
                raise CronError(f"failed to parse duration {spec}: {error}") from None
        else:
            raise CronError(f"unrecognized descriptor: {spec}")
    else:
        given = go_fields(spec)
        if len(given) != 5:
            raise CronError(f"expected exactly 5 fields, found {len(given)}: {given}")
        fields = ("0", *given)
    bits = tuple(_get_field(field, bounds) for field, bounds in zip(fields, _BOUNDS, strict=True))
    return SpecSchedule(bits, location)  # type: ignore[arg-type]


# --- Time as Go computes it ---------------------------------------------------


def to_unix(moment: datetime.datetime) -> tuple[int, int]:
    """(whole seconds, nanoseconds) since the epoch of an aware datetime."""
    delta = moment - _EPOCH
    seconds = delta.days * 86400 + delta.seconds
    return seconds, delta.microseconds * 1000


def _wall(unix: int, zone: datetime.tzinfo) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(unix, zone)


def _offset(unix: int, zone: datetime.tzinfo) -> int:
    offset = _wall(unix, zone).utcoffset()
    return int(offset.total_seconds()) if offset else 0


def _go_date(year: int, month: int, day: int, hour: int, minute: int, second: int, zone: datetime.tzinfo) -> int:
    """time.Date: normalises overflowing fields and resolves a wall time that
    a DST change skips or repeats the way Go does (not Python's fold rule)."""
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    days = datetime.date(year, month, 1).toordinal() - _EPOCH_ORDINAL + day - 1
    unix = days * 86400 + hour * 3600 + minute * 60 + second
    return unix - _offset(unix - _offset(unix, zone), zone)


# --- Schedules ------------------------------------------------------------------


class _FieldWalk(NamedTuple):
    """One of the loops of robfig's SpecSchedule.Next, as data: while the
    field does not match, truncate once (the first time any loop moves),
    advance, and go back to the first field (WRAP) when the field wraps."""

    matches: Callable[[datetime.datetime], bool]
    truncate: Callable[[int], int]
    advance: Callable[[int], int]
    wrapped: Callable[[datetime.datetime], bool]


class SpecSchedule:
    """robfig's SpecSchedule: bit sets per field; location None is time.Local."""

    def __init__(self, fields: tuple[int, int, int, int, int, int], location: datetime.tzinfo | None) -> None:
        self.second, self.minute, self.hour, self.dom, self.month, self.dow = fields
        self.location = location

    def _day_matches(self, wall: datetime.datetime) -> bool:
        dom_match = bool(1 << wall.day & self.dom)
        dow_match = bool(1 << (wall.isoweekday() % 7) & self.dow)
        if self.dom & _STAR_BIT or self.dow & _STAR_BIT:
            return dom_match and dow_match
        return dom_match or dow_match

    def _walks(self, zone: datetime.tzinfo) -> tuple[_FieldWalk, ...]:
        """Month, day, hour, minute, second: robfig's five loops."""

        def date(t: int, **change: int) -> int:
            w = _wall(t, zone)
            fields = {"month": w.month, "day": w.day, "hour": w.hour, "minute": w.minute, "second": w.second}
            return _go_date(w.year, **{**fields, **change}, zone=zone)

        def next_day(t: int) -> int:
            t = date(t, day=_wall(t, zone).day + 1)
            hour = _wall(t, zone).hour
            if hour != 0:  # midnight skipped or repeated by DST
                t += (24 - hour) * 3600 if hour > 12 else -hour * 3600
            return t

        return (
            _FieldWalk(
                lambda w: bool(1 << w.month & self.month),
                lambda t: date(t, day=1, hour=0, minute=0, second=0),
                lambda t: date(t, month=_wall(t, zone).month + 1),
                lambda w: w.month == 1,
            ),
            _FieldWalk(
                self._day_matches, lambda t: date(t, hour=0, minute=0, second=0), next_day, lambda w: w.day == 1
            ),
            _FieldWalk(
                lambda w: bool(1 << w.hour & self.hour),
                lambda t: date(t, minute=0, second=0),
                lambda t: t + 3600,
                lambda w: w.hour == 0,
            ),
            _FieldWalk(
                lambda w: bool(1 << w.minute & self.minute),
                lambda t: t - t % 60,  # Truncate(time.Minute): on absolute time
                lambda t: t + 60,
                lambda w: w.minute == 0,
            ),
            _FieldWalk(
                lambda w: bool(1 << w.second & self.second), lambda t: t, lambda t: t + 1, lambda w: w.second == 0
            ),
        )

    def next_unix(self, unix: int, zone: datetime.tzinfo) -> int | None:
        """robfig's Next on Unix seconds: the first activation after `unix`."""
        t = unix + 1
        added = False
        year_limit = _wall(t, zone).year + 5
        walks = self._walks(zone)
        while _wall(t, zone).year <= year_limit:  # the WRAP label of robfig's Next
            for walk in walks:
                wrapped = False
                while not wrapped and not walk.matches(_wall(t, zone)):
                    if not added:
                        added, t = True, walk.truncate(t)
                    t = walk.advance(t)
                    wrapped = walk.wrapped(_wall(t, zone))
                if wrapped:
                    break
            else:
                return t
        return None

    def next(self, after: datetime.datetime) -> datetime.datetime | None:
        """The first activation strictly after `after` (aware), in after's zone."""
        zone = self.location or after.tzinfo
        found = self.next_unix(to_unix(after)[0], zone)
        return None if found is None else _wall(found, after.tzinfo)


class ConstantDelaySchedule:
    """robfig's `@every <duration>`: whole seconds, at least one."""

    def __init__(self, duration_ns: int) -> None:
        duration_ns = max(duration_ns, 1_000_000_000)
        self.delay = (duration_ns - duration_ns % 1_000_000_000) // 1_000_000_000
        self.duration_ns = duration_ns

    def next(self, after: datetime.datetime) -> datetime.datetime:
        return _wall(to_unix(after)[0] + self.delay, after.tzinfo)
