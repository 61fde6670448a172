"""When a model's backup is overdue: one rule for the health check,
backup-status and the metrics (and, through sqlserver_backup_rpo_grace_seconds,
the alert rules).

A model's next backup is due at its first scheduled run after its last
success, as GoBackup's scheduler reads the schedule. GoBackup v3.1.1 runs the
models of one process one at a time, under one lock: a model due at 02:00
beside 99 others may start hours later without anything being wrong. So its
grace is its RPO grace (restore.yml's rpo_grace_seconds, which Ansible sets
per model: rpo_grace_seconds of the database entry, else
backup_config_rpo_grace_seconds) plus the time its queue takes: the last
measured duration of every model of the process whose run can still hold
the lock at its due time (a cron run in the window before it, as long as all
measured runs one after another; any every/@every schedule, whose runs fall
wherever its last one ended), itself included. The durations
come from GoBackup's own /metrics (sum and count per model), recorded in
run-durations.json on the state volume by the health check at each probe; a
model never measured adds nothing until its first run.
"""

from __future__ import annotations

import datetime
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlserver_backup import gobackup_rules, restore_rules, state_files
from sqlserver_backup.go_gocron import EverySchedule
from sqlserver_backup.go_robfig_cron import ConstantDelaySchedule

DURATIONS_STATE = "run-durations.json"
# The RPO grace of a model restore.yml names none for (the image without Ansible).
DEFAULT_GRACE_VARIABLE = "BACKUP_HEALTH_GRACE"


def model_schedule(body: Any) -> Any:
    """What GoBackup schedules for a model's body, or None for a model without
    a schedule block. GoBackup ignores schedule.enabled: any schedule block is
    scheduled. ValueError (CronError included) when it cannot be read."""
    schedule = body.get("schedule") if isinstance(body, Mapping) else None
    return gobackup_rules.schedule_of(schedule) if isinstance(schedule, dict) else None


def next_due(body: Mapping[str, Any], since: float, zone: datetime.tzinfo) -> float | None:
    """The first run GoBackup schedules after `since` (a Unix time), or None
    for a model without a schedule."""
    schedule = model_schedule(body)
    moment = schedule.next(datetime.datetime.fromtimestamp(since, zone)) if schedule is not None else None
    return moment.timestamp() if moment else None


def default_grace(environ: Mapping[str, str] = os.environ) -> int:
    """The RPO grace of a model restore.yml names none for: BACKUP_HEALTH_GRACE
    (the entrypoint refuses one that is not a whole number), else 3600."""
    value = environ.get(DEFAULT_GRACE_VARIABLE) or ""
    return int(value) if value.isdigit() else restore_rules.DEFAULT_RPO_GRACE_SECONDS


def rpo_grace(model: str, settings: Mapping[str, Any], default: int | None = None) -> int:
    """restore.yml's rpo_grace_seconds of the model, else `default`
    (default_grace() when None)."""
    models = settings.get("models") if isinstance(settings.get("models"), dict) else {}
    target = models.get(model) if isinstance(models.get(model), dict) else {}
    return int(target.get("rpo_grace_seconds") or (default_grace() if default is None else default))


def last_duration(count: float, total: float, seen: tuple[float, float]) -> tuple[float | None, tuple[float, float]]:
    """The duration of the runs GoBackup counted since `seen` (its
    gobackup_duration_seconds count and sum then), or None when none ended;
    and what is seen now. Several runs between readings: their mean."""
    seen_count, seen_total = seen
    if count < seen_count or total < seen_total:  # GoBackup started over
        seen_count, seen_total = 0.0, 0.0
    duration = (total - seen_total) / (count - seen_count) if count > seen_count else None
    return duration, (count, total)


def number(value: Any) -> float | None:
    """A number of a state file, or None (absent, or not a number)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def record_durations(values: Mapping[str, tuple[float, float]], started: float) -> dict[str, float]:
    """Takes in each model's (count, sum) of gobackup_duration_seconds, read
    from the GoBackup that started at `started`, and keeps its last duration
    in DURATIONS_STATE; returns every model's. A GoBackup started since the
    last reading counts from 0 again: its counts are not compared with the
    old ones."""
    state = state_files.read_state(DURATIONS_STATE)
    models = state.get("models") if isinstance(state.get("models"), dict) else {}
    same_start = number(state.get("started")) == started
    changed = not same_start
    for model, (count, total) in values.items():
        known = models.get(model) if isinstance(models.get(model), dict) else {}
        seen = (number(known.get("count")) or 0.0, number(known.get("sum")) or 0.0) if same_start else (0.0, 0.0)
        duration, now_seen = last_duration(count, total, seen)
        if duration is None and now_seen == seen and same_start:
            continue
        seconds = duration if duration is not None and duration >= 0 else number(known.get("seconds"))
        models[model] = {"count": now_seen[0], "sum": now_seen[1], "seconds": seconds}
        changed = True
    state = {"started": started, "models": models}
    if changed:
        state_files.write_state(DURATIONS_STATE, state)
    return durations(state)


def durations(state: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Each measured model's last duration in seconds, from DURATIONS_STATE."""
    state = state_files.read_state(DURATIONS_STATE) if state is None else state
    models = state.get("models") if isinstance(state.get("models"), dict) else {}
    found = {}
    for model, entry in models.items():
        seconds = number(entry.get("seconds")) if isinstance(entry, dict) else None
        if seconds is not None and seconds >= 0:
            found[str(model)] = seconds
    return found


def fires_by(schedule: Any, since: datetime.datetime, due: float) -> bool:
    """Whether a cron schedule has a run after `since` and at `due` at the latest."""
    moment = schedule.next(since)
    return moment is not None and moment.timestamp() <= due


class Grace:
    """The rule for the models of a container, as one reading sees them: each
    schedule parsed once, each due time's queue found once (a host with 100
    models asks for every model's grace at each probe). A model queues only
    with the models of its own GoBackup process: `workers` lists each
    worker's model names (workers.worker_models); None, one process runs all."""

    def __init__(
        self,
        document: Mapping[str, Any],
        settings: Mapping[str, Any],
        measured: Mapping[str, float],
        zone: datetime.tzinfo,
        default: int | None = None,
        workers: Sequence[Iterable[str]] | None = None,
    ) -> None:
        self.settings, self.zone = settings, zone
        self.worker_of = {str(name).lower(): index for index, names in enumerate(workers or []) for name in names}
        self.default = default_grace() if default is None else default
        self.measured = {str(name).lower(): seconds for name, seconds in measured.items() if seconds > 0}
        # The longest a worker's queue can carry over: every measured run of
        # its models, one after another.
        self.window: dict[int | None, float] = {}
        for name, seconds in self.measured.items():
            worker = self.worker_of.get(name)
            self.window[worker] = self.window.get(worker, 0.0) + seconds
        self.schedules: dict[str, Any] = {}
        for model, body in (document.get("models") or {}).items():
            try:
                schedule = model_schedule(body)
            except ValueError:  # the model's own check names it; it queues nothing here
                continue
            if schedule is not None:
                self.schedules[str(model).lower()] = schedule
        self.queued_at: dict[tuple[float, int | None], set[str]] = {}

    def queued(self, due: float, worker: int | None = None) -> set[str]:
        """The measured models of `worker` whose runs can hold its lock at
        `due`: a cron run at most its queue's window before it, or any
        interval schedule (every, @every: its runs fall wherever its last
        one ended)."""
        if (due, worker) not in self.queued_at:
            since = datetime.datetime.fromtimestamp(due - self.window.get(worker, 0.0) - 1, self.zone)
            self.queued_at[(due, worker)] = {
                model
                for model, schedule in self.schedules.items()
                if model in self.measured
                and self.worker_of.get(model) == worker
                and (isinstance(schedule, (ConstantDelaySchedule, EverySchedule)) or fires_by(schedule, since, due))
            }
        return self.queued_at[(due, worker)]

    def queue_seconds(self, model: str, due: float) -> float:
        """How long the runs queued with the model's run due at `due` take,
        its own included."""
        name = str(model).lower()
        queue = self.queued(due, self.worker_of.get(name))
        return sum(self.measured[other] for other in queue | ({name} & self.measured.keys()))

    def seconds(self, model: str, due: float) -> int:
        """How long after `due` the model's backup may succeed before it is
        overdue: its RPO grace plus the time its queue takes."""
        return rpo_grace(model, self.settings, self.default) + math.ceil(self.queue_seconds(model, due))
