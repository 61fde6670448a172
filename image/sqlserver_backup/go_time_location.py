"""Go's time.LoadLocation and time.Local (Go 1 standard library), as a Go
binary without embedded tzdata (GoBackup v3.1.1 embeds none) finds zones:
from the system's zoneinfo directories, TZ naming the zone of time.Local.

robfig/cron v3 loads the zone of a `TZ=`/`CRON_TZ=` prefix with LoadLocation;
gocron v1.18.0 schedules everything else in time.Local. Tested through the
cron reference (tests/standins/cmd/cronref), which runs in several zones."""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from zoneinfo import ZoneInfo

# Go's platformZoneSources on Unix, in its order.
ZONEINFO_SOURCES = ("/usr/share/zoneinfo/", "/usr/share/lib/zoneinfo/", "/usr/lib/locale/TZ/", "/etc/zoneinfo/")


def _zone_from_file(path: str) -> datetime.tzinfo | None:
    try:
        with open(path, "rb") as handle:
            return ZoneInfo.from_file(handle, key=path)
    except (OSError, ValueError):
        return None


def go_load_location(name: str) -> datetime.tzinfo | None:
    """time.LoadLocation from the system zoneinfo: None stands for
    time.Local; ValueError when Go refuses the name."""
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
