"""Where every database of this backup host stands: backed up, proven, covered.

  backup-status [--json] [--host NAME] [--config PATH]
  backup-coverage [--json] [--config PATH]

backup-status prints one table for the host: per model and database the last
backup (the newest archive in the model's storage: its time, from the name
GoBackup gives it, and its size), when a drill last proved it restorable and
how long the import took, and a status against the targets of restore.yml:
OVERDUE when the first scheduled backup after the last one, plus the
model's grace (rpo_grace_seconds and the measured time of the runs queued
with it: overdue.py), has passed; NOT PROVEN when no drill passed within
proven_within_days; DRILL FAILED when the last drill failed; a row per
database no model backs up, UNCOVERED (from the last coverage check). An
all_databases model has a row per database its last drill or coverage check
saw. --json prints {"host", "checked_at", "coverage_checked_at", "rows":
[{model, database, server, last_backup, last_backup_size, proven_at,
restore_seconds, drill_result, drill_reason, status, reasons}]} with times as
Unix seconds (null: none) and each reason starting with its status. Exit 0 when every row is OK, 1 when a target is
breached, 2 when a model's archives could not be listed (status UNKNOWN) and
nothing is breached.

backup-coverage (this program under that name) lists the databases of each
source server with sqlcmd (the model's login, the password through
SQLCMDPASSWORD), leaves out system databases, snapshots and the
<db>_replaced_/<db>_restoring_<14 digits> copies a replace makes, compares
them with the models (an all_databases model covers its server's databases
but its skip_databases; restore.yml's coverage.ignore lists names never
reported) and writes coverage.json in the state volume. It prints
`UNCOVERED server=host,port database=X` per uncovered database,
`COVERAGE ERROR server=host,port reason=...` per server it could not list,
then `COVERAGE OK count=0`, `COVERAGE UNCOVERED count=N` or `COVERAGE ERROR
unchecked=N`; --json prints coverage.json instead. A server that cannot be
listed keeps the uncovered databases its last check found. Exit 0 when none
is uncovered, 1 when some are, 2 when a server could not be checked.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from sqlserver_backup import (
    config_errors,
    go_time_location,
    gobackup_config,
    gobackup_env,
    overdue,
    restore_rules,
    state_files,
)
from sqlserver_backup.archives import archive_timestamp
from sqlserver_backup.archives import newest_archive as stored_newest_archive
from sqlserver_backup.database import Database
from sqlserver_backup.errors import RestoreError
from sqlserver_backup.models import active_config
from sqlserver_backup.workers import worker_models

LIST_QUERY = "SELECT name FROM sys.databases WHERE database_id > 4 AND source_database_id IS NULL"
SYSTEM_DATABASES = {"master", "tempdb", "model", "msdb"}
# What `backup-restore --replace` leaves on a server, and makes during a swap.
REPLACE_COPY = re.compile(r"_(replaced|restoring)_[0-9]{14}$", re.IGNORECASE)
SQLCMD_TIMEOUT_SECONDS = 60
STORAGE_TIMEOUT_SECONDS = 30
# An all_databases model whose databases no drill or coverage check has seen yet.
ALL_DATABASES = "*"
STATUS_ORDER = ("DRILL FAILED", "OVERDUE", "NOT PROVEN", "UNKNOWN")


class CoverageError(Exception):
    """A server's databases could not be listed."""


def fold(name: str) -> str:
    """SQL Server compares names case-insensitively (the default collations)."""
    return name.casefold()


# --- Coverage ----------------------------------------------------------------------


def server_name(source: Mapping[str, Any]) -> str:
    return f"{source['host']},{source['port']}"


def list_databases(source: Mapping[str, Any]) -> list[str]:
    """The user databases of a source's server, through sqlcmd with its login."""
    server = Database(
        host=source["host"],
        port=source["port"],
        name="master",
        username=source["username"],
        password=source["password"],
        trust=source["trust_server_certificate"],
        args="",
    )
    try:
        return server.sqlcmd(LIST_QUERY, "master", SQLCMD_TIMEOUT_SECONDS)
    except (RestoreError, OSError) as error:
        raise CoverageError(str(error)) from None


def user_databases(names: Iterable[str]) -> list[str]:
    return [name for name in names if name and fold(name) not in SYSTEM_DATABASES and not REPLACE_COPY.search(name)]


def check_coverage(
    sources: list[dict[str, Any]],
    ignore: Iterable[str],
    previous: Mapping[str, Any],
    now: float,
    lister: Callable[[Mapping[str, Any]], list[str]] = list_databases,
) -> dict[str, Any]:
    """coverage.json's content: each source server's databases against the models."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for source in sources:
        groups.setdefault((source["host"].lower(), source["port"]), []).append(source)
    ignored_names = {fold(name) for name in ignore}
    old_uncovered = [entry for entry in previous.get("uncovered") or [] if isinstance(entry, dict)]
    old_covered = previous.get("covered") if isinstance(previous.get("covered"), dict) else {}
    servers, covered, uncovered, ignored = [], {}, [], []
    for entries in groups.values():
        server = server_name(entries[0])
        names: list[str] | None = None
        errors = []
        logins: dict[tuple[str, str, bool], dict[str, Any]] = {}
        for entry in entries:  # each login once, in the order of the models
            logins.setdefault((entry["username"], entry["password"], entry["trust_server_certificate"]), entry)
        for login in logins.values():
            try:
                names = user_databases(lister(login))
                break
            except CoverageError as error:
                errors.append(str(error))
        servers.append({"server": server, "databases": names or [], "error": "" if names is not None else errors[-1]})
        backed_up = set()
        for entry in entries:
            model = covered.setdefault(entry["model"], [])
            if not entry["all_databases"]:
                model.append(entry["database"])
                backed_up.add(fold(entry["database"]))
            elif names is not None:
                skip = {fold(name) for name in entry["skip_databases"]}
                model += [name for name in names if fold(name) not in skip]
                backed_up |= {fold(name) for name in names if fold(name) not in skip}
            else:  # what the last check saw, until the server answers again
                model += [name for name in old_covered.get(entry["model"]) or [] if isinstance(name, str)]
        if names is None:
            uncovered += [entry for entry in old_uncovered if str(entry.get("server", "")).lower() == server.lower()]
            continue
        for name in names:
            if fold(name) in backed_up:
                continue
            (ignored if fold(name) in ignored_names else uncovered).append({"server": server, "database": name})
    return {
        "checked_at": now,
        "ok": not uncovered and all(not server["error"] for server in servers),
        "servers": servers,
        "covered": covered,
        "uncovered": uncovered,
        "ignored": ignored,
    }


def coverage_lines(result: Mapping[str, Any]) -> tuple[list[str], int]:
    """What backup-coverage prints, and its exit status."""
    lines = [f"COVERAGE ERROR server={s['server']} reason={s['error']}" for s in result["servers"] if s["error"]]
    lines += [f"UNCOVERED server={e['server']} database={e['database']}" for e in result["uncovered"]]
    unchecked = sum(1 for server in result["servers"] if server["error"])
    if result["uncovered"]:
        suffix = f" unchecked={unchecked}" if unchecked else ""
        return [*lines, f"COVERAGE UNCOVERED count={len(result['uncovered'])}{suffix}"], 1
    if unchecked:
        return [*lines, f"COVERAGE ERROR unchecked={unchecked}"], 2
    return [*lines, "COVERAGE OK count=0"], 0


def coverage_main(arguments: argparse.Namespace) -> int:
    try:
        _, document, settings = load(arguments.config)
    except config_errors.ConfigError as error:
        print(f"COVERAGE ERROR {'; '.join(error.reasons)}")
        return 2
    options = settings.get("coverage") if isinstance(settings.get("coverage"), dict) else {}
    result = check_coverage(
        restore_rules.source_servers(document),
        [str(name) for name in options.get("ignore") or []],
        state_files.read_state(state_files.COVERAGE_STATE),
        time.time(),
    )
    state_files.write_state(state_files.COVERAGE_STATE, result)
    lines, status = coverage_lines(result)
    print(json.dumps(result, indent=1) if arguments.json else "\n".join(lines), flush=True)
    return status


# --- Status --------------------------------------------------------------------------


def newest_archive(
    body: Mapping[str, Any], timeout: float = STORAGE_TIMEOUT_SECONDS
) -> tuple[float | None, int] | None:
    """(time, size) of the archive a restore takes by default (see
    archives.listed_archives); None when the model has none. The time is
    GoBackup's, from the name."""
    newest = stored_newest_archive(body, timeout)
    return (archive_timestamp(newest.name, body), newest.size) if newest else None


def when(moment: float | None) -> str:
    if not moment:
        return "never"
    return datetime.datetime.fromtimestamp(moment, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def size_text(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def model_databases(
    model: str, sources: list[dict[str, Any]], drills: Mapping[str, Any], coverage: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """(database, server) of each row of a model."""
    rows: dict[str, tuple[str, str]] = {}
    for source in sources:
        if source["model"] != model:
            continue
        if not source["all_databases"]:
            rows.setdefault(fold(source["database"]), (source["database"], server_name(source)))
            continue
        seen = list(drills) + list((coverage.get("covered") or {}).get(model) or [])
        skip = {fold(name) for name in source["skip_databases"]}
        for name in sorted((name for name in seen if isinstance(name, str)), key=fold):
            if fold(name) not in skip:
                rows.setdefault(fold(name), (name, server_name(source)))
        if not rows:
            rows[ALL_DATABASES] = (ALL_DATABASES, server_name(source))
    return list(rows.values())


def drill_record(drills: Mapping[str, Any], database: str) -> Mapping[str, Any]:
    for name, record in drills.items():
        if fold(name) == fold(database) and isinstance(record, dict):
            return record
    return {}


def backup_state(
    model: str,
    body: Mapping[str, Any],
    grace_after: Callable[[float], int],
    now: float,
    since: float,
    archives: Callable[[Mapping[str, Any]], tuple[float | None, int] | None],
) -> tuple[float | None, int | None, list[str], str]:
    """A model's newest archive (time, size), why its backup is overdue, and
    why its state is unknown (its archives could not be listed).
    `grace_after(due)`: the model's grace for a run due then."""
    try:
        newest = archives(body)
    except Exception as error:  # MinIO down, a refused key: this model's row says so
        return None, None, [], f"cannot list the archives of model {model}: {error}"
    last, size = newest if newest is not None else (None, None)
    due = overdue.next_due(body, last or since, go_time_location.local_zone())
    if due is None:
        return last, size, [], ""
    grace = grace_after(due)
    if now <= due + grace:
        return last, size, [], ""
    late = (
        f"{'no backup since ' + when(last) if last else 'no backup yet'}: one was due by"
        f" {when(due + grace)} (the schedule plus a grace of {grace} s)"
    )
    return last, size, [late], ""


def proof_reasons(record: Mapping[str, Any], within_days: int, now: float) -> dict[str, list[str]]:
    """Why a database's proof fails its target: a failed drill, none, or too old."""
    reasons: dict[str, list[str]] = {}
    if record.get("result") == "fail":
        reasons["DRILL FAILED"] = [
            f"the drill of {when(record.get('last_drill'))} failed: {record.get('reason') or 'no reason'}"
        ]
    proven = record.get("proven_at")
    if not proven:
        reasons["NOT PROVEN"] = ["never proven restorable by a drill"]
    elif now - float(proven) > within_days * 86400:
        reasons["NOT PROVEN"] = [f"last proven restorable {when(proven)}, more than {within_days} days ago"]
    return reasons


def row(model: str, database: str, server: str, **fields: Any) -> dict[str, Any]:
    """One row of the table; what a field does not give is unknown (None)."""
    empty = dict.fromkeys(("last_backup", "last_backup_size", "proven_at", "restore_seconds", "drill_result"))
    return {"model": model, "database": database, "server": server, **empty, "drill_reason": "", **fields}


def uncovered_rows(coverage: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        row(
            "",
            entry["database"],
            entry["server"],
            status="UNCOVERED",
            reasons=[
                f"UNCOVERED: no model backs up database {entry['database']} on {entry['server']}: add it to a"
                " model (or to backup_config_coverage_ignore)"
            ],
        )
        for entry in coverage.get("uncovered") or []
    ]


def status_rows(
    document: Mapping[str, Any],
    settings: Mapping[str, Any],
    drills: Mapping[str, Any],
    coverage: Mapping[str, Any],
    now: float,
    since: float,
    archives: Callable[[Mapping[str, Any]], tuple[float | None, int] | None] = newest_archive,
    measured: Mapping[str, float] | None = None,
    workers: list[list[str]] | None = None,
) -> list[dict[str, Any]]:
    """The table's rows. `since`: when the configuration was deployed, for a
    model with no archive yet (its first backup is due after that);
    `measured`: each model's last run duration (overdue.durations());
    `workers`: each worker's models (workers.worker_models)."""
    grace = overdue.Grace(document, settings, measured or {}, go_time_location.local_zone(), workers=workers)
    targets = settings.get("models") if isinstance(settings.get("models"), dict) else {}
    sources = restore_rules.source_servers(document)
    model_drills = drills.get("models") if isinstance(drills.get("models"), dict) else {}
    rows = []
    for model, body in sorted(document["models"].items()):
        target = targets.get(model) if isinstance(targets.get(model), dict) else {}
        within_days = int(target.get("proven_within_days") or restore_rules.DEFAULT_PROVEN_WITHIN_DAYS)
        last, size, late, unknown = backup_state(
            model, body, functools.partial(grace.seconds, model), now, since, archives
        )
        for database, server in model_databases(model, sources, model_drills.get(model) or {}, coverage):
            record = drill_record(model_drills.get(model) or {}, database)
            reasons = {"OVERDUE": late, "UNKNOWN": [unknown] if unknown else []}
            reasons.update(proof_reasons(record, within_days, now))
            found = [status for status in STATUS_ORDER if reasons.get(status)]
            fields = {
                "last_backup": last,
                "last_backup_size": size,
                "proven_at": record.get("proven_at"),
                "restore_seconds": record.get("restore_seconds"),
                "drill_result": record.get("result"),
                "drill_reason": record.get("reason") or "",
                "status": found[0] if found else "OK",
                "reasons": [f"{status}: {reason}" for status in found for reason in reasons[status]],
            }
            rows.append(row(model, database, server, **fields))
    return rows + uncovered_rows(coverage)


def table(host: str, rows: list[dict[str, Any]], coverage_checked: float | None) -> str:
    header = ("MODEL", "DATABASE", "LAST BACKUP", "SIZE", "PROVEN RESTORABLE", "RESTORE", "STATUS")
    cells = [header] + [
        (
            row["model"] or "-",
            row["database"],
            when(row["last_backup"]) if row["model"] else "-",
            size_text(row["last_backup_size"]),
            when(row["proven_at"]) if row["model"] else "-",
            f"{row['restore_seconds']:.1f} s" if row["restore_seconds"] is not None else "-",
            row["status"],
        )
        for row in rows
    ]
    widths = [max(len(line[column]) for line in cells) for column in range(len(header))]
    lines = [f"host {host} (coverage checked {when(coverage_checked)})"]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in cells]
    for row in rows:
        for reason in row["reasons"]:
            lines.append(f"{row['model'] or row['server']}/{row['database']}: {reason}")
    return "\n".join(lines)


def status_main(arguments: argparse.Namespace) -> int:
    try:
        config, document, settings = load(arguments.config)
    except config_errors.ConfigError as error:
        print(f"STATUS ERROR {'; '.join(error.reasons)}")
        return 2
    coverage = state_files.read_state(state_files.COVERAGE_STATE)
    now = time.time()
    drills = state_files.read_state(state_files.DRILLS_STATE)
    deployed, measured, groups = config.stat().st_mtime, overdue.durations(), worker_models(config, os.environ)
    rows = status_rows(document, settings, drills, coverage, now, deployed, measured=measured, workers=groups)
    host = arguments.host or os.environ.get("BACKUP_HOST") or socket.gethostname()
    if arguments.json:
        report = {"host": host, "checked_at": now, "coverage_checked_at": coverage.get("checked_at"), "rows": rows}
        print(json.dumps(report, indent=1))
    else:
        print(table(host, rows, coverage.get("checked_at")))
    statuses = {row["status"] for row in rows}
    if statuses - {"OK", "UNKNOWN"}:
        return 1
    return 2 if "UNKNOWN" in statuses else 0


def load(named: Path | None) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """The active config, its document and restore.yml beside it."""
    config = active_config(named)
    document, environment = gobackup_config.load(config, gobackup_env.resolve_file_env(os.environ))
    return config, document, restore_rules.load_restore_settings(config, environment)


def common_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")
    parser.add_argument("--config", type=Path, help="GoBackup configuration (default: the active one)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """backup-status."""
    parser = common_arguments(
        argparse.ArgumentParser(prog="backup-status", description=(__doc__ or "").splitlines()[0])
    )
    parser.add_argument("--host", help="host name to report (default: BACKUP_HOST, else the container's)")
    return status_main(parser.parse_args(argv))


def coverage_cli(argv: list[str] | None = None) -> int:
    """backup-coverage."""
    parser = argparse.ArgumentParser(prog="backup-coverage", description="List the databases no model backs up.")
    return coverage_main(common_arguments(parser).parse_args(argv))
