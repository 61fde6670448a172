#!/usr/bin/env python3
"""Render, check and inspect a GoBackup configuration inside the backup image.

GoBackup loads `.env` beside its config file, then expands the whole file with
Go's os.ExpandEnv, which knows `${VAR}` and `$VAR` only. This tool adds the
`${VAR:-default}` form for the bundled template (resolved before GoBackup reads
the file) and checks a configuration the way GoBackup will read it, so mistakes
stop the container at start with a reason instead of silently breaking backups.

It never prints a value taken from the environment: messages name variables.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

# docker-entrypoint records here which config it validated and GoBackup runs
# with, for the tools started later with `docker exec`.
STATE_DIR = Path(os.environ.get("GOBACKUP_STATE_DIR", os.environ.get("HOME", "/var/lib/gobackup")))
ACTIVE_CONFIG = STATE_DIR / "active-config"

DEFAULTED_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}]*)\}")
WHOLE_REFERENCE = re.compile(r"^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))$")
GO_SPECIAL_NAMES = set("*#$@!?-0123456789")

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
CRON_FIELD = re.compile(r"^(\*|(\d+)(-(\d+))?)(/\d+)?$|^[A-Za-z]{3}(-[A-Za-z]{3})?$")
CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
CRON_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# GoBackup v3.1.1 parses `every` as a Go duration only ("1day" is rejected).
EVERY = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
LOOPBACK_NAMES = {"localhost"}


class ConfigError(Exception):
    """A configuration problem, reported as one line per reason."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("\n".join(reasons))
        self.reasons = reasons


def _go_shell_name(text: str) -> tuple[str, int]:
    """Return (name, width) like Go's os.getShellName for the text after a `$`."""
    if text[0] == "{":
        if len(text) > 2 and text[1] in GO_SPECIAL_NAMES and text[2] == "}":
            return text[1:2], 3
        for index in range(1, len(text)):
            if text[index] == "}":
                if index == 1:
                    return "", 2
                return text[1:index], index + 1
        return "", 1
    if text[0] in GO_SPECIAL_NAMES:
        return text[0:1], 1
    width = 0
    while width < len(text) and (text[width] == "_" or (text[width].isascii() and text[width].isalnum())):
        width += 1
    return text[:width], width


def go_expand(text: str, mapping: Callable[[str], str]) -> str:
    """Expand like Go's os.Expand, the function GoBackup applies to its config."""
    out: list[str] = []
    start = 0
    index = 0
    while index < len(text):
        if text[index] == "$" and index + 1 < len(text):
            out.append(text[start:index])
            name, width = _go_shell_name(text[index + 1 :])
            if name == "" and width > 0:
                pass  # invalid syntax: Go eats the characters
            elif name == "":
                out.append("$")
            else:
                out.append(mapping(name))
            index += width
            start = index + 1
        index += 1
    out.append(text[start:])
    return "".join(out)


def referenced_names(text: str) -> list[str]:
    """Names GoBackup will look up in the environment, in order of appearance."""
    names: list[str] = []

    def collect(name: str) -> str:
        if name not in names:
            names.append(name)
        return ""

    go_expand(text, collect)
    return names


def render_defaults(template: str, environ: Mapping[str, str]) -> str:
    """Resolve `${VAR:-default}`; plain `${VAR}` is left for GoBackup to expand."""
    return DEFAULTED_REFERENCE.sub(lambda m: environ.get(m.group(1)) or m.group(2), template)


def parse_dotenv(path: Path) -> dict[str, str]:
    """Read the subset of godotenv syntax the project writes: KEY=VALUE, quoted or not."""
    values: dict[str, str] = {}
    for number, raw_line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, separator, value = line.partition("=")
        key = key.strip()
        if not separator or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ConfigError([f"{path}:{number}: not a KEY=VALUE line"])
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def resolve_file_env(environ: Mapping[str, str]) -> dict[str, str]:
    """VAR from VAR_FILE, as docker-entrypoint does, for tools started later
    with `docker exec` (they do not inherit the entrypoint's environment)."""
    resolved = dict(environ)
    for name, path in environ.items():
        base = name.removesuffix("_FILE")
        if name.endswith("_FILE") and base and not environ.get(base) and Path(path).is_file():
            resolved[base] = Path(path).read_text(encoding="utf-8").rstrip("\n")
    return resolved


def environment_for(config_path: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment GoBackup will see: .env beside the config does not override."""
    merged = dict(environ)
    dotenv = config_path.parent / ".env"
    if dotenv.is_file():
        for key, value in parse_dotenv(dotenv).items():
            merged.setdefault(key, value)
    return merged


def _survives_yaml(value: str) -> bool:
    """True when `key: <value>` parses back to exactly value (or a number/bool)."""
    try:
        parsed = yaml.safe_load(f"key: {value}")
    except yaml.YAMLError:
        return False
    got = parsed.get("key") if isinstance(parsed, dict) else None
    return got is not None and not isinstance(got, dict | list) and str(got).lower() == value.lower()


def _check_mangled_values(raw_text: str, environ: Mapping[str, str]) -> list[str]:
    """A value that is a whole `${VAR}` must reach GoBackup unchanged after
    expansion and YAML parsing; names the variable, never its value."""
    try:
        raw = yaml.safe_load(raw_text)
    except yaml.YAMLError:
        return []  # not YAML before expansion either: the parse error says why
    reasons = []
    for where, value in _string_leaves(raw, ""):
        match = WHOLE_REFERENCE.match(value)
        if match and not _survives_yaml(environ.get(match.group(1) or match.group(2), "")):
            name = match.group(1) or match.group(2)
            reasons.append(
                f"{where}: the value of {name} would reach GoBackup altered by YAML "
                "(it contains characters such as ': ', ' #', quotes or a leading '&', '*', '!')"
            )
    return reasons


def _string_leaves(node: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _string_leaves(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for position, item in enumerate(node):
            yield from _string_leaves(item, f"{where}[{position}]")
    elif isinstance(node, str):
        yield where, node


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _cron_field_ok(field: str, bounds: tuple[int, int]) -> bool:
    for part in field.split(","):
        match = CRON_FIELD.match(part)
        if not match:
            return False
        numbers = [int(number) for number in (match.group(2), match.group(4)) if number is not None]
        if any(not bounds[0] <= number <= bounds[1] for number in numbers):
            return False
    return True


def cron_fields(cron: str) -> list[set[int]]:
    """The five field sets of a cron expression (already checked)."""
    cron = CRON_ALIASES.get(cron.strip(), cron)
    names = {name: number for number, name in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])} | {
        name: number
        for number, name in enumerate(
            ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1
        )
    }
    fields = []
    for field, (low, high) in zip(cron.split(), CRON_RANGES, strict=True):
        values: set[int] = set()
        for part in field.split(","):
            span, _, step = part.partition("/")
            if span == "*":
                first, last = low, high
            else:
                start, _, end = span.partition("-")
                first = names.get(start.lower(), None) if not start.isdigit() else int(start)
                last = (names.get(end.lower()) if not end.isdigit() else int(end)) if end else (high if step else first)
            values.update(range(int(first), int(last) + 1, int(step or 1)))
        fields.append(values)
    if 7 in fields[4]:
        fields[4].add(0)
    return fields


def cron_previous(cron: str, now: datetime.datetime) -> datetime.datetime | None:
    """The last time at or before now that the cron expression fired (local time)."""
    minute, hour, day, month, weekday = cron_fields(cron)
    candidate = now.replace(second=0, microsecond=0)
    day_any, weekday_any = len(day) == 31, len(weekday) >= 7
    for _ in range(400 * 24 * 60):
        day_ok = candidate.day in day
        weekday_ok = (candidate.isoweekday() % 7) in weekday
        matches_day = day_ok and weekday_ok if day_any or weekday_any else day_ok or weekday_ok
        if candidate.minute in minute and candidate.hour in hour and candidate.month in month and matches_day:
            return candidate
        candidate -= datetime.timedelta(minutes=1)
    return None


def _check_cron(model: str, cron: str) -> list[str]:
    cron = cron.strip()
    if cron in CRON_ALIASES or cron.startswith("@every "):
        return []
    fields = cron.split()
    if len(fields) != 5:
        return [f"model {model}: schedule.cron '{cron}' needs 5 fields (minute hour day month weekday)"]
    bad = [field for field, bounds in zip(fields, CRON_RANGES, strict=True) if not _cron_field_ok(field, bounds)]
    return [f"model {model}: schedule.cron '{cron}' has invalid field(s): {' '.join(bad)}"] if bad else []


def _check_schedule(model: str, schedule: Any) -> list[str]:
    if schedule is None:
        return []
    if not isinstance(schedule, dict):
        return [f"model {model}: schedule must be a mapping"]
    reasons = [
        f"model {model}: schedule key '{key}' is unknown to GoBackup (known: {', '.join(sorted(SCHEDULE_KEYS))});"
        " GoBackup would silently disable the schedule"
        for key in schedule
        if key not in SCHEDULE_KEYS
    ]
    if schedule.get("enabled") is True and "cron" not in schedule and "every" not in schedule:
        reasons.append(f"model {model}: schedule is enabled but has neither cron nor every")
    if "cron" in schedule:
        reasons += _check_cron(model, str(schedule["cron"]))
    if "every" in schedule and not EVERY.match(str(schedule["every"])):
        reasons.append(f"model {model}: schedule.every '{schedule['every']}' is not a Go duration like 30m or 24h")
    if "at" in schedule:
        reasons.append(f"model {model}: schedule.at fails in GoBackup v3.1.1 (At() is not supported); use cron")
    return reasons


def _check_mssql(model: str, key: str, database: dict[str, Any]) -> list[str]:
    where = f"model {model}: database {key}"
    reasons = []
    for name in database:
        if name in MSSQL_RENAMED_KEYS:
            reasons.append(f"{where}: key '{name}' is ignored by GoBackup v3; use '{MSSQL_RENAMED_KEYS[name]}'")
        elif name not in MSSQL_KEYS:
            reasons.append(f"{where}: key '{name}' is unknown to GoBackup's mssql driver")
    if database.get("all_databases") is True:
        reasons.append(f"{where}: all_databases needs sqlcmd, which this image does not ship; list databases as models")
    if not database.get("database") and database.get("all_databases") is not True:
        reasons.append(f"{where}: 'database' is empty")
    for field in MSSQL_SPLIT_FIELDS:
        value = database.get(field)
        if isinstance(value, str) and re.search(r"\s", value):
            reasons.append(
                f"{where}: {field} contains whitespace, which GoBackup's sqlpackage command line splits apart"
            )
    return reasons


def _check_storage(model: str, key: str, storage: dict[str, Any]) -> list[str]:
    where = f"model {model}: storage {key}"
    kind = storage.get("type")
    if kind not in S3_STORAGE_TYPES:
        return [] if kind else [f"{where}: 'type' is missing"]
    reasons = [f"{where}: '{field}' is empty" for field in ("bucket", "endpoint") if not storage.get(field)]
    endpoint = str(storage.get("endpoint") or "")
    if endpoint and urlsplit(endpoint).scheme not in {"http", "https"}:
        reasons.append(f"{where}: endpoint must be a full URL such as http://minio:9000")
    return reasons


def _upload_target(storage: dict[str, Any]) -> tuple[str, str, str] | None:
    if storage.get("type") not in S3_STORAGE_TYPES:
        return None
    return (str(storage.get("endpoint")), str(storage.get("bucket")), str(storage.get("path") or "").strip("/"))


def check_document(document: Any) -> list[str]:
    """Structural rules GoBackup does not enforce itself, or enforces silently."""
    if not isinstance(document, dict):
        return ["the configuration is not a YAML mapping"]
    models = document.get("models")
    if not isinstance(models, dict) or not models:
        return ["'models' is missing or empty"]
    reasons: list[str] = []
    web = document.get("web") or {}
    if web.get("enabled", True) is not False and not _is_loopback(str(web.get("host", "0.0.0.0"))):  # noqa: S104
        reasons.append(
            "web.host must be 127.0.0.1 (or web.enabled false): GoBackup's basic auth does not protect /api/*"
        )
    writers: dict[tuple[str, str, str], str] = {}
    for model, body in models.items():
        if not isinstance(body, dict):
            reasons.append(f"model {model}: must be a mapping")
            continue
        reasons += [f"model {model}: key '{key}' is unknown to GoBackup" for key in body if key not in MODEL_KEYS]
        reasons += _check_schedule(model, body.get("schedule"))
        databases = body.get("databases") or {}
        storages = body.get("storages") or {}
        if not databases:
            reasons.append(f"model {model}: no databases")
        if not storages:
            reasons.append(f"model {model}: no storages")
        for key, database in databases.items():
            if isinstance(database, dict) and database.get("type") == "mssql":
                reasons += _check_mssql(model, key, database)
        for key, storage in storages.items():
            if not isinstance(storage, dict):
                reasons.append(f"model {model}: storage {key} must be a mapping")
                continue
            reasons += _check_storage(model, key, storage)
            target = _upload_target(storage)
            if target in writers:
                reasons.append(
                    f"models {writers[target]} and {model} upload to the same bucket path '{target[2]}';"
                    " archives would overwrite each other and keep would prune the other's"
                )
            elif target:
                writers[target] = str(model)
    return reasons


def load(config_path: Path, environ: Mapping[str, str]) -> tuple[Any, dict[str, str]]:
    """Load the config as GoBackup would; raise ConfigError naming every problem."""
    if not config_path.is_file():
        raise ConfigError([f"{config_path} does not exist"])
    environment = environment_for(config_path, environ)
    text = config_path.read_text(encoding="utf-8")
    reasons = []
    for name in referenced_names(text):
        if ":-" in name or ":=" in name:
            reasons.append(f"${{{name}}}: GoBackup does not support defaults in references; set the variable instead")
        elif name in GO_SPECIAL_NAMES:
            reasons.append(f"a '${name}' in the config would be expanded by GoBackup; keep literal '$' values in .env")
        elif not environment.get(name):
            reasons.append(
                f"{name} is not set (referenced by {config_path.name}; GoBackup expands every '$' in it,"
                " so a literal '$' belongs in .env)"
            )
    if reasons:
        raise ConfigError(reasons)
    mangled = _check_mangled_values(text, environment)
    if mangled:
        raise ConfigError(mangled)
    expanded_text = go_expand(text, lambda name: environment.get(name, ""))
    try:
        document = yaml.safe_load(expanded_text)
    except yaml.YAMLError as error:
        raise ConfigError([f"{config_path} is not valid YAML after expansion: {error}"]) from None
    reasons = check_document(document)
    if reasons:
        raise ConfigError(reasons)
    return document, environment


def load_lenient(config_path: Path, environ: Mapping[str, str]) -> Any:
    """Parse the config without checking it, unset variables expanding to ''."""
    environment = environment_for(config_path, environ)
    text = config_path.read_text(encoding="utf-8")
    return yaml.safe_load(go_expand(text, lambda name: environment.get(name, "")))


def endpoints(document: Mapping[str, Any]) -> Iterator[tuple[str, str, str, int]]:
    """(what, model, host, port) for every SQL Server and S3 endpoint the config uses."""
    for model, body in document["models"].items():
        for key, database in (body.get("databases") or {}).items():
            if database.get("type") == "mssql":
                yield (
                    f"SQL Server {key}",
                    model,
                    str(database.get("host", "127.0.0.1")),
                    int(database.get("port", 1433)),
                )
        for key, storage in (body.get("storages") or {}).items():
            if storage.get("type") in S3_STORAGE_TYPES:
                url = urlsplit(str(storage["endpoint"]))
                port = url.port or (443 if url.scheme == "https" else 80)
                yield f"storage {key} ({storage['bucket']})", model, url.hostname or "", port


def storages(document: Mapping[str, Any], model: str) -> list[str]:
    """'<endpoint> bucket <bucket>' (or the local path) of every storage of a model."""
    described = []
    for key, storage in (document["models"][model].get("storages") or {}).items():
        if storage.get("type") in S3_STORAGE_TYPES:
            described.append(f"{key}: {storage.get('endpoint')} bucket {storage.get('bucket')}")
        else:
            described.append(f"{key}: {storage.get('type')} {storage.get('path', '')}".rstrip())
    return described


def web_address(document: Mapping[str, Any]) -> tuple[str, int] | None:
    web = document.get("web") or {}
    if web.get("enabled", True) is False:
        return None
    return str(web.get("host", "127.0.0.1")), int(web.get("port", 2703))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    render = commands.add_parser("render", help="resolve ${VAR:-default} in a template")
    render.add_argument("template", type=Path)
    render.add_argument("output", type=Path)
    check = commands.add_parser("check", help="check a config as GoBackup will read it")
    check.add_argument("config", type=Path)
    listing = commands.add_parser("endpoints", help="print what host:port each model connects to")
    listing.add_argument("config", type=Path)
    described = commands.add_parser("storages", help="print where each model uploads")
    described.add_argument("config", type=Path)
    arguments = parser.parse_args(argv)

    if arguments.command == "render":
        rendered = render_defaults(arguments.template.read_text(encoding="utf-8"), os.environ)
        arguments.output.parent.mkdir(parents=True, exist_ok=True)
        arguments.output.write_text(rendered, encoding="utf-8")
        arguments.output.chmod(0o600)
        return 0
    try:
        document, _ = load(arguments.config, os.environ)
    except ConfigError as error:
        for reason in error.reasons:
            print(f"config error: {reason}", file=sys.stderr)
        return 1
    if arguments.command == "endpoints":
        for what, model, host, port in endpoints(document):
            print(f"{host}\t{port}\t{model}\t{what}")
    elif arguments.command == "storages":
        for model in document["models"]:
            print(f"model {model} uploads to {'; '.join(storages(document, model))}")
    else:
        print(f"config ok: {len(document['models'])} model(s) in {arguments.config}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
