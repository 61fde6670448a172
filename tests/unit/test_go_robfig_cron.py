"""The ports of robfig/cron v3.0.1 (sqlserver_backup.go_robfig_cron) and of
gocron v1.18.0's Cron() (go_gocron) schedule exactly as GoBackup v3.1.1 does:
the same expressions accepted and refused, the same next activation times in
several zones (DST changes included), checked against robfig/cron itself
(tests/standins/cmd/cronref), which also exercises the ports of
time.LoadLocation (TZ= prefixes) and time.ParseDuration (@every)."""

from __future__ import annotations

import datetime
import json
import subprocess
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlserver_backup.go_gocron import EverySchedule, parse_cron
from sqlserver_backup.go_robfig_cron import CronError
from sqlserver_backup_testing import build_reference

# Expressions for schedule.cron, valid and not, compared with robfig/cron v3
# called the way gocron v1.18.0 calls it (tests/standins/cmd/cronref).
CRON_CORPUS = [
    "0 2 * * *",
    "*/15 * * * *",
    "30 1 * * 1-5",
    "0 0 1 * *",
    "0 0 1 1 *",
    "5 4 * * sun",
    "0 22 * * MON-fri",
    "0 3 * jan,JUL *",
    "0 3 1 Feb *",
    "0 6 * * Sat,sun",
    "0 12 ? * *",
    "0 12 * * ?",
    "0 12 ? ? ?",
    "*/0 * * * *",
    "0 0 * * 7",
    "0 0 * * 0-7",
    "0 0 * * 6",
    "5-3 * * * *",
    "0 0 L * *",
    "0 0 * * 1#2",
    "0 0 * * 5L",
    "0 0 15W * *",
    "",
    " ",
    "0 2 * * * *",
    "0 0 2 * * *",
    "0 2 * *",
    "0 2 * * * * *",
    "60 * * * *",
    "0 24 * * *",
    "0 0 0 * *",
    "0 0 32 * *",
    "0 0 * 0 *",
    "0 0 * 13 *",
    "-1 * * * *",
    "+5 * * * *",
    "05 02 * * *",
    "0 2 * * 1,3,5",
    "0 2 1,15 * *",
    "0 2 1-7 * 1",
    "0 2 * * 1",
    "0 2 13 * 5",
    "0 2 */1 * 1",
    "0 2 1-31 * 1",
    "0 2 * * */1",
    "0 2 * * 1/2",
    "5/10 * * * *",
    "0-59/20 * * * *",
    "*/7 */5 * * *",
    "1,,2 * * * *",
    "0 , * * *",
    "*-5 * * * *",
    "?/30 * * * *",
    "1-2-3 * * * *",
    "1/2/3 * * * *",
    "0 2 * * mon-sun",
    "0 2 * * sun-sat",
    "0 2 * * sat-sun",
    "0 2 * * monday",
    "0 2 * dec-jan *",
    "0 2 * january *",
    "0 2 31 2 *",
    "0 2 30 2 *",
    "0 2 29 2 *",
    "0 2 31 * *",
    "30 2 * * *",
    "30 1 * * *",
    "0 3 * * *",
    "* * * * *",
    "0 0 * * *",
    "0\t2 * *\t*",
    "  0 2 * * *  ",
    "0 2 * * *\t",
    "a * * * *",
    "0x10 * * * *",
    "1.5 * * * *",
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
    "@Daily",
    "@reboot",
    "@every 1h",
    "@every 90s",
    "@every 1day",
    "@every 1h30m",
    "@every 1.5h",
    "@every 500ms",
    "@every 0",
    "@every -1h",
    "@every",
    "@every ",
    "@every  1h",
    "@every 1H",
    "@every 2h ",
    "@every 1\u00b5s",
    "@every 10000000000h",
    "TZ=UTC 0 2 * * *",
    "CRON_TZ=UTC 0 2 * * *",
    "TZ=Europe/Berlin 0 2 * * *",
    "CRON_TZ=America/New_York 30 2 * * *",
    "TZ=Australia/Lord_Howe 15 2 * * *",
    "TZ=Local 0 2 * * *",
    "TZ= 0 2 * * *",
    "TZ=UTC",
    "TZ=UTC @daily",
    "CRON_TZ=Asia/Tokyo @every 1h",
    "TZ=Mars/Olympus 0 2 * * *",
    "TZ=../etc/passwd 0 2 * * *",
    "TZ=/etc/localtime 0 2 * * *",
    "TZ=Europe 0 2 * * *",
    "tz=UTC 0 2 * * *",
    " TZ=UTC 0 2 * * *",
    "TZ=UTC  0 2 * * *",
    "CRON_TZ=Local @hourly",
]
CRON_STARTS = ["2026-03-28T21:17:42.5Z", "2026-10-24T23:59:59Z", "2027-12-31T23:00:00Z"]
CRON_ZONES = ["Europe/Berlin", "UTC", "America/New_York", "Australia/Lord_Howe"]


@pytest.fixture(scope="module")
def cronref(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """robfig/cron v3 as gocron calls it, built from tests/standins/cmd/cronref."""
    return build_reference("cronref", tmp_path_factory.mktemp("cronref"))


def python_cron(expression: str, start: datetime.datetime, count: int = 5) -> dict:
    try:
        schedule = parse_cron(expression)
    except CronError:
        return {"expr": expression, "ok": False, "next": []}
    times, at = [], start
    for _ in range(count):
        at = schedule.next(at)
        if at is None:
            break
        times.append(at.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return {"expr": expression, "ok": True, "next": times}


@pytest.mark.parametrize("zone", CRON_ZONES)
@pytest.mark.parametrize("start", CRON_STARTS)
def test_cron_matches_robfig(cronref: Path, zone: str, start: str) -> None:
    assert len(CRON_CORPUS) >= 100
    result = subprocess.run(
        [str(cronref), "-start", start, "-n", "5"],
        input="".join(f"{expression}\n" for expression in CRON_CORPUS),
        env={"TZ": zone},
        capture_output=True,
        text=True,
        check=True,
    )
    expected = [json.loads(line) for line in result.stdout.splitlines()]
    assert [entry["expr"] for entry in expected] == CRON_CORPUS
    begin = datetime.datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(ZoneInfo(zone))
    mismatches = [
        (entry, ours)
        for entry in expected
        if (ours := python_cron(entry["expr"], begin)) != {key: entry[key] for key in ("expr", "ok", "next")}
    ]
    assert not mismatches
    accepted = {entry["expr"] for entry in expected if entry["ok"]}
    # The corpus exercises both sides, including names, '?', descriptors and zones.
    assert {"0 22 * * MON-fri", "0 12 ? * *", "@every 90s", "TZ=Europe/Berlin 0 2 * * *"} <= accepted
    assert not {"*/0 * * * *", "0 0 * * 7", "5-3 * * * *", "@every 1day", "0 2 * * * *", "", "TZ=UTC"} & accepted


def test_every_runs_its_go_duration_after_the_last_run() -> None:
    start = datetime.datetime(2026, 3, 28, 21, 17, 42, 500000, tzinfo=datetime.timezone.utc)
    assert EverySchedule(90 * 10**9).next(start) == start + datetime.timedelta(seconds=90)
