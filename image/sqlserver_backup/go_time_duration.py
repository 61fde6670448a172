"""Go's time.ParseDuration (Go 1 standard library).

GoBackup v3.1.1 reads `schedule.every` with it (gocron v1.18.0's Every takes
a time.Duration), and robfig/cron v3 reads `@every <duration>` with it. Day
units such as `1day` are refused, which is why `every: 1day` fails upstream.
Tested against Go itself (tests/standins/cmd/durationref)."""

from __future__ import annotations

_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_MAX = 1 << 63  # Go's durations are int64 nanoseconds
_DIGITS = "0123456789"


def _leading_int(rest: str, original: str) -> tuple[int, int, str]:
    """(value, digits, rest) of the leading digits, like time.leadingInt."""
    digits = len(rest) - len(rest.lstrip(_DIGITS))
    whole = int(rest[:digits]) if digits else 0
    if whole > _MAX:
        raise ValueError(f"time: invalid duration {original!r}")
    return whole, digits, rest[digits:]


def _leading_fraction(rest: str) -> tuple[int, float, bool, str]:
    """(fraction, scale, any digits, rest) after a '.', like time.leadingFraction:
    Go drops the digits from the first one that would overflow."""
    count = len(rest) - len(rest.lstrip(_DIGITS))
    fraction, scale, overflow = 0, 1.0, False
    for char in rest[:count]:
        overflow = overflow or fraction > (_MAX - 1) // 10 or fraction * 10 + int(char) > _MAX
        if not overflow:
            fraction, scale = fraction * 10 + int(char), scale * 10
    return fraction, scale, count > 0, rest[count:]


def _unit(rest: str, original: str) -> tuple[int, str]:
    """(nanoseconds per unit, rest) of the unit that follows a number."""
    length = 0
    while length < len(rest) and not (rest[length] == "." or rest[length] in _DIGITS):
        length += 1
    if length == 0:
        raise ValueError(f"time: missing unit in duration {original!r}")
    unit = _UNITS.get(rest[:length])
    if unit is None:
        raise ValueError(f"time: unknown unit {rest[:length]!r} in duration {original!r}")
    return unit, rest[length:]


def go_parse_duration(text: str) -> int:
    """Nanoseconds, like Go's time.ParseDuration; ValueError when Go refuses it."""
    original, rest, negative, total = text, text, False, 0
    if rest and rest[0] in "+-":
        negative, rest = rest[0] == "-", rest[1:]
    if rest == "0":
        return 0
    if rest == "":
        raise ValueError(f"time: invalid duration {original!r}")
    while rest:
        if not (rest[0] == "." or rest[0] in _DIGITS):
            raise ValueError(f"time: invalid duration {original!r}")
        whole, digits, rest = _leading_int(rest, original)
        fraction, scale, post = 0, 1.0, False
        if rest.startswith("."):
            fraction, scale, post, rest = _leading_fraction(rest[1:])
        if not digits and not post:
            raise ValueError(f"time: invalid duration {original!r}")
        unit, rest = _unit(rest, original)
        if whole > _MAX // unit:
            raise ValueError(f"time: invalid duration {original!r}")
        value = whole * unit
        if fraction > 0:
            value += int(float(fraction) * (float(unit) / scale))
            if value > _MAX:
                raise ValueError(f"time: invalid duration {original!r}")
        total += value
        if total > _MAX:
            raise ValueError(f"time: invalid duration {original!r}")
    if negative:
        return -total
    if total > _MAX - 1:
        raise ValueError(f"time: invalid duration {original!r}")
    return total
