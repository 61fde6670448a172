"""The GoBackup workers of a container (sqlserver_backup.workers): which files
the supervisor runs, where the health check and the metrics read each worker,
and the refusal of worker files that do not split gobackup.yml's models
exactly once each. Run through `backup-config check` as the entrypoint runs it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from sqlserver_backup.gobackup_config import load
from sqlserver_backup.workers import scheduler_addresses, worker_configs, worker_problems
from sqlserver_backup_testing import VENV_BIN


def model(name: str) -> dict:
    return {
        "schedule": {"cron": "0 2 * * *"},
        "databases": {name: {"type": "mssql", "host": "sql1", "database": name.title(), "password": "${PASSWORD}"}},
        "storages": {"minio": {"type": "minio", "endpoint": "http://minio:9000", "bucket": "b", "path": name}},
    }


MODELS = {"sales": model("sales"), "inventory": model("inventory"), "hr": model("hr")}
ENVIRONMENT = {"PASSWORD": "S3cret", "NOTIFY_WEBHOOK_URL": "https://hooks.example.com/backups"}


def write(path: Path, models: dict, port: int = 2703, workdir: str = "/tmp/gobackup") -> Path:
    document = {"workdir": workdir, "web": {"host": "127.0.0.1", "port": port}, "models": models}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def split(tmp_path: Path, *shares: list[str]) -> Path:
    """gobackup.yml with every model, and one worker file per share."""
    config = write(tmp_path / "gobackup.yml", MODELS)
    for number, share in enumerate(shares, start=1):
        write(tmp_path / f"gobackup-worker-{number}.yml", {name: MODELS[name] for name in share}, 2702 + number)
    return config


def problems(config: Path) -> list[str]:
    document, _ = load(config, ENVIRONMENT)
    return worker_problems(config, document, ENVIRONMENT)


def test_without_worker_files_gobackup_runs_the_config_itself(tmp_path: Path) -> None:
    config = split(tmp_path)
    assert worker_configs(config) == [config]
    assert scheduler_addresses(config, ENVIRONMENT) == [("127.0.0.1", 2703)]
    assert problems(config) == []


def test_worker_files_run_in_their_numbers_order_each_on_its_port(tmp_path: Path) -> None:
    names = [f"model{number}" for number in range(1, 11)]
    config = write(tmp_path / "gobackup.yml", {name: model(name) for name in names})
    for number, name in enumerate(names, start=1):
        write(tmp_path / f"gobackup-worker-{number}.yml", {name: model(name)}, 2702 + number)
    assert [path.name for path in worker_configs(config)] == [f"gobackup-worker-{n}.yml" for n in range(1, 11)]
    assert scheduler_addresses(config, ENVIRONMENT) == [("127.0.0.1", 2702 + n) for n in range(1, 11)]
    assert problems(config) == []


@pytest.mark.parametrize(
    ("shares", "reason"),
    [
        ([["sales", "inventory"], ["inventory", "hr"]], "model inventory is in both gobackup-worker-1.yml and"),
        ([["sales"], ["inventory"]], "model(s) hr of gobackup.yml are in no worker file: they would never run"),
    ],
)
def test_a_model_run_twice_or_never_is_refused(tmp_path: Path, shares: list[list[str]], reason: str) -> None:
    found = problems(split(tmp_path, *shares))
    assert any(problem.startswith(reason) for problem in found), found


def test_a_worker_on_the_notification_relays_port_is_refused(tmp_path: Path) -> None:
    notifying = {**MODELS["hr"], "notifiers": {"alerts": {"type": "webhook", "url": "http://127.0.0.1:2704/webhook"}}}
    config = write(tmp_path / "gobackup.yml", {**MODELS, "hr": notifying})
    write(tmp_path / "gobackup-worker-1.yml", {"sales": MODELS["sales"], "inventory": MODELS["inventory"]}, 2703)
    write(tmp_path / "gobackup-worker-2.yml", {"hr": notifying}, 2704)
    assert problems(config) == ["gobackup-worker-2.yml serves on 127.0.0.1:2704, the notification relay's port"]


def test_a_gap_in_the_numbers_is_refused(tmp_path: Path) -> None:
    config = split(tmp_path, ["sales", "inventory"], ["hr"])
    (tmp_path / "gobackup-worker-2.yml").rename(tmp_path / "gobackup-worker-3.yml")
    assert problems(config) == [
        "the worker files beside gobackup.yml must be numbered 1 to 2 without a gap:"
        " gobackup-worker-1.yml, gobackup-worker-3.yml"
    ]


def test_a_worker_file_that_says_other_than_gobackup_yml_is_refused(tmp_path: Path) -> None:
    config = split(tmp_path, ["sales", "inventory"], ["hr"])
    changed = {"hr": {**MODELS["hr"], "schedule": {"cron": "0 3 * * *"}}, "payroll": model("payroll")}
    write(tmp_path / "gobackup-worker-2.yml", changed, port=2703, workdir="/work")
    assert problems(config) == [
        "gobackup-worker-2.yml has another workdir than gobackup.yml: a stop could not see its running backups",
        "model hr of gobackup-worker-2.yml differs from the same model in gobackup.yml",
        "model payroll of gobackup-worker-2.yml is not in gobackup.yml",
        "gobackup-worker-2.yml and gobackup-worker-1.yml both serve on 127.0.0.1:2703",
    ]


def backup_config(*arguments: str, **environment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VENV_BIN / "backup-config", *arguments],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ["PATH"], **environment},
    )


def test_the_entrypoints_check_refuses_worker_files_that_do_not_split_the_models(tmp_path: Path) -> None:
    config = split(tmp_path, ["sales", "inventory"], ["inventory", "hr"])
    (tmp_path / ".env").write_text("PASSWORD='S3cret'\n")
    checked = backup_config("check", str(config))
    assert checked.returncode == 1
    assert "config error: model inventory is in both gobackup-worker-1.yml and gobackup-worker-2.yml" in checked.stderr
    write(tmp_path / "gobackup-worker-2.yml", {"hr": MODELS["hr"]}, port=2704)
    checked = backup_config("check", str(config))
    assert checked.returncode == 0, checked.stderr
    assert f"config ok: 3 model(s) in {config}, run by 2 GoBackup workers" in checked.stderr
    settings = backup_config("settings", str(config), METRICS_PORT="2704")
    assert settings.returncode == 1
    assert "METRICS_PORT must differ from web.port, the port of GoBackup's own web server in the container" in (
        settings.stderr
    )
    assert "(2703, 2704)" in settings.stderr
