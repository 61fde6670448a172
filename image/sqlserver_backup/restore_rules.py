"""The rules of restore.yml: where restores, drills and coverage checks go.

restore.yml (beside the config, written by the backup_config role) says where
each model's restores and drills import: a server of their own, never one the
host backs up, so restores, drills and replaces never reach production unless
`backup-restore --into-source` is asked for. It also holds each model's drill
schedule, which may not start at the minute of the model's backup, and the
coverage check's schedule. GoBackup never reads it."""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sqlserver_backup.config_errors import name_sources
from sqlserver_backup.config_yaml import viper_string, yaml_problem
from sqlserver_backup.go_gocron import parse_cron
from sqlserver_backup.go_os_expand import go_expand
from sqlserver_backup.go_robfig_cron import SpecSchedule
from sqlserver_backup.go_time_location import local_zone
from sqlserver_backup.gobackup_config import check_text, load_lenient
from sqlserver_backup.gobackup_env import environment_for
from sqlserver_backup.gobackup_rules import LOOPBACK_NAMES, check_cron, schedule_of

RESTORE_SETTINGS = "restore.yml"
RESTORE_MODEL_KEYS = {
    "host",
    "port",
    "username",
    "password",
    "trust_server_certificate",
    "previous_passphrases",
    "drill_schedule",
    "rpo_grace_seconds",
    "proven_within_days",
}
DEFAULT_DRILL_SCHEDULE = "17 4 * * 0"
DEFAULT_RPO_GRACE_SECONDS = 3600
DEFAULT_PROVEN_WITHIN_DAYS = 8
# Weeks ahead in which a drill may not start at the minute of its model's backup.
DRILL_COLLISION_WEEKS = 8
# What the Ansible variables are called, for messages an operator can act on.
RESTORE_HOST_HINT = "Ansible: backup_config_restore_host, or restore_host of the database entry"
DRILL_SCHEDULE_HINT = "Ansible: backup_config_drill_schedule, or drill_schedule of the database entry"


def load_restore_settings(config_path: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    """restore.yml beside the config, its ${VAR} references resolved from the
    config's .env; {} when there is none. Without the file (the bundled
    template, no Ansible) RESTORE_MSSQL_* give every model one restore server."""
    settings_file = config_path.parent / RESTORE_SETTINGS
    if settings_file.is_file():
        loaded = load_lenient(settings_file, environ)
        return loaded if isinstance(loaded, dict) else {}
    environment = environment_for(config_path, environ)
    if not environment.get("RESTORE_MSSQL_HOST"):
        return {}
    server = {
        "host": environment["RESTORE_MSSQL_HOST"],
        "port": environment.get("RESTORE_MSSQL_PORT") or 1433,
        "username": environment.get("RESTORE_MSSQL_USER") or "",
        "password": environment.get("RESTORE_MSSQL_PASSWORD") or "",
        "trust_server_certificate": environment.get("RESTORE_MSSQL_TRUST_SERVER_CERTIFICATE", "false") == "true",
    }
    document = load_lenient(config_path, environ)
    return {"models": {str(model): dict(server) for model in (document.get("models") or {})}}


def source_servers(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every mssql database of every model, with GoBackup's defaults filled in."""
    found = []
    for model, body in (document.get("models") or {}).items():
        for key, database in ((body or {}).get("databases") or {}).items():
            if not isinstance(database, dict) or database.get("type") != "mssql":
                continue
            found.append(
                {
                    "model": str(model),
                    "key": str(key),
                    "host": str(database.get("host") or "127.0.0.1"),
                    "port": int(database.get("port") or 1433),
                    "username": str(database.get("username") or "sa"),
                    "password": str(database.get("password") or ""),
                    "trust_server_certificate": str(database.get("trust_server_certificate", False)).lower() == "true",
                    "database": str(database.get("database") or ""),
                    "all_databases": str(database.get("all_databases", False)).lower() == "true",
                    "skip_databases": [str(name) for name in database.get("skip_databases") or []],
                }
            )
    return found


def same_server(host: str, port: Any, other_host: str, other_port: Any) -> bool:
    """Host (case-insensitive, loopback names alike) and port both equal."""

    def normal(name: str) -> str:
        name = name.strip().lower().rstrip(".")
        return "127.0.0.1" if name in LOOPBACK_NAMES or name == "::1" else name

    return normal(host) == normal(other_host) and int(port) == int(other_port)


def _schedule_minutes(schedule: Any, start: datetime.datetime, end: datetime.datetime) -> set[datetime.datetime]:
    minutes: set[datetime.datetime] = set()
    moment = start
    while schedule is not None:
        moment = schedule.next(moment)
        if moment is None or moment > end or len(minutes) > 100_000:
            break
        minutes.add(moment.replace(second=0, microsecond=0))
    return minutes


def _drill_reasons(model: str, body: Any, drill: str, start: datetime.datetime) -> list[str]:
    """The drill schedule parses, and never starts at the minute of the backup."""
    cron_reasons = check_cron(model, drill)
    if cron_reasons:
        return [f"{reason} (drill_schedule; {DRILL_SCHEDULE_HINT})" for reason in cron_reasons]
    backup = schedule_of(body.get("schedule")) if isinstance(body, dict) and body.get("schedule") else None
    if not isinstance(backup, SpecSchedule):
        return []  # an @every or every: schedule's minutes depend on when the scheduler started
    end = start + datetime.timedelta(weeks=DRILL_COLLISION_WEEKS)
    clash = sorted(_schedule_minutes(parse_cron(drill), start, end) & _schedule_minutes(backup, start, end))
    if clash:
        return [
            f"model {model}: its drill_schedule '{drill}' starts at the same minute as its backup"
            f" ({clash[0]:%Y-%m-%d %H:%M}); a drill never runs at the moment of its model's backup:"
            f" choose another minute ({DRILL_SCHEDULE_HINT})"
        ]
    return []


def _model_reasons(
    model: str, body: Any, settings: Any, sources: list[dict[str, Any]], start: datetime.datetime
) -> list[str]:
    """One model's restore settings: a restore server of its own, known keys, a drill schedule."""
    if not isinstance(settings, dict) or not str(settings.get("host") or "").strip():
        return [
            f"model {model}: no restore server is set; restores and drills need a SQL Server of their own"
            f" that this host does not back up ({RESTORE_HOST_HINT}; RESTORE_MSSQL_HOST without Ansible)"
        ]
    reasons = [
        f"model {model}: restore.yml key '{key}' is unknown" for key in settings if key not in RESTORE_MODEL_KEYS
    ]
    host = str(settings["host"]).strip()
    try:
        port = int(settings.get("port") or 1433)
    except (TypeError, ValueError):
        return [*reasons, f"model {model}: the restore server's port must be a number"]
    for source in sources:
        if same_server(host, port, source["host"], source["port"]):
            reasons.append(
                f"model {model}: the restore server {host},{port} is a server this host backs up (model"
                f" {source['model']}); restores and drills would import into production. Give them a"
                f" server of their own ({RESTORE_HOST_HINT})"
            )
            break
    previous = settings.get("previous_passphrases") or []
    if not isinstance(previous, list) or not all(
        isinstance(name, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) for name in previous
    ):
        reasons.append(f"model {model}: previous_passphrases must list .env variable names")
    for key in ("rpo_grace_seconds", "proven_within_days"):
        value = settings.get(key)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            reasons.append(f"model {model}: {key} must be a positive whole number")
    drill = viper_string(settings.get("drill_schedule"))
    return reasons + (_drill_reasons(model, body, drill, start) if drill else [])


def _coverage_reasons(coverage: Any) -> list[str]:
    if coverage is None:
        return []
    if not isinstance(coverage, dict):
        return ["restore.yml: coverage must be a mapping"]
    reasons = []
    schedule = viper_string(coverage.get("schedule"))
    if schedule:
        reasons += [
            f"{reason} (coverage schedule; Ansible: backup_config_coverage_schedule)"
            for reason in check_cron("coverage", schedule)
        ]
    ignore = coverage.get("ignore") or []
    if not isinstance(ignore, list) or not all(isinstance(name, str) for name in ignore):
        reasons.append("restore.yml: coverage.ignore must be a list of database names")
    return reasons


def restore_problems(
    document: Mapping[str, Any], restore_settings: Mapping[str, Any], now: datetime.datetime | None = None
) -> list[str]:
    """Why restore.yml cannot be used with this config; empty when fine."""
    models = restore_settings.get("models") if isinstance(restore_settings, Mapping) else None
    models = models if isinstance(models, dict) else {}
    sources = source_servers(document)
    start = now or datetime.datetime.now(local_zone())
    reasons: list[str] = []
    for model, body in (document.get("models") or {}).items():
        reasons += _model_reasons(model, body, models.get(str(model)), sources, start)
    coverage = restore_settings.get("coverage") if isinstance(restore_settings, Mapping) else None
    return reasons + _coverage_reasons(coverage)


def restore_config_problems(
    restore_text: str, gobackup_text: str, environ: Mapping[str, Any], sources: Mapping[str, str] | None = None
) -> list[str]:
    """Ansible filter: the reasons a rendered restore.yml cannot be used with
    the rendered gobackup.yml whose .env will hold `environ`."""
    environment = {str(key): "" if value is None else str(value) for key, value in environ.items()}
    document, reasons = check_text(str(gobackup_text), environment, "gobackup.yml")
    if reasons or not isinstance(document, dict):
        return []  # gobackup_config_problems names them
    try:
        settings = yaml.safe_load(go_expand(str(restore_text), lambda name: environment.get(name, ""))) or {}
    except yaml.YAMLError as error:
        return [f"restore.yml is not valid YAML: {yaml_problem(error)[0]}"]
    return name_sources(restore_problems(document, settings if isinstance(settings, dict) else {}), sources)
