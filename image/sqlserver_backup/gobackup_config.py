"""Loading gobackup.yml as GoBackup v3.1.1 will read it, and checking it.

GoBackup loads `.env` beside its config (godotenv), expands the whole file
with os.ExpandEnv, which knows `${VAR}` and `$VAR` only, and reads it through
viper (keys lower-cased). check_text does the same with the Go-behaviour
ports, refuses what would reach GoBackup altered (unset or placeholder
variables, values YAML would retype, a `$` GoBackup would expand) and then
applies the project's rules (gobackup_rules, notify_settings). The container
runs it at start (`backup-config check`), the roles before they deploy
(gobackup_config_problems, an Ansible filter). Reasons name variables,
never their values."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from sqlserver_backup.config_errors import ConfigError, name_sources
from sqlserver_backup.config_yaml import (
    Reference,
    parse_yaml,
    path_text,
    reference_reasons,
    scalar_nodes,
    value_at,
    whole_references,
    yaml_problem,
)
from sqlserver_backup.go_godotenv import DotenvError, parse_dotenv_text
from sqlserver_backup.go_os_expand import GO_SPECIAL_NAMES, go_expand, referenced_names
from sqlserver_backup.gobackup_env import PLACEHOLDER, dotenv_line, environment_for
from sqlserver_backup.gobackup_rules import S3_STORAGE_TYPES, check_document
from sqlserver_backup.notify_settings import notify_problems


def _variable_reasons(text: str, environment: Mapping[str, str], name: str) -> list[str]:
    """Every `$` GoBackup will expand must name a variable that is set for real."""
    reasons = []
    for variable in referenced_names(text):
        if ":-" in variable or ":=" in variable:
            reasons.append(
                f"${{{variable}}}: GoBackup does not support defaults in references; set the variable instead"
            )
        elif variable in GO_SPECIAL_NAMES:
            reasons.append(
                f"a '${variable}' in the config would be expanded by GoBackup; keep literal '$' values in .env"
            )
        elif not environment.get(variable):
            reasons.append(
                f"{variable} is not set (referenced by {name}; GoBackup expands every '$' in it,"
                " so a literal '$' belongs in .env)"
            )
        elif environment[variable].strip() == PLACEHOLDER:
            reasons.append(f"{variable} still holds the placeholder {PLACEHOLDER}; set the real value")
    return reasons


def _expanded_yaml_reason(error: yaml.YAMLError, text: str, name: str) -> str:
    """Why the expanded text is not YAML. A parser's complaint may quote a
    character of an expanded secret: name the line's variables instead (a
    duplicate key is safe to name)."""
    problem, line = yaml_problem(error)
    names = referenced_names(text.split("\n")[line - 1]) if line else []
    if names and not isinstance(error, yaml.constructor.ConstructorError):
        detail = f"line {line} references {', '.join(names)}"
    else:
        detail = f"line {line}: {problem}" if line else problem
    return f"{name} is not valid YAML after expansion ({detail})"


def _leaf_reasons(
    document: Any, expanded: str, references: list[Reference], environment: Mapping[str, str]
) -> list[str]:
    """Each referenced leaf reached GoBackup as its variable's value; no
    literal leaf still holds the placeholder."""
    origins = {reference.where for reference in references}
    reasons = []
    for reference in references:
        leaf = value_at(document, reference.path)
        if not isinstance(leaf, str) or leaf != environment.get(reference.name):
            reasons.append(f"{reference.where}: the value of {reference.name} reaches GoBackup altered by YAML")
    for path, node in scalar_nodes(yaml.compose(expanded, Loader=yaml.SafeLoader)):
        if node.value.strip() == PLACEHOLDER and path_text(path) not in origins:
            reasons.append(f"{path_text(path)} still holds the placeholder {PLACEHOLDER}")
    return reasons


def check_text(text: str, environment: Mapping[str, str], name: str = "the config") -> tuple[Any, list[str]]:
    """Load a config's text as GoBackup would with this environment: (document, reasons)."""
    try:
        parse_yaml(text)
        references = whole_references(text)
    except yaml.YAMLError as error:
        problem, line = yaml_problem(error)
        return None, [f"{name} is not valid YAML{f' (line {line})' if line else ''}: {problem}"]
    reasons = _variable_reasons(text, environment, name)
    for reference in references:
        # Where the leaf lands once keys given as references are expanded too.
        reference.path = tuple(go_expand(step, lambda v: environment.get(v, "")) for step in reference.path)
        if environment.get(reference.name):
            reasons += reference_reasons(reference, environment[reference.name])
    if reasons:
        return None, reasons
    expanded = go_expand(text, lambda variable: environment.get(variable, ""))
    try:
        document = parse_yaml(expanded)
    except yaml.YAMLError as error:
        return None, [_expanded_yaml_reason(error, text, name)]
    reasons += _leaf_reasons(document, expanded, references, environment)
    origins = {reference.where: reference.name for reference in references}
    reasons += check_document(document, origins, environment)
    return document, reasons + (notify_problems(document, environment) if isinstance(document, dict) else [])


def load(config_path: Path, environ: Mapping[str, str]) -> tuple[Any, dict[str, str]]:
    """Load the config as GoBackup would; raise ConfigError naming every problem."""
    if not config_path.is_file():
        raise ConfigError([f"{config_path} does not exist"])
    environment = environment_for(config_path, environ)
    document, reasons = check_text(config_path.read_text(encoding="utf-8"), environment, str(config_path))
    if reasons:
        raise ConfigError(reasons)
    return document, environment


def load_lenient(config_path: Path, environ: Mapping[str, str]) -> Any:
    """Parse the config without checking it, unset variables expanding to ''."""
    environment = environment_for(config_path, environ)
    text = config_path.read_text(encoding="utf-8")
    return yaml.safe_load(go_expand(text, lambda name: environment.get(name, "")))


def gobackup_config_problems(
    config_text: str, environ: Mapping[str, Any], sources: Mapping[str, str] | None = None
) -> list[str]:
    """Ansible filter: the checker's reasons for a rendered config whose
    `.env` will hold `environ` (written single-quoted); empty when fine.
    `sources` maps a variable to the Ansible variable that sets it, named in
    each reason."""
    environment = {str(key): "" if value is None else str(value) for key, value in environ.items()}
    reasons = []
    for name, value in environment.items():
        try:
            written = parse_dotenv_text(dotenv_line(name, value) + "\n").get(name)
        except DotenvError:
            written = None
        if written != value:
            reasons.append(f"{name} cannot be written to .env single-quoted without godotenv changing it")
    reasons += check_text(str(config_text), environment, "gobackup.yml")[1]
    return name_sources(reasons, sources)


# --- Queries of a loaded config, for the entrypoint and the other tools ----------


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
    """(host, port) of GoBackup's web server; None when it is off."""
    web = document.get("web") or {}
    if web.get("enabled", True) is False:
        return None
    return str(web.get("host", "127.0.0.1")), int(web.get("port", 2703))
