#!/usr/bin/env python3
"""Docker HEALTHCHECK for the backup container.

A one-shot container is healthy while it runs. In daemon mode the container is
unhealthy when GoBackup's scheduler does not answer /status on its loopback web
server, when a model's last scheduled backup failed, or when a model has missed
a scheduled backup for longer than BACKUP_HEALTH_GRACE seconds (default 7200:
time for the run itself). GoBackup's /metrics live in the scheduler's memory,
so only runs since the container started count.
"""

from __future__ import annotations

import datetime
import os
import re
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, "/usr/local/lib/gobackup-image")
import backupcfg

METRIC = re.compile(r'^gobackup_last_timestamp\{model="([^"]*)",status="([^"]*)"\}\s+(\S+)$', re.MULTILINE)


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
        return response.read().decode()


def last_runs(metrics: str) -> dict[tuple[str, str], float]:
    return {(model, status): float(value) for model, status, value in METRIC.findall(metrics)}


def problems(document: dict, runs: dict[tuple[str, str], float], started: float, now: datetime.datetime) -> list[str]:
    grace = float(os.environ.get("BACKUP_HEALTH_GRACE", "7200"))
    found = []
    for model, body in document["models"].items():
        success, failure = runs.get((model, "success"), 0.0), runs.get((model, "failure"), 0.0)
        where = "; ".join(backupcfg.storages(document, model))
        if failure > success:
            at = datetime.datetime.fromtimestamp(failure).isoformat(timespec="seconds")
            found.append(f"the last backup of model {model} failed at {at} ({where}); see docker logs")
            continue
        schedule = body.get("schedule") or {}
        if schedule.get("enabled", True) is False or not schedule.get("cron"):
            continue
        due = backupcfg.cron_previous(str(schedule["cron"]), now)
        if due and due.timestamp() >= started and success < due.timestamp() and (now - due).total_seconds() > grace:
            found.append(f"model {model} has no successful backup since its run due at {due.isoformat()} ({where})")
    return found


def main() -> int:
    if os.environ.get("RUN_MODE", "daemon") == "once":
        return 0
    active = backupcfg.ACTIVE_CONFIG
    if not active.is_file():
        print("unhealthy: the entrypoint has not validated a configuration yet")
        return 1
    # Secrets given as *_FILE live only in GoBackup's environment, not in this
    # probe's, so read the config without checking it.
    document = backupcfg.load_lenient(Path(active.read_text(encoding="utf-8").strip()), os.environ)
    address = backupcfg.web_address(document)
    if address is None:
        return 0  # web server disabled: Docker's restart policy watches the process
    base = f"http://{address[0]}:{address[1]}"
    try:
        fetch(f"{base}/status")
        metrics = fetch(f"{base}/metrics")
    except OSError as error:
        print(f"unhealthy: the scheduler does not answer on {base}: {error}")
        return 1
    started = active.stat().st_mtime
    found = problems(document, last_runs(metrics), started, datetime.datetime.now())
    for problem in found:
        print(f"unhealthy: {problem}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
