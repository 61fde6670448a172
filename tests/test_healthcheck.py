"""The health verdict from GoBackup's metrics: a failed last run or a missed
schedule is unhealthy and names the model and where it uploads."""

from __future__ import annotations

import datetime
import importlib.util
import sys

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "image"))
spec = importlib.util.spec_from_file_location("docker_healthcheck", REPO / "image" / "docker-healthcheck.py")
healthcheck = importlib.util.module_from_spec(spec)
spec.loader.exec_module(healthcheck)

DOCUMENT = {
    "models": {
        "sales": {
            "schedule": {"cron": "0 2 * * *"},
            "storages": {"minio": {"type": "minio", "endpoint": "http://minio:9000", "bucket": "backups"}},
        }
    }
}
NOW = datetime.datetime(2026, 11, 23, 12, 0, 0)
DUE = datetime.datetime(2026, 11, 23, 2, 0, 0).timestamp()
STARTED_BEFORE_DUE = DUE - 3600


def metrics(**timestamps: float) -> str:
    return "\n".join(
        f'gobackup_last_timestamp{{model="sales",status="{status}"}} {value}' for status, value in timestamps.items()
    )


def test_metrics_are_read() -> None:
    assert healthcheck.last_runs(metrics(success=1.5e9, failure=1.6e9)) == {
        ("sales", "success"): 1.5e9,
        ("sales", "failure"): 1.6e9,
    }


def test_a_failed_last_run_is_unhealthy_and_names_the_storage() -> None:
    runs = healthcheck.last_runs(metrics(success=DUE - 86400, failure=DUE + 60))
    [problem] = healthcheck.problems(DOCUMENT, runs, STARTED_BEFORE_DUE, NOW)
    assert "the last backup of model sales failed" in problem
    assert "http://minio:9000 bucket backups" in problem


def test_a_missed_schedule_is_unhealthy_after_the_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKUP_HEALTH_GRACE", "3600")
    [problem] = healthcheck.problems(DOCUMENT, {}, STARTED_BEFORE_DUE, NOW)
    assert "model sales has no successful backup since its run due at 2026-11-23T02:00:00" in problem


@pytest.mark.parametrize(
    ("runs", "started", "grace"),
    [
        ({("sales", "success"): DUE + 600}, STARTED_BEFORE_DUE, "3600"),  # ran as scheduled
        ({}, DUE + 60, "3600"),  # started after the last slot: nothing was due yet
        ({}, STARTED_BEFORE_DUE, "86400"),  # still within the grace for the run itself
    ],
)
def test_healthy_cases(monkeypatch: pytest.MonkeyPatch, runs, started: float, grace: str) -> None:
    monkeypatch.setenv("BACKUP_HEALTH_GRACE", grace)
    assert healthcheck.problems(DOCUMENT, runs, started, NOW) == []
