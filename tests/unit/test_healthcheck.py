"""The health verdict from GoBackup's metrics: a failed last run or a missed
schedule is unhealthy and names the model and where it uploads. Schedules are
read as GoBackup's scheduler reads them, and the probe never crashes."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from sqlserver_backup import healthcheck

UTC = datetime.timezone.utc
STORAGES = {"minio": {"type": "minio", "endpoint": "http://minio:9000", "bucket": "backups"}}
NOW = datetime.datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)  # a Monday
DUE = datetime.datetime(2026, 11, 23, 2, 0, 0, tzinfo=UTC).timestamp()
STARTED = datetime.datetime(2026, 11, 22, 23, 30, 0, tzinfo=UTC).timestamp()


def document(schedule: dict | None) -> dict:
    body: dict = {"storages": STORAGES}
    if schedule is not None:
        body["schedule"] = schedule
    return {"models": {"sales": body}}


DOCUMENT = document({"cron": "0 2 * * *"})


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
    [problem] = healthcheck.problems(DOCUMENT, runs, STARTED, NOW, UTC)
    assert "the last backup of model sales failed" in problem
    assert "http://minio:9000 bucket backups" in problem


@pytest.mark.parametrize(
    ("schedule", "due"),
    [
        ({"cron": "0 2 * * *"}, "2026-11-23T02:00:00+00:00"),
        ({"cron": "0 2 * * MON"}, "2026-11-23T02:00:00+00:00"),
        ({"cron": "0 2 ? NOV ?"}, "2026-11-23T02:00:00+00:00"),
        ({"cron": "0 2 23 * sat"}, "2026-11-23T02:00:00+00:00"),  # robfig: day of month OR day of week
        ({"cron": "@daily"}, "2026-11-23T00:00:00+00:00"),
        ({"cron": "CRON_TZ=UTC @hourly"}, "2026-11-23T00:00:00+00:00"),
        ({"cron": "TZ=Europe/Berlin 0 3 * * *"}, "2026-11-23T02:00:00+00:00"),
        ({"cron": "@every 1h"}, "2026-11-23T00:30:00+00:00"),
        ({"cron": "@every 90m"}, "2026-11-23T01:00:00+00:00"),
        ({"every": "6h"}, "2026-11-23T05:30:00+00:00"),
        ({"cron": "0 2 * * *", "enabled": False}, "2026-11-23T02:00:00+00:00"),  # GoBackup ignores enabled
    ],
)
def test_a_missed_schedule_is_unhealthy_after_the_grace(
    monkeypatch: pytest.MonkeyPatch, schedule: dict, due: str
) -> None:
    monkeypatch.setenv("BACKUP_HEALTH_GRACE", "3600")
    [problem] = healthcheck.problems(document(schedule), {}, STARTED, NOW, UTC)
    assert f"model sales has no successful backup since its run due at {due}" in problem


@pytest.mark.parametrize(
    ("schedule", "success", "started", "grace"),
    [
        ({"cron": "0 2 * * *"}, DUE + 600, STARTED, "3600"),  # ran as scheduled
        ({"cron": "0 2 * * *"}, 0.0, DUE + 60, "3600"),  # started after the last slot: nothing was due yet
        ({"cron": "0 2 * * *"}, 0.0, STARTED, "86400"),  # still within the grace for the run itself
        ({"cron": "0 2 * * sun"}, 0.0, STARTED, "3600"),  # Sunday's slot came before the start
        ({"cron": "@every 1h"}, NOW.timestamp() - 1800, STARTED, "3600"),  # next run not due yet
        ({"every": "24h"}, 0.0, STARTED, "3600"),  # first run a day after the start
        (None, 0.0, STARTED, "3600"),  # no schedule block: only run on demand
    ],
)
def test_healthy_cases(
    monkeypatch: pytest.MonkeyPatch, schedule: dict | None, success: float, started: float, grace: str
) -> None:
    monkeypatch.setenv("BACKUP_HEALTH_GRACE", grace)
    runs = {("sales", "success"): success} if success else {}
    assert healthcheck.problems(document(schedule), runs, started, NOW, UTC) == []


def test_every_is_due_one_interval_after_the_last_success(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKUP_HEALTH_GRACE", "3600")
    success = datetime.datetime(2026, 11, 23, 8, 0, 0, tzinfo=UTC).timestamp()
    [problem] = healthcheck.problems(
        document({"cron": "@every 1h"}), {("sales", "success"): success}, STARTED, NOW, UTC
    )
    assert "since its run due at 2026-11-23T09:00:00+00:00" in problem


def test_local_time_zone_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a TZ= prefix the cron is in the container's local time (TZ)."""
    monkeypatch.setenv("BACKUP_HEALTH_GRACE", "3600")
    berlin = healthcheck.go_time_location.local_zone({"TZ": "Europe/Berlin"})
    [problem] = healthcheck.problems(DOCUMENT, {}, STARTED, NOW, berlin)
    assert "since its run due at 2026-11-23T02:00:00+01:00" in problem


@pytest.fixture
def active_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Points the probe at a config written by the test, with /metrics stubbed."""

    def write(text: str, metrics_text: str = "") -> None:
        config = tmp_path / "gobackup.yml"
        config.write_text(text)
        active = tmp_path / "active-config"
        active.write_text(f"{config}\n")
        monkeypatch.setattr(healthcheck.state_files, "ACTIVE_CONFIG", active)
        monkeypatch.setattr(healthcheck.state_files, "STATE_DIR", tmp_path)  # run-durations.json
        monkeypatch.setattr(healthcheck, "fetch", lambda url: metrics_text)

    monkeypatch.delenv("RUN_MODE", raising=False)
    return write


CONFIG = """
workdir: /tmp/gobackup
web: {host: 127.0.0.1, port: 2703}
models:
  sales:
    schedule: {cron: "CRON"}
    storages: {minio: {type: minio, endpoint: "http://minio:9000", bucket: backups}}
"""


@pytest.mark.parametrize(
    "cron", ["@every 1h", "0 2 * jan-dec sun-sat", "0 2 ? * ?", "@weekly", "TZ=UTC 0 2 * * *", "CRON_TZ=UTC @every 2h"]
)
def test_probe_accepts_every_schedule_the_checker_accepts(active_config, capsys, cron: str) -> None:
    active_config(CONFIG.replace("CRON", cron))
    assert healthcheck.main() == 0  # just started: nothing due yet
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("config", "fetch_error", "message"),
    [
        (CONFIG.replace("CRON", "0 2 * * 7"), None, "unhealthy: model sales: its schedule cannot be computed"),
        ("models: [broken\n", None, "unhealthy: the active configuration is not valid YAML (line 2)"),
        ("models:\n", None, "unhealthy: the health check itself failed"),
        (CONFIG.replace("CRON", "@daily"), RuntimeError("boom"), "unhealthy: the health check itself failed"),
        (CONFIG.replace("CRON", "@daily"), OSError("refused"), "unhealthy: the scheduler does not answer"),
    ],
)
def test_probe_failures_are_one_unhealthy_line(
    active_config, monkeypatch: pytest.MonkeyPatch, capsys, config: str, fetch_error: Exception | None, message: str
) -> None:
    active_config(config)
    if fetch_error:

        def failing(url: str) -> str:
            raise fetch_error

        monkeypatch.setattr(healthcheck, "fetch", failing)
    assert healthcheck.main() == 1
    output = capsys.readouterr().out
    assert output.startswith(message), output
    assert output.count("\n") == 1


WORKER_MODEL = """
  {name}:
    schedule: {{cron: "@daily"}}
    storages: {{minio: {{type: minio, endpoint: "http://minio:9000", bucket: backups}}}}
"""


def test_each_worker_is_probed_on_its_own_port(active_config, tmp_path: Path, monkeypatch, capsys) -> None:
    """With worker files (workers.py), a model's runs are in the metrics of
    the worker that schedules it, and every worker must answer."""
    header = "workdir: /tmp/gobackup\nweb: {host: 127.0.0.1, port: PORT}\nmodels:"
    active_config(header.replace("PORT", "2703") + WORKER_MODEL.format(name="sales") + WORKER_MODEL.format(name="hr"))
    for number, name in ((1, "sales"), (2, "hr")):
        worker = header.replace("PORT", str(2702 + number)) + WORKER_MODEL.format(name=name)
        (tmp_path / f"gobackup-worker-{number}.yml").write_text(worker)
    asked = []

    def fetch(url: str) -> str:
        asked.append(url)
        failed = f'gobackup_last_timestamp{{model="hr",status="failure"}} {NOW.timestamp()}\n'
        return failed if url.startswith("http://127.0.0.1:2704/") else ""

    monkeypatch.setattr(healthcheck, "fetch", fetch)
    assert healthcheck.main() == 1
    assert capsys.readouterr().out.startswith("unhealthy: the last backup of model hr failed")
    assert asked == [f"http://127.0.0.1:{port}/{path}" for port in (2703, 2704) for path in ("status", "metrics")]

    def second_worker_down(url: str) -> str:
        if url.startswith("http://127.0.0.1:2704/"):
            raise OSError("Connection refused")
        return ""

    monkeypatch.setattr(healthcheck, "fetch", second_worker_down)
    assert healthcheck.main() == 1
    assert capsys.readouterr().out == (
        "unhealthy: the scheduler does not answer on http://127.0.0.1:2704: Connection refused\n"
    )
