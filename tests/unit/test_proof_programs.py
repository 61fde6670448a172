"""The proof programs of the image, run on this machine: backup-coverage
(each source server's databases against the models, through sqlcmd and the
SQL Server stand-in), backup-status (the host's table and its targets) and
backup-proof-scheduler (drills and coverage checks on their schedules, one
drill at a time, alerts through the notification relay, a clean stop)."""

from __future__ import annotations

import collections
import contextlib
import datetime
import http.server
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlserver_backup import proof_scheduler as proof
from sqlserver_backup import restore_rules, status
from sqlserver_backup_testing import VENV_BIN, StandinSqlServer, free_port, standin_sql_server, wait_until

DAY = 86400
PASSWORD = "Str0ngSecretPassw0rd"


def unix(text: str) -> float:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.timezone.utc).timestamp()


@pytest.fixture(autouse=True)
def utc(monkeypatch) -> None:
    monkeypatch.setenv("TZ", "UTC")


def mssql(database: str = "", host: str = "mssql", **extra: object) -> dict[str, object]:
    entry: dict[str, object] = {"type": "mssql", "host": host, "port": 1433, "username": "sa", "password": "pw"}
    return {**entry, **({"database": database} if database else {}), **extra}


def document(**models: list[dict[str, object]]) -> dict[str, object]:
    return {
        "models": {
            name: {"schedule": {"cron": "0 2 * * *"}, "databases": {f"db{i}": d for i, d in enumerate(databases)}}
            for name, databases in models.items()
        }
    }


def lister(listing: dict[str, list[str]], failing: tuple[str, ...] = ()):
    """sqlcmd's answer per host; hosts in failing do not answer."""

    def answer(source) -> list[str]:
        if source["host"] in failing:
            raise status.CoverageError(f"sqlcmd on {source['host']},{source['port']}: Login timeout expired")
        return listing[source["host"]]

    return answer


# --- backup-coverage: the comparison -----------------------------------------------------


def test_coverage_names_each_database_no_model_backs_up() -> None:
    config = document(sales=[mssql("SalesDemo")], hr=[mssql("HR", host="other")])
    listing = {
        "mssql": [
            "SalesDemo",
            "NewDb",
            "ReportServer",
            "Sales_replaced_20261201020304",
            "NewDb_restoring_20261201020304",
        ],
        "other": ["HR", "msdb"],
    }
    result = status.check_coverage(restore_rules.source_servers(config), ["reportserver"], {}, 1000.0, lister(listing))
    assert result["uncovered"] == [{"server": "mssql,1433", "database": "NewDb"}]
    assert result["ignored"] == [{"server": "mssql,1433", "database": "ReportServer"}], "ignored case-insensitively"
    assert result["covered"] == {"sales": ["SalesDemo"], "hr": ["HR"]}
    assert result["servers"] == [
        {"server": "mssql,1433", "databases": ["SalesDemo", "NewDb", "ReportServer"], "error": ""},
        {"server": "other,1433", "databases": ["HR"], "error": ""},
    ], "a replace's copies and system databases are left out"
    assert (result["checked_at"], result["ok"]) == (1000.0, False)
    assert status.coverage_lines(result) == (
        ["UNCOVERED server=mssql,1433 database=NewDb", "COVERAGE UNCOVERED count=1"],
        1,
    )


def test_all_databases_covers_the_server_but_its_skip_databases() -> None:
    config = document(everything=[mssql(all_databases=True, skip_databases=["Scratch"])])
    sources = restore_rules.source_servers(config)
    result = status.check_coverage(sources, [], {}, 1.0, lister({"mssql": ["A", "B", "Scratch"]}))
    assert result["covered"] == {"everything": ["A", "B"]}
    assert result["uncovered"] == [{"server": "mssql,1433", "database": "Scratch"}]
    ignoring = status.check_coverage(sources, ["SCRATCH"], {}, 1.0, lister({"mssql": ["A", "B", "Scratch"]}))
    assert ignoring["ok"] is True
    assert status.coverage_lines(ignoring) == (["COVERAGE OK count=0"], 0)


def test_names_compare_as_sql_server_compares_them_and_servers_by_host_and_port() -> None:
    config = document(sales=[mssql("salesdemo", host="MSSQL")], hr=[mssql("HR", host="mssql")])
    result = status.check_coverage(
        restore_rules.source_servers(config), [], {}, 1.0, lister({"MSSQL": ["SalesDemo", "hr"]})
    )
    assert result["ok"] is True
    assert [server["server"] for server in result["servers"]] == ["MSSQL,1433"], "one server, listed once"


def test_a_server_that_does_not_answer_keeps_what_its_last_check_found() -> None:
    config = document(everything=[mssql(all_databases=True)], hr=[mssql("HR", host="other")])
    sources = restore_rules.source_servers(config)
    previous = status.check_coverage(sources, [], {}, 1.0, lister({"mssql": ["A", "NewDb"], "other": ["HR", "Old"]}))
    previous["uncovered"] = [{"server": "mssql,1433", "database": "Gone"}, *previous["uncovered"]]
    now = status.check_coverage(sources, [], previous, 2.0, lister({"mssql": ["A"], "other": ["HR"]}, ("mssql",)))
    assert now["servers"][0] == {
        "server": "mssql,1433",
        "databases": [],
        "error": "sqlcmd on mssql,1433: Login timeout expired",
    }
    assert now["covered"]["everything"] == ["A", "NewDb"], "as the last check saw it"
    assert now["uncovered"] == [{"server": "mssql,1433", "database": "Gone"}], "other's Old is gone: it answered"
    assert status.coverage_lines(now) == (
        [
            "COVERAGE ERROR server=mssql,1433 reason=sqlcmd on mssql,1433: Login timeout expired",
            "UNCOVERED server=mssql,1433 database=Gone",
            "COVERAGE UNCOVERED count=1 unchecked=1",
        ],
        1,
    )
    nothing_before = status.check_coverage(sources, [], {}, 2.0, lister({"other": ["HR"]}, ("mssql",)))
    assert status.coverage_lines(nothing_before)[1] == 2, "could not check, nothing known uncovered"
    assert nothing_before["ok"] is False


def test_each_login_of_a_server_is_tried_until_one_lists_it() -> None:
    config = document(a=[mssql("A", username="reader")], b=[mssql("B", username="sa")])
    tried = []

    def answer(source) -> list[str]:
        tried.append(source["username"])
        if source["username"] == "reader":
            raise status.CoverageError("sqlcmd on mssql,1433: Login failed for user 'reader'.")
        return ["A", "B"]

    result = status.check_coverage(restore_rules.source_servers(config), [], {}, 1.0, answer)
    assert tried == ["reader", "sa"]
    assert result["ok"] is True


# --- backup-status: the table ----------------------------------------------------------------

NOW = unix("2026-12-07 12:00:00")
SALES = document(sales=[mssql("SalesDemo")])
TARGETS = {"models": {"sales": {"rpo_grace_seconds": 3600, "proven_within_days": 8}}}


def passed(proven: float, **extra: object) -> dict[str, object]:
    return {"last_drill": proven, "result": "pass", "reason": "", "proven_at": proven, "restore_seconds": 12.5, **extra}


LAST_BACKUP = (unix("2026-12-07 02:00:05"), 2048)


def rows(config=SALES, drills=None, coverage=None, newest=LAST_BACKUP, now=NOW, since=0.0):
    def archives(body) -> tuple[float | None, int] | None:
        if isinstance(newest, Exception):
            raise newest
        return newest

    drills = {"models": drills} if drills is not None else {}
    return status.status_rows(config, TARGETS, drills, coverage or {}, now, since, archives)


def test_a_database_backed_up_and_proven_in_time_is_ok() -> None:
    [row] = rows(drills={"sales": {"SalesDemo": passed(NOW - DAY)}})
    assert row == {
        "model": "sales",
        "database": "SalesDemo",
        "server": "mssql,1433",
        "last_backup": unix("2026-12-07 02:00:05"),
        "last_backup_size": 2048,
        "proven_at": NOW - DAY,
        "restore_seconds": 12.5,
        "drill_result": "pass",
        "drill_reason": "",
        "status": "OK",
        "reasons": [],
    }


def test_overdue_once_the_next_scheduled_run_plus_the_grace_has_passed() -> None:
    drills = {"sales": {"salesdemo": passed(NOW - DAY)}}  # the name's case as the drill saw it
    last = unix("2026-12-06 02:00:05")
    within = rows(drills=drills, newest=(last, 1), now=unix("2026-12-07 02:59:00"))
    assert within[0]["status"] == "OK", "due 02:00, grace until 03:00"
    [row] = rows(drills=drills, newest=(last, 1), now=unix("2026-12-07 03:00:01"))
    assert row["status"] == "OVERDUE"
    assert row["reasons"] == [
        "OVERDUE: no backup since 2026-12-06 02:00 UTC: one was due by 2026-12-07 03:00 UTC"
        " (the schedule plus a grace of 3600 s)"
    ]


def test_a_model_without_an_archive_is_due_after_the_deploy() -> None:
    fresh = rows(newest=None, since=NOW - 3600, drills={"sales": {"SalesDemo": passed(NOW)}})
    assert fresh[0]["status"] == "OK"
    assert (fresh[0]["last_backup"], fresh[0]["last_backup_size"]) == (None, None)
    [late] = rows(newest=None, since=NOW - 3 * DAY, drills={"sales": {"SalesDemo": passed(NOW)}})
    assert late["reasons"][0].startswith("OVERDUE: no backup yet: one was due by 2026-12-05 03:00 UTC")


def test_not_proven_when_never_drilled_or_too_long_ago() -> None:
    [never] = rows()
    assert (never["status"], never["reasons"]) == ("NOT PROVEN", ["NOT PROVEN: never proven restorable by a drill"])
    [old] = rows(drills={"sales": {"SalesDemo": passed(NOW - 9 * DAY)}})
    assert old["status"] == "NOT PROVEN"
    assert old["reasons"] == ["NOT PROVEN: last proven restorable 2026-11-28 12:00 UTC, more than 8 days ago"]


def test_a_failed_drill_comes_first_and_keeps_the_last_proof() -> None:
    record = {
        **passed(NOW - 3 * DAY),
        "last_drill": NOW - 600,
        "result": "fail",
        "reason": "DBCC CHECKDB of SalesDemo_drill_20261207115000 failed",
    }
    [row] = rows(drills={"sales": {"SalesDemo": record}}, newest=(NOW - 3 * DAY, 1))
    assert row["status"] == "DRILL FAILED"
    assert row["proven_at"] == NOW - 3 * DAY
    assert row["drill_reason"] == "DBCC CHECKDB of SalesDemo_drill_20261207115000 failed"
    assert [reason.split(":")[0] for reason in row["reasons"]] == ["DRILL FAILED", "OVERDUE"]


def test_storage_that_cannot_be_listed_is_unknown_not_ok() -> None:
    [row] = rows(drills={"sales": {"SalesDemo": passed(NOW)}}, newest=OSError("cannot reach http://minio:9000"))
    assert row["status"] == "UNKNOWN"
    assert row["reasons"] == ["UNKNOWN: cannot list the archives of model sales: cannot reach http://minio:9000"]


def test_uncovered_databases_are_rows_of_their_own() -> None:
    coverage = {"uncovered": [{"server": "mssql,1433", "database": "NewDb"}]}
    table = rows(drills={"sales": {"SalesDemo": passed(NOW)}}, coverage=coverage)
    assert [(row["model"], row["database"], row["status"]) for row in table] == [
        ("sales", "SalesDemo", "OK"),
        ("", "NewDb", "UNCOVERED"),
    ]
    assert table[1]["reasons"][0].startswith("UNCOVERED: no model backs up database NewDb on mssql,1433")


def test_an_all_databases_model_has_a_row_per_database_its_drills_and_checks_saw() -> None:
    config = document(everything=[mssql(all_databases=True, skip_databases=["Scratch"])])
    assert [row["database"] for row in rows(config)] == ["*"], "none known yet"
    coverage = {"covered": {"everything": ["A", "b", "C"]}}
    drills = {"everything": {"B": passed(NOW), "Scratch": passed(NOW - 30 * DAY)}}
    table = rows(config, drills=drills, coverage=coverage)
    assert [(row["database"], row["status"]) for row in table] == [
        ("A", "NOT PROVEN"),
        ("B", "OK"),
        ("C", "NOT PROVEN"),
    ], "one row per name, as the drill spelt it"


# --- the programs, run as the image runs them --------------------------------------------------


def program(bin_dir: Path, name: str) -> str:
    """The image's /usr/local/bin/<name>: a link to the package's console script."""
    link = bin_dir / name
    if not link.exists():
        link.symlink_to(VENV_BIN / name)
    return str(link)


@pytest.fixture
def host(tmp_path: Path) -> dict[str, Path]:
    paths = {name: tmp_path / name for name in ("etc", "state", "work", "local", "bin")}
    for path in paths.values():
        path.mkdir()
    return paths


def write_config(host: dict[str, Path], sql_port: int, notify_port: int | None = None, **restore: object) -> Path:
    config = {
        "workdir": str(host["work"]),
        "web": {"host": "127.0.0.1", "port": free_port()},
        "models": {
            "sales": {
                "schedule": {"cron": "0 2 * * *"},
                "compress_with": {"type": "tar"},
                "databases": {
                    "sales": {
                        "type": "mssql",
                        "host": "127.0.0.1",
                        "port": sql_port,
                        "database": "SalesDemo",
                        "username": "sa",
                        "password": "${MSSQL_PASSWORD}",
                        "trust_server_certificate": True,
                    }
                },
                "storages": {"local": {"type": "local", "path": str(host["local"]), "keep": 3}},
            }
        },
    }
    dotenv = f"MSSQL_PASSWORD='{PASSWORD}'\n"
    if notify_port:
        config["models"]["sales"]["notifiers"] = {
            "webhook": {"type": "webhook", "url": f"http://127.0.0.1:{notify_port}/webhook", "on_failure": True}
        }
        dotenv += "NOTIFY_WEBHOOK_URL='http://127.0.0.1:9/hook'\n"
    (host["etc"] / "gobackup.yml").write_text(yaml.safe_dump(config))
    (host["etc"] / ".env").write_text(dotenv)
    settings = {
        "models": {"sales": {"host": "mssql-restore", "password": "${MSSQL_PASSWORD}", **restore}},
        "coverage": {"schedule": "", "ignore": ["ReportServer"]},
    }
    (host["etc"] / "restore.yml").write_text(yaml.safe_dump(settings))
    return host["etc"] / "gobackup.yml"


def run(host: dict[str, Path], *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    environment = {
        "PATH": f"{host['bin']}:{VENV_BIN}:/usr/bin:/bin",
        "GOBACKUP_STATE_DIR": str(host["state"]),
        "HOME": str(host["state"]),
        "TZ": "UTC",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=timeout, check=False)


def state(host: dict[str, Path], name: str) -> dict:
    return json.loads((host["state"] / name).read_text())


def test_backup_status_prints_the_table_and_json_and_exits_by_the_targets(host: dict[str, Path]) -> None:
    config = write_config(host, 1433)
    made = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    (host["local"] / made.strftime("%Y.%m.%d.%H.%M.%S.tar")).write_bytes(b"x" * 3000)
    (host["local"] / "2020.01.01.02.00.00.tar").write_bytes(b"old")
    drills = {"models": {"sales": {"SalesDemo": passed(time.time() - DAY, archive_size=3000)}}}
    (host["state"] / "drills.json").write_text(json.dumps(drills))
    uncovered = {"checked_at": time.time(), "uncovered": [{"server": "127.0.0.1,1433", "database": "NewDb"}]}
    (host["state"] / "coverage.json").write_text(json.dumps(uncovered))
    backup_status = program(host["bin"], "backup-status")

    shown = run(host, backup_status, "--config", str(config), "--json", "--host", "backup-01")
    assert shown.returncode == 1, shown.stdout + shown.stderr
    report = json.loads(shown.stdout)
    assert report["host"] == "backup-01"
    assert [(row["database"], row["status"]) for row in report["rows"]] == [("SalesDemo", "OK"), ("NewDb", "UNCOVERED")]
    assert report["rows"][0]["last_backup"] == int(made.timestamp())
    assert report["rows"][0]["last_backup_size"] == 3000

    table = run(host, backup_status, "--config", str(config), "--host", "backup-01")
    lines = table.stdout.splitlines()
    assert lines[0].startswith("host backup-01 (coverage checked ")
    assert lines[1].split() == [
        "MODEL",
        "DATABASE",
        "LAST",
        "BACKUP",
        "SIZE",
        "PROVEN",
        "RESTORABLE",
        "RESTORE",
        "STATUS",
    ]
    assert lines[2].split()[:2] == ["sales", "SalesDemo"]
    assert made.strftime("%Y-%m-%d %H:%M UTC  2.9 KiB") in lines[2]
    assert lines[2].endswith("12.5 s   OK")
    assert lines[3].split()[:2] == ["-", "NewDb"]
    assert lines[3].endswith("UNCOVERED")
    assert lines[4].startswith("127.0.0.1,1433/NewDb: UNCOVERED: no model backs up database NewDb")

    (host["state"] / "coverage.json").write_text(json.dumps({"checked_at": time.time(), "uncovered": []}))
    assert run(host, backup_status, "--config", str(config)).returncode == 0


# --- backup-coverage against the SQL Server stand-in --------------------------------------------


@pytest.fixture
def sql_server(tmp_path: Path, standin_bin: Path) -> Iterator[StandinSqlServer]:
    with standin_sql_server(standin_bin, PASSWORD, tmp_path / "mssql") as server:
        yield server


def recording_sqlcmd(host: dict[str, Path], standin_bin: Path) -> Path:
    """sqlcmd as the image has it, recording each call's arguments and whether
    the password came through SQLCMDPASSWORD."""
    calls = host["work"] / "sqlcmd-calls"
    wrapper = host["bin"] / "sqlcmd"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$* SQLCMDPASSWORD=${{SQLCMDPASSWORD:+set}} SQLCMDUSER=$SQLCMDUSER" >>"{calls}"\n'
        f'exec "{standin_bin / "sqlcmd"}" "$@"\n'
    )
    wrapper.chmod(0o755)
    return calls


def test_backup_coverage_lists_the_source_server_with_sqlcmd(
    host: dict[str, Path], sql_server: StandinSqlServer, standin_bin: Path
) -> None:
    for name in ("SalesDemo", "NewDb", "ReportServer", "SalesDemo_replaced_20261201020304"):
        sql_server.query(f"CREATE DATABASE [{name}]")
    config = write_config(host, sql_server.port)
    calls = recording_sqlcmd(host, standin_bin)
    coverage = program(host["bin"], "backup-coverage")
    server = f"127.0.0.1,{sql_server.port}"

    found = run(host, coverage, "--config", str(config))
    assert found.stdout.splitlines() == [f"UNCOVERED server={server} database=NewDb", "COVERAGE UNCOVERED count=1"], (
        found.stdout + found.stderr
    )
    assert found.returncode == 1
    saved = state(host, "coverage.json")
    assert saved["uncovered"] == [{"server": server, "database": "NewDb"}]
    assert saved["ignored"] == [{"server": server, "database": "ReportServer"}]
    assert saved["covered"] == {"sales": ["SalesDemo"]}
    assert sorted(saved["servers"][0]["databases"]) == ["NewDb", "ReportServer", "SalesDemo"]
    [call] = calls.read_text().splitlines()
    assert PASSWORD not in call, "the password never reaches sqlcmd's command line"
    assert call.endswith("SQLCMDPASSWORD=set SQLCMDUSER=sa")
    assert "-d master" in call

    as_json = run(host, coverage, "--config", str(config), "--json")
    assert json.loads(as_json.stdout)["uncovered"] == saved["uncovered"]

    sql_server.query("DROP DATABASE [NewDb]")
    cleared = run(host, coverage, "--config", str(config))
    assert (cleared.stdout, cleared.returncode) == ("COVERAGE OK count=0\n", 0)

    sql_server.process.terminate()
    sql_server.process.wait(timeout=10)
    down = run(host, coverage, "--config", str(config))
    assert down.returncode == 2
    assert down.stdout.splitlines()[-1] == "COVERAGE ERROR unchecked=1"
    assert down.stdout.startswith(f"COVERAGE ERROR server={server} reason=sqlcmd on {server}: ")
    assert PASSWORD not in down.stdout + down.stderr


# --- backup-proof-scheduler ---------------------------------------------------------------------


class FakeProcess:
    def __init__(self, command: list[str], label: str) -> None:
        self.command, self.label = command, label
        self.lines: collections.deque[str] = collections.deque()
        self.status: int | None = None
        self.terminated = self.killed = False

    def poll(self) -> int | None:
        return self.status

    def terminate(self) -> None:
        self.terminated = True

    def kill(self) -> None:
        self.killed, self.status = True, -9

    def wait(self, timeout: float) -> int | None:
        return self.status


class Harness:
    """A scheduler on a clock the test moves, with programs it finishes by hand."""

    def __init__(self, settings: dict, models: tuple[str, ...] = ("sales",), start: str = "2026-12-06 03:59:30"):
        self.now = unix(start)
        self.started: list[FakeProcess] = []
        self.posted: list[tuple[dict, str, str]] = []
        self.backups: list[str] = []
        config = {"models": {name: {} for name in models}}
        self.scheduler = proof.Scheduler(
            proof.jobs_of(config, settings),
            Path("/work"),
            {"webhook": 2799},
            clock=lambda: self.now,
            drill_command=lambda model: ["backup-restore", "--model", model, "--drill"],
            coverage_command=["backup-coverage"],
            spawn=self.spawn,
            post=lambda channels, title, message: self.posted.append((dict(channels), title, message)),
            running_backups=lambda workdir: list(self.backups),
        )

    def spawn(self, command: list[str], label: str) -> FakeProcess:
        process = FakeProcess(command, label)
        self.started.append(process)
        return process

    def at(self, text: str) -> None:
        self.now = unix(text)
        self.scheduler.step()

    def running(self) -> list[list[str]]:
        return [process.command for process in self.started if process.status is None]


WEEKLY = {"drill_schedule": "0 4 * * 0"}


def test_drills_run_on_their_schedule_one_at_a_time(capsys) -> None:
    harness = Harness({"models": {"sales": WEEKLY, "hr": WEEKLY}}, models=("sales", "hr"))
    assert "drill of model sales at '0 4 * * 0' (next 2026-12-06 04:00:00 UTC)" in capsys.readouterr().err
    harness.at("2026-12-06 03:59:59")
    assert harness.started == []
    harness.at("2026-12-06 04:00:00")
    assert harness.running() == [["backup-restore", "--model", "hr", "--drill"]]
    harness.at("2026-12-06 04:10:00")
    assert len(harness.running()) == 1, "the second drill waits for the first"
    harness.started[0].status = 0
    harness.at("2026-12-06 04:10:01")
    assert harness.running() == [["backup-restore", "--model", "sales", "--drill"]]
    harness.started[1].status = 0
    harness.at("2026-12-06 04:20:00")
    assert harness.running() == []
    assert harness.posted == [], "passed drills alert nobody"
    harness.at("2026-12-13 04:00:00")
    assert len(harness.started) == 3, "next week's"


def test_a_drill_waits_while_its_models_backup_runs(capsys) -> None:
    harness = Harness({"models": {"sales": WEEKLY}})
    harness.backups = ["sales"]
    harness.at("2026-12-06 04:00:00")
    harness.at("2026-12-06 04:00:01")
    harness.at("2026-12-06 04:05:00")
    assert harness.started == []
    log = capsys.readouterr().err
    assert log.count("drill of model sales waits: a backup of model sales is running") == 1
    harness.at("2026-12-06 04:10:00")
    assert "drill of model sales waits" in capsys.readouterr().err, "said again every 10 minutes"
    harness.backups = ["hr"]  # another model's backup does not hold it
    harness.at("2026-12-06 04:10:01")
    assert harness.running() == [["backup-restore", "--model", "sales", "--drill"]]
    assert "the backup of model sales is over; starting its drill" in capsys.readouterr().err


def test_a_schedule_that_fires_during_its_drill_is_skipped(capsys) -> None:
    harness = Harness({"models": {"sales": {"drill_schedule": "*/5 * * * *"}}})
    harness.at("2026-12-06 04:00:00")
    harness.at("2026-12-06 04:05:00")
    assert len(harness.started) == 1
    assert "drill of model sales skipped: its previous drill is still waiting or running" in capsys.readouterr().err


def test_a_failed_drill_alerts_through_every_channel_of_the_relay() -> None:
    harness = Harness({"models": {"sales": WEEKLY}})
    harness.at("2026-12-06 04:00:00")
    drill = harness.started[0]
    drill.lines += [
        "restore: importing SalesDemo.bacpac into SalesDemo_drill_20261206040000 on mssql-restore,1433",
        "DRILL FAIL model=sales database=SalesDemo reason=DBCC CHECKDB of SalesDemo_drill_20261206040000 failed",
    ]
    drill.status = 1
    harness.at("2026-12-06 04:30:00")
    assert harness.posted == [
        (
            {"webhook": 2799},
            "[GoBackup] Err: Restore drill of sales has failed",
            "Restore drill of sales failed at 2026-12-06 04:30:00 UTC: a database of the model is not proven"
            " restorable.\n\nDRILL FAIL model=sales database=SalesDemo reason=DBCC CHECKDB of"
            " SalesDemo_drill_20261206040000 failed",
        )
    ]


def test_uncovered_databases_alert_once_while_they_stay_uncovered() -> None:
    harness = Harness({"models": {}, "coverage": {"schedule": "*/30 * * * *"}})

    def check(at: str, status: int, *databases: str) -> list[str]:
        harness.at(at)
        process = harness.started[-1]
        assert process.command == ["backup-coverage"]
        process.lines += [f"UNCOVERED server=mssql,1433 database={name}" for name in databases]
        process.status = status
        harness.posted.clear()
        harness.scheduler.step()
        return [message for _, _, message in harness.posted]

    [first] = check("2026-12-06 04:00:00", 1, "NewDb")
    assert first.endswith("\n\nUNCOVERED server=mssql,1433 database=NewDb")
    assert harness.posted[0][1] == "[GoBackup] Err: 1 database(s) without a backup"
    assert check("2026-12-06 04:30:00", 1, "NewDb") == [], "told already"
    [second] = check("2026-12-06 05:00:00", 1, "NewDb", "Other")
    assert second.endswith("\n\nUNCOVERED server=mssql,1433 database=Other")
    assert check("2026-12-06 05:30:00", 2) == [], "a check that could not run forgets nothing"
    assert check("2026-12-06 06:00:00", 0) == []
    assert len(check("2026-12-06 06:30:00", 1, "NewDb")) == 1, "uncovered again after it was covered"


def test_a_coverage_check_runs_beside_a_drill() -> None:
    harness = Harness({"models": {"sales": WEEKLY}, "coverage": {"schedule": "0 * * * *"}})
    harness.at("2026-12-06 04:00:00")
    assert sorted(process.label for process in harness.started) == ["coverage", "drill sales"]


DRILL_STARTED = "import signal, sys, time\nprint('started', flush=True)\n"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (DRILL_STARTED + "time.sleep(0.5)\nprint('DRILL PASS model=sales', flush=True)", "ended"),
        (
            DRILL_STARTED
            + "def stop(*_):\n    print('restore: dropped SalesDemo_drill', flush=True)\n    sys.exit(1)\n"
            + "signal.signal(signal.SIGTERM, stop)\ntime.sleep(60)",
            "stopped",
        ),
        (DRILL_STARTED + "signal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)", "killed"),
    ],
    ids=["finishes-within-the-bound", "stopped-it-drops-its-database", "ignores-sigterm"],
)
def test_a_stop_lets_a_drill_finish_then_stops_it_then_kills_it(capsys, script: str, expected: str) -> None:
    posted = []
    now = [unix("2026-12-06 03:59:59")]
    scheduler = proof.Scheduler(
        proof.jobs_of({"models": {"sales": {}}}, {"models": {"sales": WEEKLY}}),
        Path("/work"),
        {"webhook": 2799},
        clock=lambda: now[0],
        drill_command=lambda model: [sys.executable, "-c", script],
        post=lambda *alert: posted.append(alert),
        running_backups=lambda workdir: [],
        finish_seconds=1.5,
        cleanup_seconds=1.0,
    )
    now[0] += 1
    scheduler.step()
    _, process = scheduler.drill
    wait_until(lambda: "started" in process.lines, "the drill to start", timeout=10, interval=0.05)
    began = time.monotonic()
    scheduler.shutdown()
    took = time.monotonic() - began
    log = capsys.readouterr().err
    assert process.poll() is not None, "no drill outlives the scheduler"
    assert scheduler.drill is None
    assert posted == [], "a stopped drill is no failed drill"
    if expected == "ended":
        assert took < 1.5
        assert "stopping the drill" not in log
        assert "drill sales: DRILL PASS model=sales" in log
    elif expected == "stopped":
        assert 1.4 < took < 2.5
        assert "stopping the drill of model sales: it drops its scratch database" in log
        assert "drill sales: restore: dropped SalesDemo_drill" in log
        assert "the drill of model sales stopped (exit 1)" in log
    else:
        assert 2.4 < took < 4
        assert "error: killed the drill of model sales after 1 s: its scratch database may be left" in log


class Receiver:
    """An HTTP endpoint that records what is posted to it."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append((self.command, self.path, dict(self.headers), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


def test_alerts_are_posted_as_gobackups_webhook_notifier_posts(receiver: Receiver) -> None:
    proof.post_to_relay({"webhook": receiver.port}, "[GoBackup] Err: x", "line one\n\nline two")
    [(method, path, headers, body)] = receiver.requests
    assert (method, path, headers["Content-Type"]) == ("POST", "/webhook", "application/json")
    assert json.loads(body) == {"title": "[GoBackup] Err: x", "message": "line one\n\nline two"}


def test_the_scheduler_drills_alerts_and_stops_on_sigterm(host: dict[str, Path], receiver: Receiver) -> None:
    """The program as the entrypoint starts it, with a backup-restore that fails its drill."""
    config = write_config(host, 1433, notify_port=receiver.port, drill_schedule="@every 1s")
    calls = host["work"] / "drill-calls"
    fake = host["bin"] / "backup-restore"
    fake.write_text(
        f'#!/bin/sh\necho "$*" >>"{calls}"\necho "DRILL FAIL model=sales database=SalesDemo reason=boom"\nexit 1\n'
    )
    fake.chmod(0o755)
    scheduler = program(host["bin"], "backup-proof-scheduler")
    environment = {
        "PATH": f"{host['bin']}:{VENV_BIN}:/usr/bin:/bin",
        "GOBACKUP_STATE_DIR": str(host["state"]),
        "TZ": "UTC",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    process = subprocess.Popen([scheduler, "--config", str(config)], env=environment, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: receiver.requests or process.poll() is not None, "an alert", timeout=20)
        assert receiver.requests, process.communicate(timeout=5)
    finally:
        process.send_signal(signal.SIGTERM)
        _, log = process.communicate(timeout=30)
    assert process.returncode == 0, log
    assert calls.read_text().splitlines()[0] == f"--config {config} --model sales --drill"
    _, path, _, body = receiver.requests[0]
    assert path == "/webhook"
    assert json.loads(body)["title"] == "[GoBackup] Err: Restore drill of sales has failed"
    assert "DRILL FAIL model=sales database=SalesDemo reason=boom" in json.loads(body)["message"]
    assert "backup-proof-scheduler: drill of model sales at '@every 1s'" in log
    assert "Traceback" not in log


def test_without_schedules_the_scheduler_idles_until_it_is_stopped(host: dict[str, Path]) -> None:
    config = write_config(host, 1433)  # no drill_schedule, coverage schedule ""
    environment = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "GOBACKUP_STATE_DIR": str(host["state"])}
    process = subprocess.Popen(
        [str(VENV_BIN / "backup-proof-scheduler"), "--config", str(config)],
        env=environment,
        stderr=subprocess.PIPE,
        text=True,
    )
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=1.5)
    assert process.poll() is None, "it keeps running: the entrypoint supervises it like the others"
    process.send_signal(signal.SIGTERM)
    _, log = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "no drill_schedule or coverage schedule in restore.yml" in log
