"""The image's entrypoint, run for real with the stand-in gobackup and the
backup-supervisor it execs: required variables, defaults, *_FILE secrets,
run-mode selection and bad values, the same checks before any command; the
graceful stop around a GoBackup that dies on SIGTERM, clean-up of interrupted
runs, the start-up reachability check, the CA bundle and the log filter.
tests/unit/test_supervisor.py tests the supervisor's logic with fake processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from sqlserver_backup_testing import (
    ENTRYPOINT,
    REPO,
    REQUIRED_ENV,
    VENV_BIN,
    StandinSqlServer,
    answers,
    free_port,
    standin_sql_server,
    wait_until,
)


def rendered(entrypoint_env: dict[str, str]) -> dict:
    return yaml.safe_load((Path(entrypoint_env["HOME"]) / "gobackup.yml").read_text())


def leaked(result, *secrets: str) -> list[str]:
    return [secret for secret in secrets if secret in result.stdout + result.stderr]


def processes_under(folder: Path) -> list[int]:
    """Live processes whose command line names a path in folder: GoBackup (its
    config) and sqlpackage (its target file), not the SQL Server stand-in."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command_line = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(folder).encode() in command_line and state != "Z":
            found.append(int(entry.name))
    return found


def api_perform(port: int, model: str) -> None:
    """What the web UI's "perform" button does: the daemon runs the model now."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/perform",
        data=f'{{"model": "{model}"}}'.encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback only
        assert response.status == 200


def sourced(
    entrypoint_env: dict[str, str], script: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """Runs script in a bash that sourced the entrypoint (functions only).
    Output is decoded as is: a carriage return stays one."""
    result = subprocess.run(
        ["bash", "-c", f'source "$1"\n{script}', "bash", str(REPO / "image" / "docker-entrypoint.sh")],
        env={**entrypoint_env, **(env or {})},
        input=stdin.encode(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())


class Running:
    """The entrypoint started in the background, its output read as it comes."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(ENTRYPOINT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self.readers = [
            threading.Thread(target=self.collect, args=(self.process.stdout, self.stdout_lines), daemon=True),
            threading.Thread(target=self.collect, args=(self.process.stderr, self.stderr_lines), daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def collect(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)

    @property
    def stdout(self) -> str:
        return "".join(self.stdout_lines)

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)

    def logged(self, text: str) -> bool:
        return text in self.stderr

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def finish(self, timeout: float = 30) -> int:
        returncode = self.process.wait(timeout=timeout)
        for reader in self.readers:
            reader.join(timeout=5)
        return returncode


@pytest.fixture
def start_entrypoint(entrypoint_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(env: dict[str, str]) -> Running:
        running = Running({**entrypoint_env, **env})
        started.append(running)
        return running

    yield start
    for running in started:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait(timeout=10)
    for pid in processes_under(tmp_path):  # GoBackup leads its own process group
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def sql_server(tmp_path: Path, standin_bin: Path) -> Iterator[StandinSqlServer]:
    """The SQL Server stand-in with database SalesDemo and its table dbo.Orders."""
    with standin_sql_server(standin_bin, REQUIRED_ENV["MSSQL_PASSWORD"], tmp_path / "mssql") as server:
        server.query("CREATE DATABASE SalesDemo")
        server.query(
            "CREATE TABLE dbo.Orders (Id INT PRIMARY KEY, Amount DECIMAL(10,2)); INSERT dbo.Orders VALUES (1, 10.5)",
            database="SalesDemo",
        )
        yield server


class Backup:
    """A mounted gobackup.yml: model sales exports SalesDemo to a local storage."""

    model = "sales"

    def __init__(self, root: Path, sql_port: int) -> None:
        self.workdir, self.local, self.web_port = root / "workdir", root / "local", free_port()
        self.text = f"""\
workdir: {self.workdir}
web:
  host: 127.0.0.1
  port: {self.web_port}
models:
  {self.model}:
    schedule:
      cron: "0 2 * * *"
    compress_with:
      type: tar
    databases:
      {self.model}:
        type: mssql
        host: 127.0.0.1
        port: {sql_port}
        database: SalesDemo
        username: sa
        password: '${{MSSQL_PASSWORD}}'
        trust_server_certificate: true
    storages:
      local:
        type: local
        path: {self.local}
        keep: 3
"""

    def running(self) -> bool:
        """GoBackup's TempPath of a run in progress: <workdir>/<unix-nanos>/<model>/."""
        return any(self.workdir.glob(f"[0-9]*/{self.model}"))

    def temp_paths(self) -> list[Path]:
        return sorted(self.workdir.glob("[0-9]*"))

    def archives(self) -> list[Path]:
        return sorted(self.local.glob("*.tar"))


@pytest.fixture
def backup(entrypoint_env: dict[str, str], sql_server: StandinSqlServer, tmp_path: Path) -> Backup:
    config = Backup(tmp_path, sql_server.port)
    path = Path(entrypoint_env["GOBACKUP_CONFIG"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config.text)
    return config


BACKUP_ENV = {"MSSQL_PASSWORD": REQUIRED_ENV["MSSQL_PASSWORD"], "STOP_GRACE_PERIOD": "600"}


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
    database = model["databases"]["sqlserver"]
    assert (database["port"], database["username"], database["trust_server_certificate"]) == (1433, "sa", False)
    assert database["password"] == "${MSSQL_PASSWORD}", "secrets stay references in the rendered file"
    assert model["schedule"] == {"cron": "0 2 * * *"}
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
    assert model["databases"]["sales"]["port"] == 14330
    assert model["schedule"]["cron"] == "15 1 * * *"
    assert model["storages"]["minio"]["keep"] == 3
    assert model["storages"]["minio"]["path"] == "prod/host-a/sales"


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["docker-stop", "ctrl-c"])
def test_an_idle_daemon_stops_at_once_and_leaves_no_gobackup(daemon, tmp_path: Path, stop_signal) -> None:
    port = free_port()
    with daemon({**REQUIRED_ENV, "GOBACKUP_WEB_PORT": str(port)}, port) as process:
        assert processes_under(tmp_path), "GoBackup runs as a child"
        process.send_signal(stop_signal)
        stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "Register sqlserver with (cron 0 2 * * *)" in stdout
    assert "docker-entrypoint: stop requested; no backup is running, stopping GoBackup" in stderr
    assert processes_under(tmp_path) == []


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
        ("STOP_GRACE_PERIOD", "1h", "STOP_GRACE_PERIOD must be a whole number of seconds, not '1h'"),
        ("STOP_GRACE_PERIOD", "-5", "STOP_GRACE_PERIOD must be a whole number of seconds, not '-5'"),
        ("BACKUP_HEALTH_GRACE", "2h", "BACKUP_HEALTH_GRACE must be a whole number of seconds or empty, not '2h'"),
        ("METRICS_PORT", "70000", "METRICS_PORT must be a port number (1-65535) or empty, not '70000'"),
        ("METRICS_PORT", "2703", "METRICS_PORT must differ from web.port, the port of GoBackup's own web server"),
        ("BACKUP_CRON", "0 2 * *", "expected exactly 5 fields"),
        ("BACKUP_CRON", "0 25 * * *", "above maximum (23)"),
    ],
)
def test_bad_values_are_refused_with_the_reason(run_entrypoint, name: str, value: str, reason: str) -> None:
    result = run_entrypoint({**REQUIRED_ENV, name: value})
    assert result.returncode == 1
    assert reason in result.stderr


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("two words", "contains whitespace"),
        ("it's-secret", "contains a ' but is referenced inside single quotes"),
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


UNREACHABLE = {**REQUIRED_ENV, "SKIP_HEALTH_CHECK": "false", "MSSQL_PORT": "9", "CONNECT_TIMEOUT": "2"}


def test_unreachable_endpoints_stop_a_one_shot_run_naming_them(run_entrypoint) -> None:
    result = run_entrypoint({**UNREACHABLE, "RUN_MODE": "once"})
    assert result.returncode == 1
    assert "error: cannot reach SQL Server sqlserver of model sqlserver at 127.0.0.1:9" in result.stderr
    assert "error: cannot reach storage minio (sqlserver-backups) of model sqlserver at 127.0.0.1:9" in result.stderr
    assert "2 endpoint(s) unreachable" in result.stderr
    assert "[Model: sqlserver]" not in result.stdout, "nothing was attempted"


def test_unreachable_endpoints_are_reported_but_the_scheduler_starts(daemon) -> None:
    port = free_port()
    with daemon({**UNREACHABLE, "GOBACKUP_WEB_PORT": str(port)}, port) as process:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "warning: cannot reach SQL Server sqlserver of model sqlserver at 127.0.0.1:9" in stderr
    assert "warning: cannot reach storage minio (sqlserver-backups) of model sqlserver at 127.0.0.1:9" in stderr
    assert "starting the scheduler anyway" in stderr
    assert "Register sqlserver with (cron 0 2 * * *)" in stdout


def test_a_mounted_config_is_used_instead_of_the_template(run_entrypoint, entrypoint_env, tmp_path: Path) -> None:
    config = Path(entrypoint_env["GOBACKUP_CONFIG"])
    config.parent.mkdir()
    config.write_text("models:\n  only:\n    databases: {}\n    storages: {}\n")
    result = run_entrypoint({})
    assert result.returncode == 1
    assert f"using mounted configuration {config}" in result.stderr
    assert "model only: no databases" in result.stderr
    assert "MSSQL_HOST is not set" not in result.stderr


def test_arguments_run_a_command_instead_after_the_checks(run_entrypoint, entrypoint_env) -> None:
    result = run_entrypoint(REQUIRED_ENV, args=["sqlpackage", "/Version"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "170.4.83.3"
    active = Path(entrypoint_env["HOME"]) / "active-config"
    assert active.read_text() == f"{Path(entrypoint_env['HOME']) / 'gobackup.yml'}\n"


def test_a_command_does_not_run_when_the_checks_fail(run_entrypoint, tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    result = run_entrypoint({}, args=["touch", str(ran)])
    assert result.returncode == 1
    assert "MSSQL_HOST is not set" in result.stderr
    assert not ran.exists()


def test_options_only_are_the_supervisors(run_entrypoint) -> None:
    result = run_entrypoint(REQUIRED_ENV, args=["--help"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: backup-supervisor")


def test_a_stop_waits_for_the_running_backup_while_gobackup_keeps_running(
    start_entrypoint, backup: Backup, sql_server: StandinSqlServer, tmp_path: Path
) -> None:
    running = start_entrypoint(BACKUP_ENV)
    wait_until(lambda: answers(f"http://127.0.0.1:{backup.web_port}/status"), "GoBackup's /status")
    sql_server.pause()
    api_perform(backup.web_port, backup.model)
    wait_until(backup.running, "the export to start")
    running.stop()
    wait_until(lambda: running.logged("stop requested; waiting for model sales to finish (grace 600 s)"), "the wait")
    assert running.process.poll() is None
    assert answers(f"http://127.0.0.1:{backup.web_port}/status"), "GoBackup still runs while the backup does"
    sql_server.resume()
    assert running.finish(timeout=60) == 0
    assert "docker-entrypoint: the backup finished; stopping GoBackup" in running.stderr
    assert "[MSSQL] Dump succeeded" in running.stdout
    assert len(backup.archives()) == 1, "the backup was not cut off"
    assert backup.temp_paths() == []
    wait_until(lambda: processes_under(tmp_path) == [], "GoBackup to be gone", timeout=5)


def test_a_stopped_one_shot_run_finishes_its_backup_and_exits_with_its_status(
    start_entrypoint, backup: Backup, sql_server: StandinSqlServer
) -> None:
    sql_server.pause()
    running = start_entrypoint({**BACKUP_ENV, "RUN_MODE": "once"})
    wait_until(backup.running, "the export to start")
    running.stop()
    wait_until(lambda: running.logged("stop requested; waiting for model sales to finish (grace 600 s)"), "the wait")
    sql_server.resume()
    assert running.finish(timeout=60) == 0
    assert len(backup.archives()) == 1


def test_a_grace_that_runs_out_cuts_off_the_backup_naming_it_and_the_next_start_cleans_up(
    start_entrypoint, run_entrypoint, backup: Backup, sql_server: StandinSqlServer, tmp_path: Path
) -> None:
    running = start_entrypoint({**BACKUP_ENV, "STOP_GRACE_PERIOD": "1"})
    wait_until(lambda: answers(f"http://127.0.0.1:{backup.web_port}/status"), "GoBackup's /status")
    sql_server.pause()
    api_perform(backup.web_port, backup.model)
    wait_until(backup.running, "the export to start")
    running.stop()
    assert running.finish(timeout=30) == 1
    assert "docker-entrypoint: error: grace of 1 s ran out; cutting off model sales" in running.stderr
    wait_until(lambda: processes_under(tmp_path) == [], "GoBackup and sqlpackage to be gone", timeout=5)
    assert backup.archives() == []
    (left_behind,) = backup.temp_paths()  # as GoBackup leaves it when killed

    sql_server.resume()
    result = run_entrypoint({**BACKUP_ENV, "RUN_MODE": "once"})
    assert result.returncode == 0
    assert f"docker-entrypoint: removed {left_behind}, left by an interrupted run of model sales" in result.stderr
    assert backup.temp_paths() == []
    assert len(backup.archives()) == 1


def test_only_gobackups_temp_folders_are_removed_at_start(run_entrypoint, backup: Backup) -> None:
    interrupted = backup.workdir / "1795522886150511404"
    (interrupted / "sales" / "mssql" / "sales").mkdir(parents=True)
    (interrupted / "sales" / "mssql" / "sales" / "SalesDemo.bacpac").write_bytes(b"partial")
    kept = [backup.workdir / "tmp", backup.workdir / "local-copy", backup.workdir / "2026.11.24"]
    for folder in kept:
        folder.mkdir()
    result = run_entrypoint({**BACKUP_ENV, "RUN_MODE": "once"})
    assert result.returncode == 0
    assert f"docker-entrypoint: removed {interrupted}, left by an interrupted run of model sales" in result.stderr
    assert not interrupted.exists()
    assert all(folder.is_dir() for folder in kept)


def test_only_the_documented_secrets_come_from_files(entrypoint_env, tmp_path: Path) -> None:
    secret, certificates = tmp_path / "mssql_password", tmp_path / "certificates.pem"
    secret.write_text("Fr0mAFileSecret\n")
    certificates.write_text("not read by the entrypoint")
    result = sourced(
        entrypoint_env,
        'load_file_env\nprintf "%s|%s|%s|%s|%s\\n" "$MSSQL_PASSWORD" "${MSSQL_PASSWORD_FILE-unset}" '
        '"$SSL_CERT_FILE" "${SSL_CERT-unset}" "$NOTES_FILE"',
        {"MSSQL_PASSWORD_FILE": str(secret), "SSL_CERT_FILE": str(certificates), "NOTES_FILE": "/absent"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"Fr0mAFileSecret|unset|{certificates}|unset|/absent\n"


def test_an_internal_ca_is_trusted_through_ssl_cert_file(entrypoint_env, tmp_path: Path) -> None:
    ca = tmp_path / "internal-ca.pem"
    key = tmp_path / "ca.key"
    request = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=Internal CA"]
    subprocess.run(
        [*request, "-keyout", str(key), "-out", str(ca)],
        check=True,
        capture_output=True,
    )
    result = sourced(entrypoint_env, 'trust_extra_ca\nprintf "%s\\n" "$SSL_CERT_FILE"', {"EXTRA_CA_CERTS": str(ca)})
    assert result.returncode == 0, result.stderr
    bundle = Path(result.stdout.strip())
    assert bundle.parent == Path(entrypoint_env["HOME"])
    assert ca.read_text().strip() in bundle.read_text()
    assert "trusting the CA certificates of EXTRA_CA_CERTS" in result.stderr


def test_without_an_internal_ca_ssl_cert_file_is_left_alone(entrypoint_env) -> None:
    result = sourced(entrypoint_env, 'trust_extra_ca\nprintf "%s\\n" "${SSL_CERT_FILE-unset}"')
    assert (result.returncode, result.stdout) == (0, "unset\n")


def test_an_unusable_internal_ca_is_named(run_entrypoint, tmp_path: Path) -> None:
    not_a_certificate = tmp_path / "ca.pem"
    not_a_certificate.write_text("hello\n")
    result = run_entrypoint({**REQUIRED_ENV, "EXTRA_CA_CERTS": str(not_a_certificate)})
    assert result.returncode == 1
    assert "docker-entrypoint: error: EXTRA_CA_CERTS cannot be used" in result.stderr


def test_gobackups_probe_lines_stay_out_of_the_log(daemon, tmp_path: Path) -> None:
    port = free_port()
    with daemon({**REQUIRED_ENV, "GOBACKUP_WEB_PORT": str(port)}, port) as process:
        assert answers(f"http://127.0.0.1:{port}/metrics")
        assert answers(f"http://127.0.0.1:{port}/api/config")
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert '"/api/config"' in stdout, "GoBackup's other request lines pass"
    assert '"/status"' not in stdout
    assert '"/metrics"' not in stdout
    assert "[Scheduler] Register sqlserver" in stdout


def test_gobackups_own_log_file_is_discarded(daemon, entrypoint_env) -> None:
    log_file = Path(entrypoint_env["HOME"]) / ".gobackup" / "gobackup.log"
    log_file.parent.mkdir()
    log_file.write_bytes(b"x" * 1_048_576)
    port = free_port()
    with daemon({**REQUIRED_ENV, "GOBACKUP_WEB_PORT": str(port)}, port) as process:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert f"removed {log_file} (1048576 bytes)" in stderr
    assert log_file.is_symlink()
    assert os.readlink(log_file) == "/dev/null"


def relay_pids(config: Path) -> list[int]:
    """The notification relays reading config (other tests' containers run theirs)."""
    pids = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            command_line = (entry / "cmdline").read_bytes().split(b"\0")
            if entry.name.isdigit() and command_line[1:3] == [
                str(VENV_BIN / "notify-relay").encode(),
                str(config).encode(),
            ]:
                pids.append(int(entry.name))
    return pids


def relay_status(port: int) -> int | None:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/not-a-channel", data=b"{}")
    try:
        with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 - a loopback http URL
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def test_a_notification_relay_that_stops_is_started_again(daemon, entrypoint_env) -> None:
    port, relay_port = free_port(), free_port()
    config = Path(entrypoint_env["GOBACKUP_CONFIG"])
    config.parent.mkdir()
    subprocess.run(
        [str(VENV_BIN / "backup-config"), "render", entrypoint_env["GOBACKUP_TEMPLATE"], str(config)],
        env={**os.environ, **REQUIRED_ENV, "GOBACKUP_WEB_PORT": str(port)},
        check=True,
    )
    document = yaml.safe_load(config.read_text())
    document["models"]["sqlserver"]["notifiers"] = {
        "webhook": {"type": "webhook", "url": f"http://127.0.0.1:{relay_port}/webhook", "on_failure": True}
    }
    config.write_text(yaml.safe_dump(document))
    environment = {
        **REQUIRED_ENV,
        "NOTIFY_WEBHOOK_URL": "http://127.0.0.1:9/hook",
    }
    with daemon(environment, port) as process:
        [first] = relay_pids(config)
        assert relay_status(relay_port) == 404, "the relay answers (an unknown channel)"
        time.sleep(5)  # a relay that stops at once is not retried
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: relay_pids(config) not in ([], [first]), "a new relay")
        wait_until(lambda: relay_status(relay_port) == 404, "the new relay answers")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert stderr.count("warning: the notification relay stopped; starting it again") == 1
    assert relay_pids(config) == [], "the relay stops with the entrypoint"


def proof_scheduler_pids(config: Path) -> list[int]:
    """The proof schedulers reading config."""
    pids = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            command_line = (entry / "cmdline").read_bytes().split(b"\0")
            if entry.name.isdigit() and command_line[1:4] == [
                str(VENV_BIN / "backup-proof-scheduler").encode(),
                b"--config",
                str(config).encode(),
            ]:
                pids.append(int(entry.name))
    return pids


def test_the_proof_scheduler_runs_beside_gobackup_and_a_running_drill_ends_before_the_stop(
    daemon, entrypoint_env, tmp_path: Path
) -> None:
    port, home = free_port(), Path(entrypoint_env["HOME"])
    # restore.yml beside the configuration the entrypoint renders into HOME.
    restore = {"models": {"sqlserver": {"host": "mssql-restore", "drill_schedule": "@every 1s"}}}
    (home / "restore.yml").write_text(yaml.safe_dump(restore))
    bin_dir, calls = tmp_path / "bin", tmp_path / "drill-calls"
    bin_dir.mkdir()
    (bin_dir / "backup-restore").write_text(
        f'#!/bin/sh\necho "$*" >>"{calls}"\nsleep 2\necho "DRILL PASS model=sqlserver database=SalesDemo"\n'
    )
    (bin_dir / "backup-restore").chmod(0o755)
    environment = {
        **REQUIRED_ENV,
        "GOBACKUP_WEB_PORT": str(port),
        "PATH": f"{bin_dir}:{entrypoint_env['PATH']}",
    }
    with daemon(environment, port) as process:
        wait_until(calls.exists, "a drill started by the proof scheduler")
        assert len(proof_scheduler_pids(home / "gobackup.yml")) == 1
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    assert calls.read_text().splitlines()[0] == f"--config {home / 'gobackup.yml'} --model sqlserver --drill"
    assert "backup-proof-scheduler: drill of model sqlserver at '@every 1s'" in stderr
    assert "backup-proof-scheduler: stopping; letting the drill of model sqlserver finish" in stderr
    assert "backup-proof-scheduler: drill sqlserver: DRILL PASS model=sqlserver database=SalesDemo" in stderr
    assert proof_scheduler_pids(home / "gobackup.yml") == [], "the scheduler stops with the entrypoint"
