"""A model of the active GoBackup configuration as the restore tools read
it: the configuration in use, the model's archives (its S3 storage and what
opens them) and source database, its restore server and settings
(restore.yml), and a work directory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlserver_backup import restore_rules, state_files
from sqlserver_backup.config_errors import ConfigError
from sqlserver_backup.database import Database
from sqlserver_backup.errors import RestoreError
from sqlserver_backup.s3 import S3Storage, s3_storage

DEFAULT_CONFIG = Path("/etc/gobackup/gobackup.yml")


@dataclass(frozen=True)
class ModelArchives:
    """A model's archives: the storage they are in, and what opens them (the
    model's encrypt_with, the passphrases in the environment, restore.yml's
    previous ones)."""

    model: str
    body: Mapping[str, Any]
    storage: S3Storage
    environment: Mapping[str, str]
    settings: Mapping[str, Any]


def model_archives(
    config: Path, document: Mapping[str, Any], environment: Mapping[str, str], model: str, timeout: float
) -> tuple[ModelArchives, Database]:
    """The model's archives and its source database (see model_parts)."""
    storage, source = model_parts(document, model, timeout)
    settings = restore_settings(config, environment, model)
    return ModelArchives(model, document["models"][model], storage, environment, settings), source


def active_config(named: Path | None) -> Path:
    active = state_files.ACTIVE_CONFIG
    return named or (Path(active.read_text().strip()) if active.is_file() else DEFAULT_CONFIG)


def chosen_models(document: Mapping[str, Any], named: list[str] | None) -> list[str]:
    """The models named (every model when none is); ConfigError naming any
    the configuration does not have."""
    known = sorted(document["models"])
    unknown = sorted(set(named or []) - set(known))
    if unknown:
        raise ConfigError([f"no model {', '.join(unknown)} (models: {', '.join(known)})"])
    return list(named or known)


def work_directory(document: Mapping[str, Any], purpose: str) -> Path:
    workdir = Path(document.get("workdir") or "/tmp/gobackup") / f"{purpose}-{os.getpid()}"  # noqa: S108
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


def model_parts(document: Mapping[str, Any], model: str, timeout: float) -> tuple[S3Storage, Database]:
    """The model's S3 storage and its source database (for an all_databases
    model, its server with an empty database name)."""
    models = document["models"]
    if model not in models:
        raise RestoreError(f"model {model} is not in the configuration (models: {', '.join(sorted(models))})")
    body = models[model]
    sources = [source for source in restore_rules.source_servers(document) if source["model"] == model]
    storages = [value for value in (body.get("storages") or {}).values() if value.get("type") in {"minio", "s3"}]
    if len(sources) != 1 or not storages:
        raise RestoreError(f"model {model} needs exactly one mssql database and an S3 storage to restore from")
    source = sources[0]
    return (
        s3_storage(storages[0], timeout),
        Database(
            host=source["host"],
            port=source["port"],
            name="" if source["all_databases"] else source["database"],
            username=source["username"],
            password=source["password"],
            trust=source["trust_server_certificate"],
            args=str((next(iter(body["databases"].values())) or {}).get("args") or ""),
        ),
    )


def restore_settings(config: Path, environment: Mapping[str, str], model: str) -> Mapping[str, Any]:
    settings = restore_rules.load_restore_settings(config, environment).get("models") or {}
    return settings.get(model) or {}


def restore_server(
    config: Path, document: Mapping[str, Any], environment: Mapping[str, str], model: str, source: Database
) -> Database:
    """Where restores and drills of a model import: its restore server, which
    must be set and must not be a server this host backs up (there is no
    fallback to the source: --into-source is the explicit way there)."""
    all_settings = restore_rules.load_restore_settings(config, environment)
    problems = [
        reason
        for reason in restore_rules.restore_problems(document, all_settings)
        if reason.startswith(f"model {model}: ") and "drill_schedule" not in reason
    ]
    if problems:
        raise RestoreError("; ".join(problems))
    settings = (all_settings.get("models") or {})[model]
    return Database(
        host=str(settings["host"]),
        port=int(settings.get("port") or 1433),
        name=source.name,
        username=str(settings.get("username") or source.username),
        password=str(settings.get("password") or source.password),
        trust=str(settings.get("trust_server_certificate", source.trust)).lower() == "true",
        args=source.args,
    )
