"""The project's rules for a loaded GoBackup v3.1.1 configuration: what
GoBackup does not check itself, or gets wrong without a word (a misspelt
`corn:` disables a schedule, camelCase mssql keys are ignored, two models on
one bucket path overwrite each other, `encrypt_with` of an unknown type
uploads unencrypted, the web API is open beyond loopback, ...)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from sqlserver_backup.config_yaml import path_text, viper_string
from sqlserver_backup.go_gocron import EverySchedule, parse_cron
from sqlserver_backup.go_robfig_cron import ConstantDelaySchedule, CronError, SpecSchedule
from sqlserver_backup.go_time_duration import go_parse_duration
from sqlserver_backup.gobackup_env import PLACEHOLDER
from sqlserver_backup.notify_settings import check_notifiers

SCHEDULE_KEYS = {"enabled", "cron", "every", "at"}
MODEL_KEYS = {
    "description",
    "schedule",
    "databases",
    "storages",
    "default_storage",
    "compress_with",
    "encrypt_with",
    "split_with",
    "archive",
    "notifiers",
    "before_script",
    "after_script",
}
MSSQL_KEYS = {
    "type",
    "host",
    "port",
    "database",
    "username",
    "password",
    "trust_server_certificate",
    "all_databases",
    "skip_databases",
    "args",
    "before_script",
    "after_script",
    "on_exit",
}
# GoBackup v3 renamed these; the camelCase spellings are silently ignored upstream.
MSSQL_RENAMED_KEYS = {
    "trustServerCertificate": "trust_server_certificate",
    "allDatabases": "all_databases",
    "skipDatabases": "skip_databases",
}
# GoBackup joins these into one command line and splits it on whitespace.
MSSQL_SPLIT_FIELDS = ("host", "database", "username", "password")
S3_STORAGE_TYPES = {"minio", "s3"}
# compress_with.type values GoBackup v3.1.1 knows whose program the image
# ships (tar, gzip, zstd, xz-utils); GoBackup's default is tar.
COMPRESS_TYPES = {"tar", "tgz", "taz", "gz", "tar.gz", "zst", "tzst", "tar.zst", "xz", "txz", "tar.xz"}
LOOPBACK_NAMES = {"localhost"}


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def schedule_of(block: Mapping[str, Any]) -> SpecSchedule | ConstantDelaySchedule | EverySchedule | None:
    """What GoBackup schedules for a model's `schedule:` block: cron when set, else every."""
    cron = viper_string(block.get("cron"))
    if cron:
        return parse_cron(cron)
    return EverySchedule(go_parse_duration(viper_string(block.get("every"))))


def check_cron(model: str, cron: str) -> list[str]:
    """Whatever GoBackup's parser takes is accepted, exactly as GoBackup registers it."""
    try:
        parse_cron(cron)
    except CronError as error:
        return [f"model {model}: schedule.cron '{cron}' is refused by GoBackup's cron parser (robfig/cron v3): {error}"]
    return []


def _check_every(model: str, every: str) -> list[str]:
    try:
        if go_parse_duration(every) <= 0:
            return [f"model {model}: schedule.every '{every}' must be positive"]
    except ValueError:
        return [
            f"model {model}: schedule.every '{every}' is not a Go duration like 30m or 24h"
            " (GoBackup v3.1.1 refuses day units such as 1day); use cron for calendar times"
        ]
    return []


def check_schedule(model: str, schedule: dict[str, Any]) -> list[str]:
    reasons = [
        f"model {model}: schedule key '{key}' is unknown to GoBackup (known: {', '.join(sorted(SCHEDULE_KEYS))});"
        " GoBackup would silently disable the schedule"
        for key in schedule
        if key not in SCHEDULE_KEYS
    ]
    if schedule.get("enabled", True) is not True:
        reasons.append(
            f"model {model}: schedule.enabled: {viper_string(schedule.get('enabled'))} is ignored by GoBackup v3.1.1"
            " (any schedule block is scheduled); remove the schedule block to unschedule the model"
        )
    cron, every = viper_string(schedule.get("cron")), viper_string(schedule.get("every"))
    if not cron and not every:
        reasons.append(f"model {model}: schedule has neither cron nor every; GoBackup v3.1.1 fails to schedule it")
    if cron:
        reasons += check_cron(model, cron)
        if every:
            reasons.append(f"model {model}: schedule.every is ignored when schedule.cron is set; keep one")
    elif every:
        reasons += _check_every(model, every)
    if "at" in schedule:
        reasons.append(f"model {model}: schedule.at fails in GoBackup v3.1.1 (At() is not supported); use cron")
    return reasons


def check_mssql(model: str, key: str, database: dict[str, Any], origins: Mapping[str, str]) -> list[str]:
    where = f"model {model}: database {key}"
    reasons = []
    for name in database:
        if name in MSSQL_RENAMED_KEYS:
            reasons.append(f"{where}: key '{name}' is ignored by GoBackup v3; use '{MSSQL_RENAMED_KEYS[name]}'")
        elif name not in MSSQL_KEYS:
            reasons.append(f"{where}: key '{name}' is unknown to GoBackup's mssql driver")
    skip = database.get("skip_databases")
    if skip is not None and not (isinstance(skip, list) and all(isinstance(name, str) for name in skip)):
        reasons.append(f"{where}: skip_databases must be a list of database names")
    if not database.get("database") and database.get("all_databases") is not True:
        reasons.append(f"{where}: 'database' is empty (or set all_databases: true)")
    for field in MSSQL_SPLIT_FIELDS:
        value = database.get(field)
        if isinstance(value, str) and re.search(r"\s", value):
            origin = origins.get(path_text(("models", str(model), "databases", str(key), field)))
            reasons.append(
                f"{where}: {field}{f' (from {origin})' if origin else ''} contains whitespace,"
                " which GoBackup's sqlpackage command line splits apart"
            )
    return reasons


def check_storage(model: str, key: str, storage: dict[str, Any]) -> list[str]:
    where = f"model {model}: storage {key}"
    kind = storage.get("type")
    if kind not in S3_STORAGE_TYPES:
        return [] if kind else [f"{where}: 'type' is missing"]
    reasons = [f"{where}: '{field}' is empty" for field in ("bucket", "endpoint") if not storage.get(field)]
    endpoint = str(storage.get("endpoint") or "")
    if endpoint and urlsplit(endpoint).scheme not in {"http", "https"}:
        reasons.append(f"{where}: endpoint must be a full URL such as http://minio:9000")
    return reasons


def check_compress(model: str, compress: dict[str, Any]) -> list[str]:
    kind = viper_string(compress.get("type", "tar"))
    if kind not in COMPRESS_TYPES:
        return [
            f"model {model}: compress_with.type '{kind}' is not one GoBackup v3.1.1 knows with a program this image"
            f" ships (known: {', '.join(sorted(COMPRESS_TYPES))})"
        ]
    return []


def encryption_passphrase_variable(encrypt: Any) -> str | None:
    """The .env variable an `encrypt_with.password: env:<NAME>` names."""
    password = viper_string(encrypt.get("password")) if isinstance(encrypt, dict) else ""
    return password[len("env:") :] if password.startswith("env:") else None


def check_encrypt(model: str, encrypt: dict[str, Any], environment: Mapping[str, str]) -> list[str]:
    kind = viper_string(encrypt.get("type"))
    if kind != "openssl":
        # Any other type, GoBackup v3.1.1 uploads the archive unencrypted without a word.
        return [
            f"model {model}: encrypt_with.type '{kind}' is unknown to GoBackup v3.1.1, which would upload"
            " the archive unencrypted; use openssl"
        ]
    variable = encryption_passphrase_variable(encrypt)
    if variable is None:
        # GoBackup puts the password on openssl's command line and prints that command on failure.
        return [
            f"model {model}: encrypt_with.password must be env:<VARIABLE>, naming a .env entry that holds"
            " the passphrase (GoBackup would show a literal password in its command line and error messages)"
        ]
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", variable):
        return [f"model {model}: encrypt_with.password names '{variable}', which is not a variable name"]
    if not environment.get(variable):
        return [f"model {model}: encrypt_with.password names {variable}, which is not set (.env)"]
    if environment[variable].strip() == PLACEHOLDER:
        return [f"model {model}: {variable} still holds the placeholder {PLACEHOLDER}; set the real passphrase"]
    return []


def _check_storages(model: str, storages: dict[Any, Any], writers: dict[tuple[str, str, str], str]) -> list[str]:
    """Each storage, and no two models uploading to one bucket path (`writers`
    holds the models seen so far by upload target)."""
    reasons = []
    for key, storage in storages.items():
        if not isinstance(storage, dict):
            reasons.append(f"model {model}: storage {key} must be a mapping")
            continue
        reasons += check_storage(model, key, storage)
        if storage.get("type") not in S3_STORAGE_TYPES:
            continue
        target = (str(storage.get("endpoint")), str(storage.get("bucket")), str(storage.get("path") or "").strip("/"))
        if target in writers:
            reasons.append(
                f"models {writers[target]} and {model} upload to the same bucket path '{target[2]}';"
                " archives would overwrite each other and keep would prune the other's"
            )
        else:
            writers[target] = str(model)
    return reasons


def _check_model(
    model: str,
    body: dict[Any, Any],
    origins: Mapping[str, str],
    environment: Mapping[str, str],
    writers: dict[tuple[str, str, str], str],
) -> list[str]:
    reasons = [f"model {model}: key '{key}' is unknown to GoBackup" for key in body if key not in MODEL_KEYS]
    for key, check in (
        ("schedule", lambda block: check_schedule(model, block)),
        ("compress_with", lambda block: check_compress(model, block)),
        ("encrypt_with", lambda block: check_encrypt(model, block, environment)),
        ("notifiers", lambda block: check_notifiers(model, block)),
    ):
        block = body.get(key)
        if block is not None:
            reasons += check(block) if isinstance(block, dict) else [f"model {model}: {key} must be a mapping"]
    databases = body.get("databases") or {}
    storages = body.get("storages") or {}
    if not isinstance(databases, dict) or not isinstance(storages, dict):
        return [*reasons, f"model {model}: databases and storages must be mappings"]
    if not databases:
        reasons.append(f"model {model}: no databases")
    if not storages:
        reasons.append(f"model {model}: no storages")
    for key, database in databases.items():
        if str(key) != str(key).lower():
            reasons.append(
                f"model {model}: database key '{key}' has upper-case letters, which GoBackup lower-cases (viper);"
                f" use the model name as the key (the database name goes in 'database:')"
            )
        if isinstance(database, dict) and database.get("type") == "mssql":
            reasons += check_mssql(model, key, database, origins)
    return reasons + _check_storages(model, storages, writers)


def check_models(models: dict[Any, Any], origins: Mapping[str, str], environment: Mapping[str, str]) -> list[str]:
    reasons: list[str] = []
    writers: dict[tuple[str, str, str], str] = {}
    for model, body in models.items():
        if str(model) != str(model).lower():
            reasons.append(
                f"model {model}: GoBackup lower-cases model names (viper), so 'perform -m {model}' fails and its"
                f" metrics and health say '{str(model).lower()}'; name it '{str(model).lower()}'"
            )
        if not isinstance(body, dict):
            reasons.append(f"model {model}: must be a mapping")
            continue
        reasons += _check_model(model, body, origins, environment, writers)
    return reasons


def check_document(
    document: Any, origins: Mapping[str, str] | None = None, environment: Mapping[str, str] | None = None
) -> list[str]:
    """Structural rules GoBackup does not enforce itself, or enforces silently.
    `origins` maps a leaf (models.sales.databases.sales.password) to the
    variable it was expanded from, so reasons can name it; `environment` is
    what GoBackup's processes will see (for encrypt_with's env:<NAME>)."""
    if not isinstance(document, dict):
        return ["the configuration is not a YAML mapping"]
    models = document.get("models")
    if not isinstance(models, dict) or not models:
        return ["'models' is missing or empty"]
    reasons: list[str] = []
    workdir = viper_string(document.get("workdir"))
    if not workdir:
        reasons.append("workdir is not set: set it to the work volume, e.g. /tmp/gobackup")
    elif not workdir.startswith("/"):
        reasons.append("workdir must be an absolute path (GoBackup resolves it from its working directory)")
    web = document.get("web") or {}
    if not isinstance(web, dict):
        reasons.append("web must be a mapping")
    elif web.get("enabled", True) is not False and not is_loopback(str(web.get("host", "0.0.0.0"))):  # noqa: S104
        reasons.append(
            "web.host must be 127.0.0.1 (or web.enabled false): GoBackup's basic auth does not protect /api/*"
        )
    return reasons + check_models(models, origins or {}, environment or {})
