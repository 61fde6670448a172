#!/usr/bin/env python3
"""Render, check and inspect a GoBackup configuration inside the backup image.

GoBackup v3.1.1 loads `.env` beside its config file (godotenv v1.4.0), then
expands the whole file with Go's os.ExpandEnv, which knows `${VAR}` and `$VAR`
only, reads it through viper (keys lower-cased) and schedules every model that
has a `schedule:` block with gocron v1.18.0 (cron through robfig/cron v3's
standard parser, `every` through time.ParseDuration). This module re-implements
those readings and checks a configuration the way GoBackup will read it, so
mistakes stop the container at start (and the Ansible role before deploying,
through the filter plugin at the end of this file) with a reason instead of
silently breaking backups. It also adds the `${VAR:-default}` form for the
bundled template (resolved before GoBackup reads the file).

It never prints a value taken from the environment: messages name variables.
Importing it has no side effects, so Ansible can load it as a filter plugin.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import yaml

# docker-entrypoint records here which config it validated and GoBackup runs
# with, for the tools started later with `docker exec`.
STATE_DIR = Path(os.environ.get("GOBACKUP_STATE_DIR", os.environ.get("HOME", "/var/lib/gobackup")))
ACTIVE_CONFIG = STATE_DIR / "active-config"

# The only variables that may come from a file named by <NAME>_FILE (Docker
# secrets). Other *_FILE variables (SSL_CERT_FILE, ...) keep their meaning.
SECRET_VARIABLES = (
    "MSSQL_PASSWORD",
    "MINIO_ACCESS_KEY",
    "MINIO_SECRET_KEY",
    "RESTORE_MSSQL_PASSWORD",
    "NOTIFY_WEBHOOK_URL",
    "NOTIFY_WEBHOOK_HEADERS",
    "NOTIFY_SLACK_URL",
    "NOTIFY_SMTP_USERNAME",
    "NOTIFY_SMTP_PASSWORD",
)
PLACEHOLDER = "CHANGE_ME"
DEFAULT_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PEM_CERTIFICATE = "-----BEGIN CERTIFICATE-----"

DEFAULTED_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}]*)\}")
WHOLE_REFERENCE = re.compile(r"^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))$")
GO_SPECIAL_NAMES = set("*#$@!?-0123456789")

SCHEDULE_KEYS = {"enabled", "cron", "every", "at"}
MODEL_KEYS = {
    "description",
    "schedule",
    "databases",
    "storages",
    "default_storage",
    "compress_with",
    "encrypt_with",
    "split_with",
    "archive",
    "notifiers",
    "before_script",
    "after_script",
}
MSSQL_KEYS = {
    "type",
    "host",
    "port",
    "database",
    "username",
    "password",
    "trust_server_certificate",
    "all_databases",
    "skip_databases",
    "args",
    "before_script",
    "after_script",
    "on_exit",
}
# GoBackup v3 renamed these; the camelCase spellings are silently ignored upstream.
MSSQL_RENAMED_KEYS = {
    "trustServerCertificate": "trust_server_certificate",
    "allDatabases": "all_databases",
    "skipDatabases": "skip_databases",
}
# GoBackup joins these into one command line and splits it on whitespace.
MSSQL_SPLIT_FIELDS = ("host", "database", "username", "password")
S3_STORAGE_TYPES = {"minio", "s3"}
# compress_with.type values GoBackup v3.1.1 knows whose program the image
# ships (tar, gzip, zstd, xz-utils); GoBackup's default is tar.
COMPRESS_TYPES = {"tar", "tgz", "taz", "gz", "tar.gz", "zst", "tzst", "tar.zst", "xz", "txz", "tar.xz"}
LOOPBACK_NAMES = {"localhost"}
TEMP_DIR_NAME = re.compile(r"^[0-9]+$")


class ConfigError(Exception):
    """A configuration problem, reported as one line per reason."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("\n".join(reasons))
        self.reasons = reasons


# --- Go's os.Expand ---------------------------------------------------------


def _go_shell_name(text: str) -> tuple[str, int]:
    """Return (name, width) like Go's os.getShellName for the text after a `$`."""
    if text[0] == "{":
        if len(text) > 2 and text[1] in GO_SPECIAL_NAMES and text[2] == "}":
            return text[1:2], 3
        for index in range(1, len(text)):
            if text[index] == "}":
                if index == 1:
                    return "", 2
                return text[1:index], index + 1
        return "", 1
    if text[0] in GO_SPECIAL_NAMES:
        return text[0:1], 1
    width = 0
    while width < len(text) and (text[width] == "_" or (text[width].isascii() and text[width].isalnum())):
        width += 1
    return text[:width], width


def go_expand(text: str, mapping: Callable[[str], str]) -> str:
    """Expand like Go's os.Expand, the function GoBackup applies to its config."""
    out: list[str] = []
    start = 0
    index = 0
    while index < len(text):
        if text[index] == "$" and index + 1 < len(text):
            out.append(text[start:index])
            name, width = _go_shell_name(text[index + 1 :])
            if name == "" and width > 0:
                pass  # invalid syntax: Go eats the characters
            elif name == "":
                out.append("$")
            else:
                out.append(mapping(name))
            index += width
            start = index + 1
        index += 1
    out.append(text[start:])
    return "".join(out)


def referenced_names(text: str) -> list[str]:
    """Names GoBackup will look up in the environment, in order of appearance."""
    names: list[str] = []

    def collect(name: str) -> str:
        if name not in names:
            names.append(name)
        return ""

    go_expand(text, collect)
    return names


def render_defaults(template: str, environ: Mapping[str, str]) -> str:
    """Resolve `${VAR:-default}`; plain `${VAR}` is left for GoBackup to expand."""
    return DEFAULTED_REFERENCE.sub(lambda m: environ.get(m.group(1)) or m.group(2), template)


# --- Go's time.ParseDuration ------------------------------------------------

_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_MAX_DURATION = 1 << 63


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
        if not (rest[0] == "." or "0" <= rest[0] <= "9"):
            raise ValueError(f"time: invalid duration {original!r}")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        whole = int(rest[:digits]) if digits else 0
        if whole > _MAX_DURATION:
            raise ValueError(f"time: invalid duration {original!r}")
        rest, fraction, scale, post = rest[digits:], 0, 1.0, False
        if rest.startswith("."):
            rest = rest[1:]
            count = len(rest) - len(rest.lstrip("0123456789"))
            post, overflow = count > 0, False
            for char in rest[:count]:
                overflow = overflow or fraction > (_MAX_DURATION - 1) // 10 or fraction * 10 + int(char) > _MAX_DURATION
                if not overflow:  # Go drops the digits from the first one that would overflow
                    fraction, scale = fraction * 10 + int(char), scale * 10
            rest = rest[count:]
        if not digits and not post:
            raise ValueError(f"time: invalid duration {original!r}")
        unit_length = 0
        while unit_length < len(rest) and not (rest[unit_length] == "." or "0" <= rest[unit_length] <= "9"):
            unit_length += 1
        if unit_length == 0:
            raise ValueError(f"time: missing unit in duration {original!r}")
        unit = _DURATION_UNITS.get(rest[:unit_length])
        if unit is None:
            raise ValueError(f"time: unknown unit {rest[:unit_length]!r} in duration {original!r}")
        rest = rest[unit_length:]
        if whole > _MAX_DURATION // unit:
            raise ValueError(f"time: invalid duration {original!r}")
        value = whole * unit
        if fraction > 0:
            value += int(float(fraction) * (float(unit) / scale))
            if value > _MAX_DURATION:
                raise ValueError(f"time: invalid duration {original!r}")
        total += value
        if total > _MAX_DURATION:
            raise ValueError(f"time: invalid duration {original!r}")
    if negative:
        return -total
    if total > _MAX_DURATION - 1:
        raise ValueError(f"time: invalid duration {original!r}")
    return total


# --- Time zones as Go loads them --------------------------------------------

ZONEINFO_SOURCES = ("/usr/share/zoneinfo/", "/usr/share/lib/zoneinfo/", "/usr/lib/locale/TZ/", "/etc/zoneinfo/")


def _zone_from_file(path: str) -> datetime.tzinfo | None:
    try:
        with open(path, "rb") as handle:
            return ZoneInfo.from_file(handle, key=path)
    except (OSError, ValueError):
        return None


def go_load_location(name: str) -> datetime.tzinfo | None:
    """Go's time.LoadLocation from the system zoneinfo (GoBackup embeds no
    tzdata): None stands for time.Local; ValueError when Go refuses the name."""
    if name in ("", "UTC"):
        return datetime.timezone.utc
    if name == "Local":
        return None
    if ".." in name or name[0] in "/\\":
        raise ValueError("time: invalid location name")
    for source in ZONEINFO_SOURCES:
        zone = _zone_from_file(source + name)
        if zone is not None:
            return zone
    raise ValueError(f"unknown time zone {name}")


def local_zone(environ: Mapping[str, str] | None = None) -> datetime.tzinfo:
    """The zone Go's time.Local takes from TZ (unset: /etc/localtime; fallback UTC)."""
    environ = os.environ if environ is None else environ
    tz = environ.get("TZ")
    if tz is None:
        zone = _zone_from_file("/etc/localtime")
    else:
        tz = tz.removeprefix(":")
        zone = None
        if tz.startswith("/"):
            zone = _zone_from_file(tz)
        elif tz not in ("", "UTC"):
            for source in ZONEINFO_SOURCES:
                zone = zone or _zone_from_file(source + tz)
    return zone or datetime.timezone.utc


# --- robfig/cron v3 as gocron v1.18.0 calls it ------------------------------


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
_SECONDS, _MINUTES, _HOURS = (0, 59, None), (0, 59, None), (0, 23, None)
_DOM, _MONTHS, _DOW = (1, 31, None), (1, 12, _MONTH_NAMES), (0, 6, _DOW_NAMES)
# unicode.IsSpace: what Go's strings.Fields and strings.TrimSpace split on.
_GO_SPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(map(chr, range(0x2000, 0x200B)))
)
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()


def _go_fields(text: str) -> list[str]:
    fields, current = [], ""
    for char in text:
        if char in _GO_SPACE:
            if current:
                fields.append(current)
            current = ""
        else:
            current += char
    return [*fields, current] if current else fields


def _go_trim_space(text: str) -> str:
    start, end = 0, len(text)
    while start < end and text[start] in _GO_SPACE:
        start += 1
    while end > start and text[end - 1] in _GO_SPACE:
        end -= 1
    return text[start:end]


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


def _to_unix(moment: datetime.datetime) -> tuple[int, int]:
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

    def next_unix(self, unix: int, zone: datetime.tzinfo) -> int | None:
        t = unix + 1
        added = False
        year_limit = _wall(t, zone).year + 5
        while True:  # the WRAP label of robfig's Next
            w = _wall(t, zone)
            if w.year > year_limit:
                return None
            wrapped = False
            while not 1 << w.month & self.month:
                if not added:
                    added = True
                    t = _go_date(w.year, w.month, 1, 0, 0, 0, zone)
                    w = _wall(t, zone)
                t = _go_date(w.year, w.month + 1, w.day, w.hour, w.minute, w.second, zone)
                w = _wall(t, zone)
                if w.month == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not self._day_matches(w):
                if not added:
                    added = True
                    t = _go_date(w.year, w.month, w.day, 0, 0, 0, zone)
                    w = _wall(t, zone)
                t = _go_date(w.year, w.month, w.day + 1, w.hour, w.minute, w.second, zone)
                w = _wall(t, zone)
                if w.hour != 0:  # midnight skipped or repeated by DST
                    t += (24 - w.hour) * 3600 if w.hour > 12 else -w.hour * 3600
                    w = _wall(t, zone)
                if w.day == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not 1 << w.hour & self.hour:
                if not added:
                    added = True
                    t = _go_date(w.year, w.month, w.day, w.hour, 0, 0, zone)
                t += 3600
                w = _wall(t, zone)
                if w.hour == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not 1 << w.minute & self.minute:
                if not added:
                    added = True
                    t -= t % 60  # Truncate(time.Minute): on absolute time
                t += 60
                w = _wall(t, zone)
                if w.minute == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not 1 << w.second & self.second:
                added = True
                t += 1
                w = _wall(t, zone)
                if w.second == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            return t

    def next(self, after: datetime.datetime) -> datetime.datetime | None:
        """The first activation strictly after `after` (aware), in after's zone."""
        zone = self.location or after.tzinfo
        found = self.next_unix(_to_unix(after)[0], zone)
        return None if found is None else _wall(found, after.tzinfo)


class ConstantDelaySchedule:
    """robfig's `@every <duration>`: whole seconds, at least one."""

    def __init__(self, duration_ns: int) -> None:
        duration_ns = max(duration_ns, 1_000_000_000)
        self.delay = (duration_ns - duration_ns % 1_000_000_000) // 1_000_000_000
        self.duration_ns = duration_ns

    def next(self, after: datetime.datetime) -> datetime.datetime:
        return _wall(_to_unix(after)[0] + self.delay, after.tzinfo)


class EverySchedule:
    """gocron's Every(<Go duration>) (GoBackup's `schedule.every`): a run
    `duration` after the start, then `duration` after each run."""

    def __init__(self, duration_ns: int) -> None:
        self.duration_ns = duration_ns

    def next(self, after: datetime.datetime) -> datetime.datetime:
        seconds, nanos = _to_unix(after)
        return datetime.datetime.fromtimestamp(seconds + (nanos + self.duration_ns) / 1e9, after.tzinfo)


_DESCRIPTORS = {
    "@yearly": ("0", "0", "0", "1", "1", "*"),
    "@annually": ("0", "0", "0", "1", "1", "*"),
    "@monthly": ("0", "0", "0", "1", "*", "*"),
    "@weekly": ("0", "0", "0", "*", "*", "0"),
    "@daily": ("0", "0", "0", "*", "*", "*"),
    "@midnight": ("0", "0", "0", "*", "*", "*"),
    "@hourly": ("0", "0", "*", "*", "*", "*"),
}
_BOUNDS = (_SECONDS, _MINUTES, _HOURS, _DOM, _MONTHS, _DOW)


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
        spec = _go_trim_space(spec[space:])
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
        given = _go_fields(spec)
        if len(given) != 5:
            raise CronError(f"expected exactly 5 fields, found {len(given)}: {given}")
        fields = ("0", *given)
    bits = tuple(_get_field(field, bounds) for field, bounds in zip(fields, _BOUNDS, strict=True))
    return SpecSchedule(bits, location)  # type: ignore[arg-type]


def parse_cron(expression: str) -> SpecSchedule | ConstantDelaySchedule:
    """A `schedule.cron` value as GoBackup v3.1.1 schedules it: gocron's Cron()
    prefixes `CRON_TZ=<time.Local> ` unless the value starts with TZ=/CRON_TZ=."""
    if expression.startswith(("TZ=", "CRON_TZ=")):
        return robfig_parse_standard(expression)
    return robfig_parse_standard(f"CRON_TZ=Local {expression}")


def schedule_of(block: Mapping[str, Any]) -> SpecSchedule | ConstantDelaySchedule | EverySchedule | None:
    """What GoBackup schedules for a model's `schedule:` block (None: nothing)."""
    cron = _viper_string(block.get("cron"))
    if cron:
        return parse_cron(cron)
    return EverySchedule(go_parse_duration(_viper_string(block.get("every"))))


def _viper_string(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- godotenv v1.4.0 --------------------------------------------------------

_DOTENV_EXPORT = re.compile(r"^[\t\n\f\r ]*(?:export[\t\n\f\r ]+)?(.*?)[\t\n\f\r ]*$")
_DOTENV_EXPAND = re.compile(r"(\\)?(\$)(\()?\{?([A-Z0-9_]+)?\}?")


def _dotenv_value(value: str, values: Mapping[str, str]) -> str:
    value = value.strip(" ")
    if len(value) > 1:
        single = re.fullmatch(r"'(.*)'", value)
        double = re.fullmatch(r'"(.*)"', value)
        if single or double:
            value = value[1:-1]
        if double:
            value = re.sub(r"\\.", lambda m: {"n": "\n", "r": "\r"}.get(m.group(0)[1], m.group(0)), value)
            value = re.sub(r"\\([^$])", r"\1", value)
        if not single:

            def expand(match: re.Match[str]) -> str:
                if match.group(1) == "\\":
                    return match.group(0)[1:]
                if match.group(4):
                    return values.get(match.group(4), "")
                return match.group(0)

            value = _DOTENV_EXPAND.sub(expand, value)
    return value


def parse_dotenv_text(text: str) -> dict[str, str]:
    """godotenv v1.4.0's Parse, which GoBackup uses to load `.env`."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, raw_line in enumerate(lines, start=1):
        line = raw_line.removesuffix("\r")
        stripped = _go_trim_space(line)
        if not stripped or stripped.startswith("#"):
            continue
        if "#" in line:  # godotenv drops comments, keeping '#' inside quotes
            keep: list[str] = []
            quotes_open = False
            for segment in line.split("#"):
                if segment.count('"') == 1 or segment.count("'") == 1:
                    if quotes_open:
                        quotes_open = False
                        keep.append(segment)
                    else:
                        quotes_open = True
                if not keep or quotes_open:
                    keep.append(segment)
            line = "#".join(keep)
        equals, colon = line.find("="), line.find(":")
        separator = ":" if colon != -1 and (colon < equals or equals == -1) else "="
        if separator not in line:
            raise ConfigError([f".env line {number}: godotenv cannot separate key from value"])
        key, value = line.split(separator, 1)
        match = _DOTENV_EXPORT.match(key)
        values[match.group(1) if match else key] = _dotenv_value(value, values)
    return values


def parse_dotenv(path: Path) -> dict[str, str]:
    return parse_dotenv_text(path.read_text(encoding="utf-8"))


def dotenv_line(name: str, value: str) -> str:
    """How the role writes a variable to `.env`: single-quoted, taken literally."""
    return f"{name}='{value}'"


# --- Environment -------------------------------------------------------------


def resolve_file_env(environ: Mapping[str, str]) -> dict[str, str]:
    """NAME from NAME_FILE for the SECRET_VARIABLES only, as docker-entrypoint
    does, for tools started later with `docker exec` (they do not inherit the
    entrypoint's environment)."""
    resolved = dict(environ)
    for name in SECRET_VARIABLES:
        path = environ.get(f"{name}_FILE")
        if path and not environ.get(name) and Path(path).is_file():
            resolved[name] = Path(path).read_text(encoding="utf-8").rstrip("\n")
    return resolved


def environment_for(config_path: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment GoBackup will see: .env beside the config does not override."""
    merged = dict(environ)
    dotenv = config_path.parent / ".env"
    if dotenv.is_file():
        for key, value in parse_dotenv(dotenv).items():
            merged.setdefault(key, value)
    return merged


def state_dir(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("GOBACKUP_STATE_DIR") or environ.get("HOME") or "/var/lib/gobackup")


def ca_bundle(environ: Mapping[str, str]) -> Path | None:
    """Write base bundle + EXTRA_CA_CERTS to <state dir>/ca-certificates.crt;
    None when EXTRA_CA_CERTS is unset. ConfigError naming the variable."""
    extra_name = environ.get("EXTRA_CA_CERTS")
    if not extra_name:
        return None
    output = state_dir(environ) / "ca-certificates.crt"
    extra = Path(extra_name)
    if not extra.is_file():
        raise ConfigError(["EXTRA_CA_CERTS names a file that does not exist"])
    extra_text = extra.read_text(encoding="utf-8", errors="replace")
    if PEM_CERTIFICATE not in extra_text:
        raise ConfigError([f"EXTRA_CA_CERTS names a file without a PEM certificate ({PEM_CERTIFICATE})"])
    base_name = environ.get("SSL_CERT_FILE")
    base = Path(base_name) if base_name and Path(base_name) != output else DEFAULT_CA_BUNDLE
    if not base.is_file():
        which = "SSL_CERT_FILE" if base != DEFAULT_CA_BUNDLE else str(DEFAULT_CA_BUNDLE)
        raise ConfigError([f"the base CA bundle ({which}) does not exist"])
    bundle = base.read_text(encoding="utf-8", errors="replace").rstrip("\n") + "\n" + extra_text.rstrip("\n") + "\n"
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    partial.write_text(bundle, encoding="utf-8")
    partial.chmod(0o644)
    partial.replace(output)
    return output


def environment_with_ca(environ: Mapping[str, str]) -> dict[str, str]:
    """environ with SSL_CERT_FILE pointing at the bundle that includes
    EXTRA_CA_CERTS (unchanged when EXTRA_CA_CERTS is unset)."""
    bundle = ca_bundle(environ)
    return {**environ, "SSL_CERT_FILE": str(bundle)} if bundle else dict(environ)


# --- YAML as GoBackup reads it -----------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML keeps the last silently,
    so would GoBackup's viper: two models with one name become one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # unhashable: the base class explains
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}' (YAML keeps only the last one)", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def yaml_problem(error: yaml.YAMLError) -> tuple[str, int | None]:
    """(problem, line) of a YAML error, without the snippet PyYAML quotes."""
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        return str(error.problem or error.context), (mark.line + 1 if mark else None)
    return type(error).__name__, None


def _parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def _scalar_nodes(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], yaml.ScalarNode]]:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            yield from _scalar_nodes(value_node, (*path, str(getattr(key_node, "value", key_node))))
    elif isinstance(node, yaml.SequenceNode):
        for position, item in enumerate(node.value):
            yield from _scalar_nodes(item, (*path, f"[{position}]"))
    elif isinstance(node, yaml.ScalarNode):
        yield path, node


def _at(document: Any, path: tuple[str, ...]) -> Any:
    for step in path:
        if isinstance(document, dict):
            document = next((value for key, value in document.items() if _viper_string(key) == step), None)
        elif isinstance(document, list) and step.startswith("[") and int(step[1:-1]) < len(document):
            document = document[int(step[1:-1])]
        else:
            return None
    return document


def _where(path: tuple[str, ...]) -> str:
    return ".".join(path).replace(".[", "[")


# A plain (unquoted) scalar YAML 1.1 (PyYAML) or 1.2 (go-yaml v3, viper) may
# read as something other than the same string.
_NOT_A_PLAIN_STRING = re.compile(
    r"~|null|Null|NULL|true|True|TRUE|false|False|FALSE|y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF"
    r"|[-+]?[0-9_]+|0o[0-7_]+|0x[0-9a-fA-F_]+|0b[01_]+"
    r"|[-+]?(\.[0-9_]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)"
    r"|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt ].*)?|[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?"
)


def _plain_is_safe(value: str) -> bool:
    if not value or _NOT_A_PLAIN_STRING.fullmatch(value):
        return False
    try:
        return yaml.safe_load(f"key: {value}\n") == {"key": value}
    except yaml.YAMLError:
        return False


class _Reference:
    def __init__(self, path: tuple[str, ...], name: str, style: str | None) -> None:
        self.path, self.name, self.style = path, name, style

    @property
    def where(self) -> str:
        return _where(self.path)


def _whole_references(raw_text: str) -> list[_Reference]:
    references = []
    for path, node in _scalar_nodes(yaml.compose(raw_text, Loader=yaml.SafeLoader)):
        match = WHOLE_REFERENCE.match(node.value)
        if match and node.tag == "tag:yaml.org,2002:str":
            references.append(_Reference(path, match.group(1) or match.group(2), node.style))
    return references


def _reference_reasons(reference: _Reference, value: str) -> list[str]:
    """A whole `${VAR}` leaf must reach GoBackup as exactly VAR's value."""
    name, where = reference.name, reference.where
    if "\n" in value or "\r" in value:
        return [f"{where}: the value of {name} contains a line break, which YAML would alter"]
    if reference.style == "'" and "'" in value:
        return [f"{where}: the value of {name} contains a ' but is referenced inside single quotes ('${{{name}}}')"]
    if reference.style == '"' and ('"' in value or "\\" in value):
        return [f'{where}: the value of {name} contains a " or \\ but is referenced inside double quotes']
    if reference.style not in ("'", '"') and not _plain_is_safe(value):
        return [
            f"{where}: the value of {name} would reach GoBackup altered or as a non-string by YAML"
            f" (it looks like a number, boolean or null, or starts with or contains YAML syntax);"
            f" quote the reference: '${{{name}}}'"
        ]
    return []


# --- Rules ---------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_cron(model: str, cron: str) -> list[str]:
    where = f"model {model}: schedule.cron '{cron}'"
    try:
        parse_cron(cron)
    except CronError as error:
        return [f"{where} is refused by GoBackup's cron parser (robfig/cron v3): {error}"]
    # Whatever the parser takes is accepted, exactly as GoBackup registers it.
    return []


def _check_schedule(model: str, schedule: Any) -> list[str]:
    if schedule is None:
        return []
    if not isinstance(schedule, dict):
        return [f"model {model}: schedule must be a mapping"]
    reasons = [
        f"model {model}: schedule key '{key}' is unknown to GoBackup (known: {', '.join(sorted(SCHEDULE_KEYS))});"
        " GoBackup would silently disable the schedule"
        for key in schedule
        if key not in SCHEDULE_KEYS
    ]
    if schedule.get("enabled", True) is not True:
        reasons.append(
            f"model {model}: schedule.enabled: {_viper_string(schedule.get('enabled'))} is ignored by GoBackup v3.1.1"
            " (any schedule block is scheduled); remove the schedule block to unschedule the model"
        )
    cron, every = _viper_string(schedule.get("cron")), _viper_string(schedule.get("every"))
    if not cron and not every:
        reasons.append(f"model {model}: schedule has neither cron nor every; GoBackup v3.1.1 fails to schedule it")
    if cron:
        reasons += _check_cron(model, cron)
        if every:
            reasons.append(f"model {model}: schedule.every is ignored when schedule.cron is set; keep one")
    elif every:
        try:
            if go_parse_duration(every) <= 0:
                reasons.append(f"model {model}: schedule.every '{every}' must be positive")
        except ValueError:
            reasons.append(
                f"model {model}: schedule.every '{every}' is not a Go duration like 30m or 24h"
                " (GoBackup v3.1.1 refuses day units such as 1day); use cron for calendar times"
            )
    if "at" in schedule:
        reasons.append(f"model {model}: schedule.at fails in GoBackup v3.1.1 (At() is not supported); use cron")
    return reasons


def _check_mssql(model: str, key: str, database: dict[str, Any], origins: Mapping[str, str]) -> list[str]:
    where = f"model {model}: database {key}"
    reasons = []
    for name in database:
        if name in MSSQL_RENAMED_KEYS:
            reasons.append(f"{where}: key '{name}' is ignored by GoBackup v3; use '{MSSQL_RENAMED_KEYS[name]}'")
        elif name not in MSSQL_KEYS:
            reasons.append(f"{where}: key '{name}' is unknown to GoBackup's mssql driver")
    skip = database.get("skip_databases")
    if skip is not None and not (isinstance(skip, list) and all(isinstance(name, str) for name in skip)):
        reasons.append(f"{where}: skip_databases must be a list of database names")
    if not database.get("database") and database.get("all_databases") is not True:
        reasons.append(f"{where}: 'database' is empty (or set all_databases: true)")
    for field in MSSQL_SPLIT_FIELDS:
        value = database.get(field)
        if isinstance(value, str) and re.search(r"\s", value):
            origin = origins.get(_where(("models", str(model), "databases", str(key), field)))
            reasons.append(
                f"{where}: {field}{f' (from {origin})' if origin else ''} contains whitespace,"
                " which GoBackup's sqlpackage command line splits apart"
            )
    return reasons


def _check_storage(model: str, key: str, storage: dict[str, Any]) -> list[str]:
    where = f"model {model}: storage {key}"
    kind = storage.get("type")
    if kind not in S3_STORAGE_TYPES:
        return [] if kind else [f"{where}: 'type' is missing"]
    reasons = [f"{where}: '{field}' is empty" for field in ("bucket", "endpoint") if not storage.get(field)]
    endpoint = str(storage.get("endpoint") or "")
    if endpoint and urlsplit(endpoint).scheme not in {"http", "https"}:
        reasons.append(f"{where}: endpoint must be a full URL such as http://minio:9000")
    return reasons


def _check_compress(model: str, compress: Any) -> list[str]:
    if compress is None:
        return []
    if not isinstance(compress, dict):
        return [f"model {model}: compress_with must be a mapping"]
    kind = _viper_string(compress.get("type", "tar"))
    if kind not in COMPRESS_TYPES:
        return [
            f"model {model}: compress_with.type '{kind}' is not one GoBackup v3.1.1 knows with a program this image"
            f" ships (known: {', '.join(sorted(COMPRESS_TYPES))})"
        ]
    return []


def encryption_passphrase_variable(encrypt: Any) -> str | None:
    """The .env variable an `encrypt_with.password: env:<NAME>` names."""
    password = _viper_string(encrypt.get("password")) if isinstance(encrypt, dict) else ""
    return password[len("env:") :] if password.startswith("env:") else None


def _check_encrypt(model: str, encrypt: Any, environment: Mapping[str, str]) -> list[str]:
    if encrypt is None:
        return []
    if not isinstance(encrypt, dict):
        return [f"model {model}: encrypt_with must be a mapping"]
    kind = _viper_string(encrypt.get("type"))
    if kind != "openssl":
        # Any other type, GoBackup v3.1.1 uploads the archive unencrypted without a word.
        return [
            f"model {model}: encrypt_with.type '{kind}' is unknown to GoBackup v3.1.1, which would upload"
            " the archive unencrypted; use openssl"
        ]
    variable = encryption_passphrase_variable(encrypt)
    if variable is None:
        # GoBackup puts the password on openssl's command line and prints that command on failure.
        return [
            f"model {model}: encrypt_with.password must be env:<VARIABLE>, naming a .env entry that holds"
            " the passphrase (GoBackup would show a literal password in its command line and error messages)"
        ]
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", variable):
        return [f"model {model}: encrypt_with.password names '{variable}', which is not a variable name"]
    if not environment.get(variable):
        return [f"model {model}: encrypt_with.password names {variable}, which is not set (.env)"]
    if environment[variable].strip() == PLACEHOLDER:
        return [f"model {model}: {variable} still holds the placeholder {PLACEHOLDER}; set the real passphrase"]
    return []


def _upload_target(storage: dict[str, Any]) -> tuple[str, str, str] | None:
    if storage.get("type") not in S3_STORAGE_TYPES:
        return None
    return (str(storage.get("endpoint")), str(storage.get("bucket")), str(storage.get("path") or "").strip("/"))


def _check_models(models: dict[Any, Any], origins: Mapping[str, str], environment: Mapping[str, str]) -> list[str]:
    reasons: list[str] = []
    writers: dict[tuple[str, str, str], str] = {}
    for model, body in models.items():
        if str(model) != str(model).lower():
            reasons.append(
                f"model {model}: GoBackup lower-cases model names (viper), so 'perform -m {model}' fails and its"
                f" metrics and health say '{str(model).lower()}'; name it '{str(model).lower()}'"
            )
        if not isinstance(body, dict):
            reasons.append(f"model {model}: must be a mapping")
            continue
        reasons += [f"model {model}: key '{key}' is unknown to GoBackup" for key in body if key not in MODEL_KEYS]
        reasons += _check_schedule(model, body.get("schedule"))
        reasons += _check_compress(model, body.get("compress_with"))
        reasons += _check_encrypt(model, body.get("encrypt_with"), environment)
        reasons += _check_notifiers(model, body.get("notifiers"))
        databases = body.get("databases") or {}
        storages = body.get("storages") or {}
        if not isinstance(databases, dict) or not isinstance(storages, dict):
            reasons.append(f"model {model}: databases and storages must be mappings")
            continue
        if not databases:
            reasons.append(f"model {model}: no databases")
        if not storages:
            reasons.append(f"model {model}: no storages")
        for key, database in databases.items():
            if str(key) != str(key).lower():
                reasons.append(
                    f"model {model}: database key '{key}' has upper-case letters, which GoBackup lower-cases (viper);"
                    f" use the model name as the key (the database name goes in 'database:')"
                )
            if isinstance(database, dict) and database.get("type") == "mssql":
                reasons += _check_mssql(model, key, database, origins)
        for key, storage in storages.items():
            if not isinstance(storage, dict):
                reasons.append(f"model {model}: storage {key} must be a mapping")
                continue
            reasons += _check_storage(model, key, storage)
            target = _upload_target(storage)
            if target in writers:
                reasons.append(
                    f"models {writers[target]} and {model} upload to the same bucket path '{target[2]}';"
                    " archives would overwrite each other and keep would prune the other's"
                )
            elif target:
                writers[target] = str(model)
    return reasons


# --- Notifications through the relay ------------------------------------------
#
# GoBackup sends its failure reason as it is (sqlpackage's stderr, an S3
# error, openssl's command line with its -k password) and logs the full URL of
# every webhook it calls. So its notifiers only post to notify-relay on the
# container's loopback, which removes every secret value from the title and
# message before it forwards them to the channel whose settings (NOTIFY_*) it
# alone reads.

RELAY_URL = re.compile(r"^http://127\.0\.0\.1:([0-9]{1,5})/(webhook|slack|mail)$")
NOTIFY_CHANNELS: dict[str, tuple[str, ...]] = {
    "webhook": ("NOTIFY_WEBHOOK_URL",),
    "slack": ("NOTIFY_SLACK_URL",),
    "mail": ("NOTIFY_SMTP_HOST", "NOTIFY_SMTP_FROM", "NOTIFY_SMTP_TO"),
}
# Relay settings that are not secrets (the others are removed from messages).
NOTIFY_PLAIN_SETTINGS = (
    "NOTIFY_SMTP_HOST",
    "NOTIFY_SMTP_PORT",
    "NOTIFY_SMTP_SECURITY",
    "NOTIFY_SMTP_FROM",
    "NOTIFY_SMTP_TO",
)
SMTP_SECURITY = ("starttls", "tls", "none")
NOTIFIER_KEYS = {"type", "url", "on_success", "on_failure"}
_SECRET_NAME = re.compile(r"(PASSWORD|SECRET|SECRET_KEY|ACCESS_KEY|TOKEN)$")
_MAIL_ADDRESS = re.compile(r"^[^@\s,]+@[^@\s,]+$")


def relay_channels(document: Mapping[str, Any]) -> dict[str, int]:
    """{channel: relay port} of the notifiers of every model."""
    channels: dict[str, int] = {}
    models = document.get("models")
    for body in models.values() if isinstance(models, dict) else ():
        notifiers = body.get("notifiers") if isinstance(body, dict) else None
        for notifier in (notifiers or {}).values() if isinstance(notifiers, dict) else ():
            match = RELAY_URL.match(str(notifier.get("url", ""))) if isinstance(notifier, dict) else None
            if match:
                channels[match.group(2)] = int(match.group(1))
    return channels


def _check_notifiers(model: str, notifiers: Any) -> list[str]:
    if notifiers is None:
        return []
    if not isinstance(notifiers, dict):
        return [f"model {model}: notifiers must be a mapping"]
    reasons = []
    for key, notifier in notifiers.items():
        where = f"model {model}: notifier {key}"
        if not isinstance(notifier, dict):
            reasons.append(f"{where} must be a mapping")
            continue
        reasons += [
            f"{where}: key '{name}' is not one the notification relay takes ({', '.join(sorted(NOTIFIER_KEYS))})"
            for name in notifier
            if name not in NOTIFIER_KEYS
        ]
        if notifier.get("type") != "webhook" or not RELAY_URL.match(str(notifier.get("url", ""))):
            reasons.append(
                f"{where}: must be type webhook with url http://127.0.0.1:<port>/webhook, /slack or /mail (the"
                " notification relay): GoBackup would send its failure reason, which can hold a secret, straight out"
            )
        reasons += [
            f"{where}: {flag} must be true or false"
            for flag in ("on_success", "on_failure")
            if flag in notifier and not isinstance(notifier[flag], bool)
        ]
    return reasons


def _http_url_problem(name: str, value: str) -> str | None:
    url = urlsplit(value)
    if url.scheme not in ("http", "https") or not url.hostname:
        return f"{name} must be a full http(s) URL"
    return None


def notify_problems(document: Mapping[str, Any], environment: Mapping[str, str]) -> list[str]:
    """The relay's settings each configured channel needs, named by variable."""
    channels = relay_channels(document)
    reasons = []
    if len(set(channels.values())) > 1:
        reasons.append("every notifier must use the same relay port")
    for channel in channels:
        reasons += [
            f"{name} is not set (the {channel} notifier needs it)"
            for name in NOTIFY_CHANNELS[channel]
            if not environment.get(name)
        ]
    for name in ("NOTIFY_WEBHOOK_URL", "NOTIFY_SLACK_URL"):
        problem = _http_url_problem(name, environment[name]) if environment.get(name) else None
        reasons += [problem] if problem else []
    if environment.get("NOTIFY_WEBHOOK_HEADERS"):
        try:
            headers = json.loads(environment["NOTIFY_WEBHOOK_HEADERS"])
        except ValueError:
            headers = None
        if not isinstance(headers, dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in headers.items()
        ):
            reasons.append('NOTIFY_WEBHOOK_HEADERS must be a JSON object of strings, e.g. {"Authorization": "…"}')
    if "mail" in channels:
        port = environment.get("NOTIFY_SMTP_PORT", "587")
        if not port.isdigit() or not 0 < int(port) < 65536:
            reasons.append("NOTIFY_SMTP_PORT must be a port number")
        if environment.get("NOTIFY_SMTP_SECURITY", "starttls") not in SMTP_SECURITY:
            reasons.append(f"NOTIFY_SMTP_SECURITY must be one of {', '.join(SMTP_SECURITY)}")
        if bool(environment.get("NOTIFY_SMTP_USERNAME")) != bool(environment.get("NOTIFY_SMTP_PASSWORD")):
            reasons.append("NOTIFY_SMTP_USERNAME and NOTIFY_SMTP_PASSWORD go together: set both or neither")
        addresses = [environment.get("NOTIFY_SMTP_FROM", ""), *environment.get("NOTIFY_SMTP_TO", "").split(",")]
        if any(address and not _MAIL_ADDRESS.match(address.strip()) for address in addresses):
            reasons.append("NOTIFY_SMTP_FROM and NOTIFY_SMTP_TO (comma-separated) must be mail addresses")
    return reasons


def secret_values(environment: Mapping[str, str], dotenv_names: Iterator[str] | list[str] = ()) -> list[str]:
    """Every secret value a message must not carry, longest first: the secret
    variables, whatever .env holds and any *_PASSWORD, *_SECRET, *_TOKEN."""
    names = set(SECRET_VARIABLES) | set(dotenv_names)
    names |= {name for name in environment if _SECRET_NAME.search(name)}
    values = {environment[name] for name in names - set(NOTIFY_PLAIN_SETTINGS) if environment.get(name)}
    values |= {quote(value, safe="") for value in values}
    return sorted(values, key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    for value in secrets:
        text = text.replace(value, "[redacted]")
    return text


def check_document(
    document: Any, origins: Mapping[str, str] | None = None, environment: Mapping[str, str] | None = None
) -> list[str]:
    """Structural rules GoBackup does not enforce itself, or enforces silently.
    `origins` maps a leaf (models.sales.databases.sales.password) to the
    variable it was expanded from, so reasons can name it; `environment` is
    what GoBackup's processes will see (for encrypt_with's env:<NAME>)."""
    if not isinstance(document, dict):
        return ["the configuration is not a YAML mapping"]
    models = document.get("models")
    if not isinstance(models, dict) or not models:
        return ["'models' is missing or empty"]
    reasons: list[str] = []
    workdir = _viper_string(document.get("workdir"))
    if not workdir:
        reasons.append("workdir is not set: set it to the work volume, e.g. /tmp/gobackup")
    elif not workdir.startswith("/"):
        reasons.append("workdir must be an absolute path (GoBackup resolves it from its working directory)")
    web = document.get("web") or {}
    if not isinstance(web, dict):
        reasons.append("web must be a mapping")
    elif web.get("enabled", True) is not False and not _is_loopback(str(web.get("host", "0.0.0.0"))):  # noqa: S104
        reasons.append(
            "web.host must be 127.0.0.1 (or web.enabled false): GoBackup's basic auth does not protect /api/*"
        )
    return reasons + _check_models(models, origins or {}, environment or {})


def check_text(text: str, environment: Mapping[str, str], name: str = "the config") -> tuple[Any, list[str]]:
    """Load a config's text as GoBackup would with this environment: (document, reasons)."""
    try:
        _parse_yaml(text)
        references = _whole_references(text)
    except yaml.YAMLError as error:
        problem, line = yaml_problem(error)
        return None, [f"{name} is not valid YAML{f' (line {line})' if line else ''}: {problem}"]
    reasons = []
    for variable in referenced_names(text):
        if ":-" in variable or ":=" in variable:
            reasons.append(
                f"${{{variable}}}: GoBackup does not support defaults in references; set the variable instead"
            )
        elif variable in GO_SPECIAL_NAMES:
            reasons.append(
                f"a '${variable}' in the config would be expanded by GoBackup; keep literal '$' values in .env"
            )
        elif not environment.get(variable):
            reasons.append(
                f"{variable} is not set (referenced by {name}; GoBackup expands every '$' in it,"
                " so a literal '$' belongs in .env)"
            )
        elif environment[variable].strip() == PLACEHOLDER:
            reasons.append(f"{variable} still holds the placeholder {PLACEHOLDER}; set the real value")
    for reference in references:
        # Where the leaf lands once keys given as references are expanded too.
        reference.path = tuple(go_expand(step, lambda v: environment.get(v, "")) for step in reference.path)
        if environment.get(reference.name):
            reasons += _reference_reasons(reference, environment[reference.name])
    if reasons:
        return None, reasons
    expanded = go_expand(text, lambda variable: environment.get(variable, ""))
    try:
        document = _parse_yaml(expanded)
    except yaml.YAMLError as error:
        problem, line = yaml_problem(error)
        # A parser's complaint may quote a character of an expanded secret:
        # name the line's variables instead (a duplicate key is safe to name).
        names = referenced_names(text.split("\n")[line - 1]) if line else []
        if names and not isinstance(error, yaml.constructor.ConstructorError):
            detail = f"line {line} references {', '.join(names)}"
        else:
            detail = f"line {line}: {problem}" if line else problem
        return None, [f"{name} is not valid YAML after expansion ({detail})"]
    origins = {reference.where: reference.name for reference in references}
    for reference in references:
        leaf = _at(document, reference.path)
        if not isinstance(leaf, str) or leaf != environment.get(reference.name):
            reasons.append(f"{reference.where}: the value of {reference.name} reaches GoBackup altered by YAML")
    for path, node in _scalar_nodes(yaml.compose(expanded, Loader=yaml.SafeLoader)):
        if node.value.strip() == PLACEHOLDER and _where(path) not in origins:
            reasons.append(f"{_where(path)} still holds the placeholder {PLACEHOLDER}")
    reasons += check_document(document, origins, environment)
    return document, reasons + (notify_problems(document, environment) if isinstance(document, dict) else [])


def load(config_path: Path, environ: Mapping[str, str]) -> tuple[Any, dict[str, str]]:
    """Load the config as GoBackup would; raise ConfigError naming every problem."""
    if not config_path.is_file():
        raise ConfigError([f"{config_path} does not exist"])
    environment = environment_for(config_path, environ)
    document, reasons = check_text(config_path.read_text(encoding="utf-8"), environment, str(config_path))
    if reasons:
        raise ConfigError(reasons)
    return document, environment


def load_lenient(config_path: Path, environ: Mapping[str, str]) -> Any:
    """Parse the config without checking it, unset variables expanding to ''."""
    environment = environment_for(config_path, environ)
    text = config_path.read_text(encoding="utf-8")
    return yaml.safe_load(go_expand(text, lambda name: environment.get(name, "")))


# --- Queries for the entrypoint and the other tools -----------------------------


def endpoints(document: Mapping[str, Any]) -> Iterator[tuple[str, str, str, int]]:
    """(what, model, host, port) for every SQL Server and S3 endpoint the config uses."""
    for model, body in document["models"].items():
        for key, database in (body.get("databases") or {}).items():
            if database.get("type") == "mssql":
                yield (
                    f"SQL Server {key}",
                    model,
                    str(database.get("host", "127.0.0.1")),
                    int(database.get("port", 1433)),
                )
        for key, storage in (body.get("storages") or {}).items():
            if storage.get("type") in S3_STORAGE_TYPES:
                url = urlsplit(str(storage["endpoint"]))
                port = url.port or (443 if url.scheme == "https" else 80)
                yield f"storage {key} ({storage['bucket']})", model, url.hostname or "", port


def storages(document: Mapping[str, Any], model: str) -> list[str]:
    """'<endpoint> bucket <bucket>' (or the local path) of every storage of a model."""
    described = []
    for key, storage in (document["models"][model].get("storages") or {}).items():
        if storage.get("type") in S3_STORAGE_TYPES:
            described.append(f"{key}: {storage.get('endpoint')} bucket {storage.get('bucket')}")
        else:
            described.append(f"{key}: {storage.get('type')} {storage.get('path', '')}".rstrip())
    return described


def web_address(document: Mapping[str, Any]) -> tuple[str, int] | None:
    web = document.get("web") or {}
    if web.get("enabled", True) is False:
        return None
    return str(web.get("host", "127.0.0.1")), int(web.get("port", 2703))


def workdir(document: Any) -> Path:
    """GoBackup's workdir (required by the checker); ConfigError when unset."""
    value = _viper_string(document.get("workdir")) if isinstance(document, dict) else ""
    if not value:
        raise ConfigError(["workdir is not set: set it to the work volume, e.g. /tmp/gobackup"])
    return Path(value)


def temp_dirs(work: Path) -> list[Path]:
    """GoBackup's TempPaths `<workdir>/<unix-nanos>/`; nothing else in workdir."""
    if not work.is_dir():
        return []
    return sorted(
        entry
        for entry in work.iterdir()
        if TEMP_DIR_NAME.match(entry.name) and entry.is_dir() and not entry.is_symlink()
    )


def models_in(temp_dir: Path) -> list[str]:
    """The models of a TempPath: its dump paths `<TempPath>/<model>/`."""
    return sorted(entry.name for entry in temp_dir.iterdir() if entry.is_dir() and not entry.is_symlink())


def running_jobs(work: Path) -> list[str]:
    return [model for temp_dir in temp_dirs(work) for model in models_in(temp_dir)]


def clean_temp(work: Path) -> list[tuple[Path, list[str]]]:
    """Remove every TempPath a killed run left behind: [(path, models)]."""
    removed = []
    for temp_dir in temp_dirs(work):
        models = models_in(temp_dir)
        shutil.rmtree(temp_dir)
        removed.append((temp_dir, models))
    return removed


# --- Restores, drills and coverage ------------------------------------------------
#
# restore.yml (beside the config, written by the backup_config role) says
# where each model's restores and drills import: a server of their own, never
# one the host backs up. GoBackup never reads it.

RESTORE_SETTINGS = "restore.yml"
RESTORE_MODEL_KEYS = {
    "host",
    "port",
    "username",
    "password",
    "trust_server_certificate",
    "previous_passphrases",
    "drill_schedule",
    "rpo_grace_seconds",
    "proven_within_days",
}
DEFAULT_DRILL_SCHEDULE = "17 4 * * 0"
DEFAULT_RPO_GRACE_SECONDS = 3600
DEFAULT_PROVEN_WITHIN_DAYS = 8
# Weeks ahead in which a drill may not start at the minute of its model's backup.
DRILL_COLLISION_WEEKS = 8
# What the Ansible variables are called, for messages an operator can act on.
RESTORE_HOST_HINT = "Ansible: backup_config_restore_host, or restore_host of the database entry"
DRILL_SCHEDULE_HINT = "Ansible: backup_config_drill_schedule, or drill_schedule of the database entry"


def load_restore_settings(config_path: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    """restore.yml beside the config, its ${VAR} references resolved from the
    config's .env; {} when there is none. Without the file (the bundled
    template, no Ansible) RESTORE_MSSQL_* give every model one restore server."""
    settings_file = config_path.parent / RESTORE_SETTINGS
    if settings_file.is_file():
        loaded = load_lenient(settings_file, environ)
        return loaded if isinstance(loaded, dict) else {}
    environment = environment_for(config_path, environ)
    if not environment.get("RESTORE_MSSQL_HOST"):
        return {}
    server = {
        "host": environment["RESTORE_MSSQL_HOST"],
        "port": environment.get("RESTORE_MSSQL_PORT") or 1433,
        "username": environment.get("RESTORE_MSSQL_USER") or "",
        "password": environment.get("RESTORE_MSSQL_PASSWORD") or "",
        "trust_server_certificate": environment.get("RESTORE_MSSQL_TRUST_SERVER_CERTIFICATE", "false") == "true",
    }
    document = load_lenient(config_path, environ)
    return {"models": {str(model): dict(server) for model in (document.get("models") or {})}}


def source_servers(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every mssql database of every model, with GoBackup's defaults filled in."""
    found = []
    for model, body in (document.get("models") or {}).items():
        for key, database in ((body or {}).get("databases") or {}).items():
            if not isinstance(database, dict) or database.get("type") != "mssql":
                continue
            found.append(
                {
                    "model": str(model),
                    "key": str(key),
                    "host": str(database.get("host") or "127.0.0.1"),
                    "port": int(database.get("port") or 1433),
                    "username": str(database.get("username") or "sa"),
                    "password": str(database.get("password") or ""),
                    "trust_server_certificate": str(database.get("trust_server_certificate", False)).lower() == "true",
                    "database": str(database.get("database") or ""),
                    "all_databases": str(database.get("all_databases", False)).lower() == "true",
                    "skip_databases": [str(name) for name in database.get("skip_databases") or []],
                }
            )
    return found


def same_server(host: str, port: Any, other_host: str, other_port: Any) -> bool:
    """Host (case-insensitive, loopback names alike) and port both equal."""

    def normal(name: str) -> str:
        name = name.strip().lower().rstrip(".")
        return "127.0.0.1" if name in LOOPBACK_NAMES or name == "::1" else name

    return normal(host) == normal(other_host) and int(port) == int(other_port)


def _schedule_minutes(schedule: Any, start: datetime.datetime, end: datetime.datetime) -> set[datetime.datetime]:
    minutes: set[datetime.datetime] = set()
    moment = start
    while schedule is not None:
        moment = schedule.next(moment)
        if moment is None or moment > end or len(minutes) > 100_000:
            break
        minutes.add(moment.replace(second=0, microsecond=0))
    return minutes


def restore_problems(
    document: Mapping[str, Any], restore_settings: Mapping[str, Any], now: datetime.datetime | None = None
) -> list[str]:
    """Why restore.yml cannot be used with this config; empty when fine.
    A restore server must be set for every model and must not be any server
    the host backs up: restores, drills and replaces never reach production
    unless `backup-restore --into-source` is asked for."""
    reasons: list[str] = []
    models = restore_settings.get("models") if isinstance(restore_settings, Mapping) else None
    models = models if isinstance(models, dict) else {}
    sources = source_servers(document)
    zone = local_zone()
    start = now or datetime.datetime.now(zone)
    end = start + datetime.timedelta(weeks=DRILL_COLLISION_WEEKS)
    for model, body in (document.get("models") or {}).items():
        settings = models.get(str(model))
        if not isinstance(settings, dict) or not str(settings.get("host") or "").strip():
            reasons.append(
                f"model {model}: no restore server is set; restores and drills need a SQL Server of their own"
                f" that this host does not back up ({RESTORE_HOST_HINT}; RESTORE_MSSQL_HOST without Ansible)"
            )
            continue
        reasons += [
            f"model {model}: restore.yml key '{key}' is unknown" for key in settings if key not in RESTORE_MODEL_KEYS
        ]
        host = str(settings["host"]).strip()
        try:
            port = int(settings.get("port") or 1433)
        except (TypeError, ValueError):
            reasons.append(f"model {model}: the restore server's port must be a number")
            continue
        for source in sources:
            if same_server(host, port, source["host"], source["port"]):
                reasons.append(
                    f"model {model}: the restore server {host},{port} is a server this host backs up (model"
                    f" {source['model']}); restores and drills would import into production. Give them a"
                    f" server of their own ({RESTORE_HOST_HINT})"
                )
                break
        previous = settings.get("previous_passphrases") or []
        if not isinstance(previous, list) or not all(
            isinstance(name, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) for name in previous
        ):
            reasons.append(f"model {model}: previous_passphrases must list .env variable names")
        for key in ("rpo_grace_seconds", "proven_within_days"):
            value = settings.get(key)
            if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
                reasons.append(f"model {model}: {key} must be a positive whole number")
        drill = _viper_string(settings.get("drill_schedule"))
        if not drill:
            continue
        cron_reasons = _check_cron(model, drill)
        if cron_reasons:
            reasons += [f"{reason} (drill_schedule; {DRILL_SCHEDULE_HINT})" for reason in cron_reasons]
            continue
        backup = schedule_of(body.get("schedule")) if isinstance(body, dict) and body.get("schedule") else None
        if not isinstance(backup, SpecSchedule):
            continue  # an @every or every: schedule's minutes depend on when the scheduler started
        clash = sorted(_schedule_minutes(parse_cron(drill), start, end) & _schedule_minutes(backup, start, end))
        if clash:
            reasons.append(
                f"model {model}: its drill_schedule '{drill}' starts at the same minute as its backup"
                f" ({clash[0]:%Y-%m-%d %H:%M}); a drill never runs at the moment of its model's backup:"
                f" choose another minute ({DRILL_SCHEDULE_HINT})"
            )
    coverage = restore_settings.get("coverage") if isinstance(restore_settings, Mapping) else None
    if coverage is not None:
        if not isinstance(coverage, dict):
            reasons.append("restore.yml: coverage must be a mapping")
        else:
            schedule = _viper_string(coverage.get("schedule"))
            if schedule:
                reasons += [
                    f"{reason} (coverage schedule; Ansible: backup_config_coverage_schedule)"
                    for reason in _check_cron("coverage", schedule)
                ]
            ignore = coverage.get("ignore") or []
            if not isinstance(ignore, list) or not all(isinstance(name, str) for name in ignore):
                reasons.append("restore.yml: coverage.ignore must be a list of database names")
    return reasons


def restore_config_problems(
    restore_text: str, gobackup_text: str, environ: Mapping[str, Any], sources: Mapping[str, str] | None = None
) -> list[str]:
    """Ansible filter: the reasons a rendered restore.yml cannot be used with
    the rendered gobackup.yml whose .env will hold `environ`."""
    environment = {str(key): "" if value is None else str(value) for key, value in environ.items()}
    document, reasons = check_text(str(gobackup_text), environment, "gobackup.yml")
    if reasons or not isinstance(document, dict):
        return []  # gobackup_config_problems names them
    try:
        settings = yaml.safe_load(go_expand(str(restore_text), lambda name: environment.get(name, ""))) or {}
    except yaml.YAMLError as error:
        return [f"restore.yml is not valid YAML: {yaml_problem(error)[0]}"]
    return _name_sources(restore_problems(document, settings if isinstance(settings, dict) else {}), sources)


# --- State kept by the tools in the state volume ----------------------------------

# What the drills (backup-restore --drill) and the coverage checks
# (backup-coverage) record; backup-status and backup-metrics read them.
DRILLS_STATE = "drills.json"
COVERAGE_STATE = "coverage.json"


def read_state(name: str) -> dict[str, Any]:
    """A JSON state file of STATE_DIR ({} when absent or unreadable)."""
    try:
        loaded = json.loads((STATE_DIR / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def write_state(name: str, data: Mapping[str, Any]) -> None:
    """Replace a JSON state file of STATE_DIR at once: a reader never sees half of it."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    temporary = STATE_DIR / f".{name}.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    temporary.chmod(0o600)
    os.replace(temporary, STATE_DIR / name)


# --- Command line -----------------------------------------------------------------


def _error(reasons: list[str], prefix: str = "config error") -> int:
    for reason in reasons:
        print(f"{prefix}: {reason}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    render = commands.add_parser("render", help="resolve ${VAR:-default} in a template")
    render.add_argument("template", type=Path)
    render.add_argument("output", type=Path)
    for name, text in (
        ("check", "check a config as GoBackup will read it"),
        ("endpoints", "print host<TAB>port<TAB>model<TAB>what for each server the config connects to"),
        ("storages", "print where each model uploads"),
        ("workdir", "print the workdir GoBackup will use"),
        ("notify-port", "print the port of the notification relay (nothing when no notifier uses it)"),
        ("running-jobs", "print one model per line for every GoBackup run in progress"),
        ("clean-temp", "remove the temp dirs a killed run left; print path<TAB>models per removed dir"),
    ):
        commands.add_parser(name, help=text).add_argument("config", type=Path)
    commands.add_parser(
        "settings", help="check the container's own settings (RUN_MODE, METRICS_PORT, ...) against a config"
    ).add_argument("config", type=Path)
    commands.add_parser("secret-variables", help="print the variables that may come from <NAME>_FILE")
    commands.add_parser("ca-bundle", help="write the CA bundle with EXTRA_CA_CERTS and print its path")
    arguments = parser.parse_args(argv)

    if arguments.command == "render":
        rendered = render_defaults(arguments.template.read_text(encoding="utf-8"), os.environ)
        arguments.output.parent.mkdir(parents=True, exist_ok=True)
        arguments.output.write_text(rendered, encoding="utf-8")
        arguments.output.chmod(0o600)
        return 0
    if arguments.command == "secret-variables":
        print("\n".join(SECRET_VARIABLES))
        return 0
    if arguments.command == "ca-bundle":
        try:
            bundle = ca_bundle(os.environ)
        except (ConfigError, OSError) as error:
            return _error(getattr(error, "reasons", [str(error)]), "ca-bundle error")
        if bundle:
            print(bundle)
        return 0
    if arguments.command == "settings":
        try:
            address = web_address(load_lenient(arguments.config, os.environ))
        except (ConfigError, OSError, yaml.YAMLError, ValueError, TypeError, AttributeError):
            address = None  # the config's own check names what is wrong with it
        problems = container_settings_problems(os.environ, address[1] if address else None)
        return _error(problems, "settings error") if problems else 0
    if arguments.command in ("workdir", "running-jobs", "clean-temp", "notify-port"):
        # No full check: these run at stop time too, when only the workdir matters.
        try:
            if not arguments.config.is_file():
                raise ConfigError([f"{arguments.config} does not exist"])
            document = load_lenient(arguments.config, os.environ)
            if arguments.command == "notify-port":
                print(next(iter(relay_channels(document).values()), ""))
                return 0
            work = workdir(document)
            if arguments.command == "workdir":
                print(work)
            elif arguments.command == "running-jobs":
                for model in running_jobs(work):
                    print(model)
            else:
                for path, models in clean_temp(work):
                    print(f"{path}\t{','.join(models)}")
        except ConfigError as error:
            return _error(error.reasons)
        except yaml.YAMLError as error:
            problem, line = yaml_problem(error)
            return _error([f"{arguments.config} is not valid YAML{f' (line {line})' if line else ''}: {problem}"])
        except OSError as error:
            return _error([f"{type(error).__name__}: {error}"])
        return 0
    try:
        document, _ = load(arguments.config, os.environ)
    except ConfigError as error:
        return _error(error.reasons)
    if arguments.command == "endpoints":
        for what, model, host, port in endpoints(document):
            print(f"{host}\t{port}\t{model}\t{what}")
    elif arguments.command == "storages":
        for model in document["models"]:
            print(f"model {model} uploads to {'; '.join(storages(document, model))}")
    else:
        print(f"config ok: {len(document['models'])} model(s) in {arguments.config}", file=sys.stderr)
    return 0


# --- Ansible filter plugin ----------------------------------------------------------


def gobackup_config_problems(
    config_text: str, environ: Mapping[str, Any], sources: Mapping[str, str] | None = None
) -> list[str]:
    """The checker's reasons for a rendered config whose `.env` will hold
    `environ` (written single-quoted); empty when fine. `sources` maps a
    variable to the Ansible variable that sets it, named in each reason."""
    environment = {str(key): "" if value is None else str(value) for key, value in environ.items()}
    reasons = []
    for name, value in environment.items():
        try:
            written = parse_dotenv_text(dotenv_line(name, value) + "\n").get(name)
        except ConfigError:
            written = None
        if written != value:
            reasons.append(f"{name} cannot be written to .env single-quoted without godotenv changing it")
    reasons += check_text(str(config_text), environment, "gobackup.yml")[1]
    return _name_sources(reasons, sources)


def container_settings_problems(
    environ: Mapping[str, Any],
    web_port: Any = None,
    sources: Mapping[str, str] | None = None,
    empty_is_default: bool = True,
) -> list[str]:
    """The reasons the backup container's own settings (its environment in
    compose.yml) are not usable; empty when fine. The entrypoint checks them at
    start, the backup_stack role before it deploys. `web_port` is GoBackup's,
    which the metrics may not share; `sources` as for gobackup_config_problems.
    The entrypoint takes an empty value for the default; the role, which
    renders its values into compose.yml, does not (empty_is_default false)."""
    settings = {str(key): "" if value is None else str(value) for key, value in environ.items()}
    reasons = []
    for name, allowed, default in (
        ("RUN_MODE", ("once", "daemon"), "daemon"),
        ("SKIP_HEALTH_CHECK", ("true", "false"), "false"),
    ):
        value = settings.get(name, default)
        value = (value or default) if empty_is_default else value
        if value not in allowed:
            reasons.append(f"{name} must be '{allowed[0]}' or '{allowed[1]}', not '{value}'")
    grace = settings.get("STOP_GRACE_PERIOD", "3600")
    grace = (grace or "3600") if empty_is_default else grace
    if not re.fullmatch(r"[0-9]{1,9}", grace):
        reasons.append(f"STOP_GRACE_PERIOD must be a whole number of seconds, not '{grace}'")
    metrics_port = settings.get("METRICS_PORT", "")
    if metrics_port and not (re.fullmatch(r"[0-9]{1,5}", metrics_port) and 1 <= int(metrics_port) <= 65535):
        reasons.append(f"METRICS_PORT must be a port number (1-65535) or empty, not '{metrics_port}'")
    elif metrics_port and web_port is not None and str(int(metrics_port)) == str(web_port).strip():
        reasons.append(
            "METRICS_PORT must differ from web.port, the port of GoBackup's own web server in the container"
            f" ({web_port})"
        )
    return _name_sources(reasons, sources)


def _name_sources(reasons: list[str], sources: Mapping[str, str] | None) -> list[str]:
    """Each reason with the first mention of a variable followed by the
    Ansible variable that sets it."""
    sources = dict(sources or {})
    if not sources:
        return reasons
    pattern = re.compile(r"\b(" + "|".join(re.escape(name) for name in sorted(sources, key=len, reverse=True)) + r")\b")

    def name_source(reason: str) -> str:
        named: set[str] = set()

        def replace(match: re.Match[str]) -> str:
            if match.group(1) in named:
                return match.group(0)
            named.add(match.group(1))
            return f"{match.group(1)} (set by {sources[match.group(1)]})"

        return pattern.sub(replace, reason)

    return [name_source(reason) for reason in reasons]


class FilterModule:
    """Ansible filters: the role checks its rendered config with these rules."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "gobackup_config_problems": gobackup_config_problems,
            "container_settings_problems": container_settings_problems,
            "restore_config_problems": restore_config_problems,
        }


if __name__ == "__main__":
    sys.exit(main())
