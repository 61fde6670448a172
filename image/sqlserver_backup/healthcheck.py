"""Docker HEALTHCHECK for the backup container.

A one-shot container is healthy while it runs. In daemon mode the container is
unhealthy when GoBackup's scheduler (each worker's, workers.py) does not answer
/status on its loopback web server, when a model's last scheduled backup failed, or when a model's first
run due after its last success (or after the container started) is further in
the past than the model's grace: its RPO grace plus the measured time of the
runs queued with it (overdue.py, the rule backup-status and the metrics
apply too). Schedules are computed by gobackup_rules.schedule_of exactly as
GoBackup's scheduler reads them (cron with names, '?', descriptors, @every
and TZ= prefixes; every). GoBackup's /metrics live in the scheduler's memory,
so only runs since the container started count; the probe records each
model's last duration from them (overdue.record_durations). Any failure of the probe itself is reported as one
`unhealthy: ...` line, never a traceback.
"""

from __future__ import annotations

import datetime
import os
import re
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sqlserver_backup import (
    config_yaml,
    go_time_location,
    gobackup_config,
    overdue,
    restore_rules,
    state_files,
    workers,
)

METRIC = re.compile(r'^gobackup_last_timestamp\{model="([^"]*)",status="([^"]*)"\}\s+(\S+)$', re.MULTILINE)
DURATION = re.compile(r'^gobackup_duration_seconds_(count|sum)\{model="([^"]*)"\}\s+(\S+)$', re.MULTILINE)


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
        return response.read().decode()


def last_runs(metrics: str) -> dict[tuple[str, str], float]:
    return {(model, status): float(value) for model, status, value in METRIC.findall(metrics)}


def run_durations(metrics: str) -> dict[str, tuple[float, float]]:
    """Each model's (count, sum) of GoBackup's gobackup_duration_seconds."""
    found: dict[str, dict[str, float]] = {}
    for field, model, value in DURATION.findall(metrics):
        found.setdefault(model, {})[field] = float(value)
    return {model: (fields["count"], fields["sum"]) for model, fields in found.items() if len(fields) == 2}


def problems(
    document: dict,
    runs: dict[tuple[str, str], float],
    started: float,
    now: datetime.datetime,
    zone: datetime.tzinfo | None = None,
    settings: Mapping[str, Any] | None = None,
    measured: Mapping[str, float] | None = None,
    groups: list[list[str]] | None = None,
) -> list[str]:
    """Why the backups are unhealthy. `settings`: restore.yml's (each model's
    rpo_grace_seconds); `measured`: each model's last duration; `groups`:
    each worker's models (workers.worker_models)."""
    zone = zone or go_time_location.local_zone()
    grace = overdue.Grace(document, settings or {}, measured or {}, zone, workers=groups)
    found = []
    for model, body in document["models"].items():
        name = str(model).lower()  # GoBackup's metrics use viper's lower-cased keys
        success, failure = runs.get((name, "success"), 0.0), runs.get((name, "failure"), 0.0)
        where = "; ".join(gobackup_config.storages(document, model))
        if failure > success:
            at = datetime.datetime.fromtimestamp(failure, zone).isoformat(timespec="seconds")
            found.append(f"the last backup of model {name} failed at {at} ({where}); see docker logs")
            continue
        try:
            due = overdue.next_due(body or {}, max(success, started), zone)
        except ValueError as error:  # CronError included: the checker refuses these
            found.append(f"model {name}: its schedule cannot be computed: {error}")
            continue
        if due is None:
            continue
        seconds = grace.seconds(str(model), due)
        if now.timestamp() - due > seconds:
            at = datetime.datetime.fromtimestamp(due, zone).isoformat()
            found.append(
                f"model {name} has no successful backup since its run due at {at}, nor in the {seconds} s after it"
                f" (its RPO grace and the measured time of the runs queued with it) ({where})"
            )
    return found


def probe() -> int:
    if os.environ.get("RUN_MODE", "daemon") == "once":
        return 0
    active = state_files.ACTIVE_CONFIG
    if not active.is_file():
        print("unhealthy: the entrypoint has not validated a configuration yet")
        return 1
    # Secrets given as *_FILE live only in GoBackup's environment, not in this
    # probe's, so read the config without checking it.
    config = Path(active.read_text(encoding="utf-8").strip())
    document = gobackup_config.load_lenient(config, os.environ)
    processes = workers.read_workers(config, os.environ)
    addresses = [process.address for process in processes if process.address is not None]
    if not addresses:
        return 0  # web server disabled: Docker's restart policy watches the process
    texts = []
    for host, port in addresses:  # one GoBackup per worker, each with its models' metrics
        base = f"http://{host}:{port}"
        try:
            fetch(f"{base}/status")
            texts.append(fetch(f"{base}/metrics"))
        except OSError as error:
            print(f"unhealthy: the scheduler does not answer on {base}: {error}")
            return 1
    metrics = "\n".join(texts)
    started = active.stat().st_mtime
    zone = go_time_location.local_zone()
    try:
        settings = restore_rules.load_restore_settings(config, os.environ)
    except Exception:  # the entrypoint checked it at start; without it, the default grace
        settings = {}
    try:
        measured = overdue.record_durations(run_durations(metrics), started)
    except OSError:  # a state volume it cannot write: the durations recorded before
        measured = overdue.durations()
    now = datetime.datetime.now(zone)
    groups = [process.models for process in processes]
    found = problems(document, last_runs(metrics), started, now, zone, settings, measured, groups)
    for problem in found:
        print(f"unhealthy: {problem}")
    return 1 if found else 0


def main() -> int:
    try:
        return probe()
    except yaml.YAMLError as error:  # its message would quote the (expanded) line
        line = config_yaml.yaml_problem(error)[1]
        print(f"unhealthy: the active configuration is not valid YAML{f' (line {line})' if line else ''}")
    except Exception as error:  # Docker shows the first line: make it the reason
        print(f"unhealthy: the health check itself failed: {type(error).__name__}: {error}")
    return 1
