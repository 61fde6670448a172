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
measured duration of every model of the process with a run in the window
that can still hold the lock at its due time, itself included. The durations
come from GoBackup's own /metrics (sum and count per model), recorded in
run-durations.json on the state volume by the health check, which reads them
every 30 s; a model never measured adds nothing until its first run.
"""

from __future__ import annotations

import datetime
import math
import os
from collections.abc import Mapping
from typing import Any

from sqlserver_backup import gobackup_rules, restore_rules, state_files

DURATIONS_STATE = "run-durations.json"
# The RPO grace of a model restore.yml names none for (the image without Ansible).
DEFAULT_GRACE_VARIABLE = "BACKUP_HEALTH_GRACE"


def next_due(body: Mapping[str, Any], since: float, zone: datetime.tzinfo) -> float | None:
    """The first run GoBackup schedules after `since` (a Unix time), or None
    for a model without a schedule. GoBackup ignores schedule.enabled: any
    schedule block is scheduled."""
    schedule = body.get("schedule") if isinstance(body, Mapping) else None
    if not isinstance(schedule, dict):
        return None
    moment = gobackup_rules.schedule_of(schedule).next(datetime.datetime.fromtimestamp(since, zone))
    return moment.timestamp() if moment else None


def default_grace(environ: Mapping[str, str] = os.environ) -> int:
    """The RPO grace of a model restore.yml names none for."""
    return int(environ.get(DEFAULT_GRACE_VARIABLE) or restore_rules.DEFAULT_RPO_GRACE_SECONDS)


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
    if count < seen_count:  # GoBackup started over
        seen_count, seen_total = 0.0, 0.0
    duration = (total - seen_total) / (count - seen_count) if count > seen_count else None
    return duration, (count, total)


def record_durations(values: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    """Takes in each model's (count, sum) of gobackup_duration_seconds and
    keeps its last duration in DURATIONS_STATE; returns every model's."""
    state = state_files.read_state(DURATIONS_STATE)
    models = state.get("models") if isinstance(state.get("models"), dict) else {}
    changed = False
    for model, (count, total) in values.items():
        known = models.get(model) if isinstance(models.get(model), dict) else {}
        duration, seen = last_duration(count, total, (known.get("count", 0.0), known.get("sum", 0.0)))
        if duration is None and seen == (known.get("count"), known.get("sum")):
            continue
        seconds = known.get("seconds") if duration is None else duration
        models[model] = {"count": seen[0], "sum": seen[1], "seconds": seconds}
        changed = True
    if changed:
        state_files.write_state(DURATIONS_STATE, {"models": models})
    return durations(state={"models": models})


def durations(state: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Each measured model's last duration in seconds, from DURATIONS_STATE."""
    state = state_files.read_state(DURATIONS_STATE) if state is None else state
    models = state.get("models") if isinstance(state.get("models"), dict) else {}
    return {
        str(model): float(entry["seconds"])
        for model, entry in models.items()
        if isinstance(entry, dict) and isinstance(entry.get("seconds"), (int, float))
    }


def queue_seconds(
    document: Mapping[str, Any], due: float, measured: Mapping[str, float], zone: datetime.tzinfo
) -> float:
    """How long the runs that can hold GoBackup's lock at `due` take: every
    model with a scheduled run at most that long before `due` (the window
    is the sum of every measured duration: the longest a queue can carry
    over), each for its last measured duration."""
    window = sum(measured.values())
    queued = 0.0
    for model, body in (document.get("models") or {}).items():
        seconds = measured.get(str(model).lower())
        if not seconds:
            continue
        first = next_due(body or {}, due - window - 1, zone)
        if first is not None and first <= due:
            queued += seconds
    return queued


def grace_seconds(
    model: str,
    document: Mapping[str, Any],
    due: float,
    settings: Mapping[str, Any],
    measured: Mapping[str, float],
    zone: datetime.tzinfo,
    default: int | None = None,
) -> int:
    """How long after `due` the model's backup may succeed before it is
    overdue: its RPO grace plus the time its queue takes."""
    return rpo_grace(model, settings, default) + math.ceil(queue_seconds(document, due, measured, zone))
