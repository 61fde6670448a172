"""The port of Go's time.ParseDuration (sqlserver_backup.go_time_duration),
which decides whether GoBackup v3.1.1 takes a `schedule.every`: the same
values accepted with the same nanoseconds, and the same values refused, as Go
itself (tests/standins/cmd/portref)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlserver_backup.go_time_duration import go_parse_duration
from sqlserver_backup_testing import ask_portref

# What Go answered for these (asserted against Go below as well).
ACCEPTED = {
    "1h": 3_600_000_000_000,
    "1h30m": 5_400_000_000_000,
    "1.5s": 1_500_000_000,
    "-2m": -120_000_000_000,
    "0": 0,
    "+0.5ms": 500_000,
    ".5h": 1_800_000_000_000,
    "1\u03bcs": 1_000,
    "1\u00b5s": 1_000,
    "24h": 86_400_000_000_000,
    "2562047h47m16.854775807s": (1 << 63) - 1,
    "0.000000001s": 1,
    "1.0000000000000000000001h": 3_600_000_000_000,
    "-0": 0,
    "1h1h": 7_200_000_000_000,
}
REFUSED = [
    "",
    "1day",
    "1d",
    "1",
    "h",
    ".h",
    "1h ",
    " 1h",
    "1H",
    "9999999999999999999ns",
    "2562047h47m16.854775808s",
    "+",
    "-",
    "1.h.",
    "1..5h",
    "1e3s",
    "1_000s",
]


def test_the_cases_are_what_go_returns(portref: Path) -> None:
    answers = ask_portref(portref, "duration", [*ACCEPTED, *REFUSED])
    assert [(answer["ok"], answer["nanoseconds"]) for answer in answers] == [
        *((True, nanoseconds) for nanoseconds in ACCEPTED.values()),
        *((False, 0) for _ in REFUSED),
    ]


@pytest.mark.parametrize(("text", "nanoseconds"), ACCEPTED.items())
def test_go_durations(text: str, nanoseconds: int) -> None:
    assert go_parse_duration(text) == nanoseconds


@pytest.mark.parametrize("text", REFUSED)
def test_go_durations_refused(text: str) -> None:
    with pytest.raises(ValueError, match="time:"):
        go_parse_duration(text)
