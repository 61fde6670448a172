"""The image's entrypoint, run for real with the stand-in gobackup: required
variables, defaults, *_FILE secrets, run-mode selection and bad values."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import yaml
from conftest import REQUIRED_ENV, free_port


def rendered(entrypoint_env: dict[str, str]) -> dict:
    return yaml.safe_load((Path(entrypoint_env["HOME"]) / "gobackup.yml").read_text())


def leaked(result, *secrets: str) -> list[str]:
    return [secret for secret in secrets if secret in result.stdout + result.stderr]


@pytest.mark.parametrize("missing", sorted(REQUIRED_ENV))
def test_each_missing_variable_is_named(run_entrypoint, missing: str) -> None:
    env = {name: value for name, value in REQUIRED_ENV.items() if name != missing}
    result = run_entrypoint(env)
    assert result.returncode == 1
    assert [name for name in REQUIRED_ENV if f"{name} is not set" in result.stderr] == [missing]


def test_every_missing_variable_is_named_at_once(run_entrypoint) -> None:
    result = run_entrypoint({})
    assert result.returncode == 1
    assert [name for name in REQUIRED_ENV if f"{name} is not set" in result.stderr] == list(REQUIRED_ENV)


def test_defaults_fill_the_bundled_template(daemon, entrypoint_env) -> None:
    port = free_port()
    with daemon({**REQUIRED_ENV, "GOBACKUP_WEB_PORT": str(port)}, port):
        config = rendered(entrypoint_env)
    model = config["models"]["sqlserver"]
    database = model["databases"]["${MSSQL_DATABASE}"]  # GoBackup expands it at load
    assert (database["port"], database["username"], database["trust_server_certificate"]) == (1433, "sa", False)
    assert database["password"] == "${MSSQL_PASSWORD}", "secrets stay references in the rendered file"
    assert model["schedule"] == {"enabled": True, "cron": "0 2 * * *"}
    assert model["compress_with"] == {"type": "tar"}
    storage = model["storages"]["minio"]
    assert (storage["path"], storage["keep"], storage["timeout"]) == ("sqlserver/sqlserver", 7, 3600)
    assert (Path(entrypoint_env["HOME"]) / "gobackup.yml").stat().st_mode & 0o777 == 0o600


def test_values_override_the_defaults(daemon, entrypoint_env) -> None:
    port = free_port()
    env = {
        **REQUIRED_ENV,
        "GOBACKUP_WEB_PORT": str(port),
        "MSSQL_PORT": "14330",
        "BACKUP_MODEL": "sales",
        "BACKUP_CRON": "15 1 * * *",
        "BACKUP_KEEP": "3",
        "MINIO_PATH": "prod/host-a",
    }
    with daemon(env, port):
        model = rendered(entrypoint_env)["models"]["sales"]
    assert model["databases"]["${MSSQL_DATABASE}"]["port"] == 14330
    assert model["schedule"]["cron"] == "15 1 * * *"
    assert model["storages"]["minio"]["keep"] == 3
    assert model["storages"]["minio"]["path"] == "prod/host-a/sales"


def test_daemon_mode_runs_the_scheduler_and_stops_cleanly_on_sigterm(daemon) -> None:
    port = free_port()
    with daemon({**REQUIRED_ENV, "GOBACKUP_WEB_PORT": str(port)}, port) as process:
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "Register sqlserver with (cron: 0 2 * * *)" in stdout


def test_once_mode_performs_every_model_and_exits_with_its_status(run_entrypoint) -> None:
    # Nothing listens on port 9 of loopback: the export fails, so perform must.
    result = run_entrypoint(
        {**REQUIRED_ENV, "RUN_MODE": "once", "MSSQL_PORT": "9", "MSSQL_TRUST_SERVER_CERTIFICATE": "true"}
    )
    assert result.returncode == 1
    assert "[Model: sqlserver] WorkDir:" in result.stdout
    assert "Could not connect to database server" in result.stdout + result.stderr
    assert "running every model once" in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("RUN_MODE", "sometimes", "RUN_MODE must be 'once' or 'daemon', not 'sometimes'"),
        ("SKIP_HEALTH_CHECK", "yes", "SKIP_HEALTH_CHECK must be 'true' or 'false', not 'yes'"),
        ("BACKUP_CRON", "0 2 * *", "needs 5 fields"),
        ("BACKUP_CRON", "0 25 * * *", "invalid field"),
    ],
)
def test_bad_values_are_refused_with_the_reason(run_entrypoint, name: str, value: str, reason: str) -> None:
    result = run_entrypoint({**REQUIRED_ENV, name: value})
    assert result.returncode == 1
    assert reason in result.stderr


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("two words", "password contains whitespace"),
        ("&anchor123", "would reach GoBackup altered by YAML"),
        ("*alias123", "would reach GoBackup altered by YAML"),
    ],
)
def test_passwords_gobackup_would_mangle_are_refused_without_printing_them(run_entrypoint, password, reason) -> None:
    result = run_entrypoint({**REQUIRED_ENV, "MSSQL_PASSWORD": password})
    assert result.returncode == 1
    assert reason in result.stderr
    assert not leaked(result, password)


def test_secrets_can_come_from_files(run_entrypoint, tmp_path: Path) -> None:
    secret_file = tmp_path / "mssql_password"
    secret_file.write_text("Fr0mAFileSecret\n")
    env = {
        **REQUIRED_ENV,
        "MSSQL_PASSWORD_FILE": str(secret_file),
        "RUN_MODE": "once",
        "MSSQL_PORT": "9",
        "MSSQL_TRUST_SERVER_CERTIFICATE": "true",
    }
    del env["MSSQL_PASSWORD"]
    result = run_entrypoint(env)
    assert "MSSQL_PASSWORD is not set" not in result.stderr
    assert "[Model: sqlserver] WorkDir:" in result.stdout, "the file's value satisfied the check"
    assert not leaked(result, "Fr0mAFileSecret", REQUIRED_ENV["MINIO_SECRET_KEY"])


def test_a_variable_and_its_file_together_are_refused(run_entrypoint, tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("x")
    result = run_entrypoint({**REQUIRED_ENV, "MINIO_SECRET_KEY_FILE": str(secret_file)})
    assert result.returncode == 1
    assert "both MINIO_SECRET_KEY and MINIO_SECRET_KEY_FILE are set" in result.stderr


def test_an_unreadable_secret_file_is_named(run_entrypoint, tmp_path: Path) -> None:
    env = {**REQUIRED_ENV, "MINIO_SECRET_KEY_FILE": str(tmp_path / "absent")}
    del env["MINIO_SECRET_KEY"]
    result = run_entrypoint(env)
    assert result.returncode == 1
    assert "MINIO_SECRET_KEY_FILE names" in result.stderr
    assert "not a readable file" in result.stderr


def test_unreachable_endpoints_stop_the_start_naming_them(run_entrypoint) -> None:
    result = run_entrypoint({**REQUIRED_ENV, "SKIP_HEALTH_CHECK": "false", "MSSQL_PORT": "9", "CONNECT_TIMEOUT": "2"})
    assert result.returncode == 1
    assert "cannot reach SQL Server SalesDemo of model sqlserver at 127.0.0.1:9" in result.stderr
    assert "cannot reach storage minio (sqlserver-backups) of model sqlserver at 127.0.0.1:9" in result.stderr


def test_a_mounted_config_is_used_instead_of_the_template(run_entrypoint, entrypoint_env, tmp_path: Path) -> None:
    config = Path(entrypoint_env["GOBACKUP_CONFIG"])
    config.parent.mkdir()
    config.write_text("models:\n  only:\n    databases: {}\n    storages: {}\n")
    result = run_entrypoint({})
    assert result.returncode == 1
    assert f"using mounted configuration {config}" in result.stderr
    assert "model only: no databases" in result.stderr
    assert "MSSQL_HOST is not set" not in result.stderr


def test_arguments_run_a_command_instead(run_entrypoint) -> None:
    result = run_entrypoint({}, args=["sqlpackage", "/Version"])
    assert result.returncode == 0
    assert result.stdout.strip() == "170.4.83.3"
