"""How gocron v1.18.0, GoBackup v3.1.1's scheduler, turns a model's schedule
into a robfig/cron schedule or a fixed interval: Scheduler.Cron(expression)
and Scheduler.Every(duration).

Cron() hands robfig/cron v3's standard parser the expression prefixed with
`CRON_TZ=<time.Local> ` unless it names a zone itself; Every() runs
`duration` after the start, then `duration` after each run. Tested against
gocron's call of robfig/cron (tests/standins/cmd/cronref)."""

from __future__ import annotations

import datetime

from sqlserver_backup.go_robfig_cron import ConstantDelaySchedule, SpecSchedule, robfig_parse_standard, to_unix


def parse_cron(expression: str) -> SpecSchedule | ConstantDelaySchedule:
    """A cron expression as gocron's Cron() schedules it (CronError when refused)."""
    if expression.startswith(("TZ=", "CRON_TZ=")):
        return robfig_parse_standard(expression)
    return robfig_parse_standard(f"CRON_TZ=Local {expression}")


class EverySchedule:
    """gocron's Every(<Go duration>): a run `duration` after the start, then
    `duration` after each run."""

    def __init__(self, duration_ns: int) -> None:
        self.duration_ns = duration_ns

    def next(self, after: datetime.datetime) -> datetime.datetime:
        seconds, nanos = to_unix(after)
        return datetime.datetime.fromtimestamp(seconds + (nanos + self.duration_ns) / 1e9, after.tzinfo)
