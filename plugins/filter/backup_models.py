"""The backup_config role's models and .env, built from the inventory, as Ansible filters.

Each entry of backup_config_databases becomes one model: every optional key
filled in from the role's defaults, and the names of the .env variables that
carry its secrets. From the models the role writes gobackup.yml, restore.yml
and .env, and names, in each message, the Ansible variable behind a .env
variable, never its value. The values are converted as the role's Jinja did
(Ansible's `bool` and `to_json`, Jinja's `int` and `string`), so the rendered files stay
the same byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ansible.plugins.filter.core import to_bool, to_json
from jinja2.filters import do_int

# The relay's setting that switches each alert channel on, in the order the
# notifiers are written.
CHANNEL_SWITCHES = {"webhook": "NOTIFY_WEBHOOK_URL", "slack": "NOTIFY_SLACK_URL", "mail": "NOTIFY_SMTP_HOST"}


def _variable_suffix(name: Any) -> str:
    """The model name as the end of an environment variable's name."""
    return str(name).upper().replace("-", "_")


def _description(entry: Mapping[str, Any], all_databases: bool) -> Any:
    what = "Every database" if all_databases else f"SQL Server database {entry.get('database', '')}"
    return entry.get("description", f"{what} on {entry.get('host', '')}")


def _restore_server(entry: Mapping[str, Any], defaults: Mapping[str, Any], suffix: str) -> dict[str, Any]:
    """Where the model's restores and drills import. An empty restore login
    falls back to the role's, then to the export's."""
    return {
        "host": str(entry.get("restore_host", defaults["restore_host"])).strip(),
        "port": do_int(entry.get("restore_port", defaults["restore_port"])),
        "username": entry.get("restore_username")
        or defaults["restore_username"]
        or entry.get("username", defaults["username"]),
        "password": entry.get("restore_password") or defaults["restore_password"] or entry.get("password"),
        "password_variable": f"MSSQL_RESTORE_PASSWORD_{suffix}",
        "trust_server_certificate": to_bool(
            entry.get("restore_trust_server_certificate", defaults["restore_trust_server_certificate"])
        ),
    }


def _model(entry: Mapping[str, Any], defaults: Mapping[str, Any], host_path: str) -> dict[str, Any]:
    def setting(key: str) -> Any:
        return entry.get(key, defaults[key])

    suffix = _variable_suffix(entry.get("name", ""))
    all_databases = to_bool(entry.get("all_databases", False))
    previous = [str(passphrase) for passphrase in setting("encryption_previous_passphrases")]
    return {
        "name": entry["name"],
        "description": _description(entry, all_databases),
        "database": entry.get("database", ""),
        "all_databases": all_databases,
        "skip_databases": [str(name) for name in entry.get("skip_databases", [])],
        "host": entry["host"],
        "port": do_int(setting("port")),
        "username": setting("username"),
        "password": entry["password"],
        "password_variable": f"MSSQL_PASSWORD_{suffix}",
        "trust_server_certificate": to_bool(setting("trust_server_certificate")),
        "sqlpackage_args": setting("sqlpackage_args"),
        "schedule": setting("schedule"),
        "keep": do_int(setting("keep")),
        "path": f"{host_path}/{entry['name']}",
        "encryption_passphrase": str(setting("encryption_passphrase")),
        "encryption_variable": f"ENCRYPTION_PASSPHRASE_{suffix}",
        "previous_passphrases": previous,
        "previous_passphrase_variables": [
            f"ENCRYPTION_PASSPHRASE_{suffix}_PREVIOUS_{number}" for number in range(1, len(previous) + 1)
        ],
        "drill_schedule": str(setting("drill_schedule")),
        "rpo_grace_seconds": do_int(setting("rpo_grace_seconds")),
        "proven_within_days": do_int(setting("proven_within_days")),
        "restore": _restore_server(entry, defaults, suffix),
    }


def backup_models(databases: Sequence[Mapping[str, Any]], defaults: Mapping[str, Any], host_path: str) -> list[dict]:
    """The database entries with every optional key filled in from `defaults`
    (the role's value for each entry key), each uploading under
    `<host_path>/<name>`. The model name is also the database key in
    gobackup.yml: GoBackup lower-cases keys, so nothing may depend on the
    database name's case or characters."""
    return [_model(entry, defaults, host_path) for entry in databases]


def backup_model_name_problems(models: Sequence[Mapping[str, Any]]) -> list[str]:
    """Models whose names give them the same .env variables: `-` and `_` both
    become `_` in a variable's name, so `sales-eu` and `sales_eu` would share
    one password and one passphrase, whichever .env wrote last. `models` as
    the backup_models filter builds them."""
    names_by_variables: dict[tuple[str, str], list[str]] = {}
    for model in models:
        variables = (model["password_variable"], model["encryption_variable"])
        names_by_variables.setdefault(variables, []).append(str(model["name"]))
    return [
        f"backup_config_databases: the models {' and '.join(names)} would share the .env variables {password}"
        f" and {passphrase} (- and _ both become _ there),"
        " so one would use the other's password and passphrase: rename one of them"
        for (password, passphrase), names in names_by_variables.items()
        if len(names) > 1
    ]


def backup_env(fixed: Mapping[str, Any], models: Sequence[Mapping[str, Any]], notify: Mapping[str, Any]) -> dict:
    """What .env holds: the `fixed` entries, each model's passwords and
    passphrases (the current one only when encryption is on), then the
    relay's settings."""
    env = dict(fixed)
    for model in models:
        env[model["password_variable"]] = model["password"]
        env[model["restore"]["password_variable"]] = model["restore"]["password"]
        if model["encryption_passphrase"]:
            env[model["encryption_variable"]] = model["encryption_passphrase"]
        env.update(zip(model["previous_passphrase_variables"], model["previous_passphrases"], strict=True))
    env.update(notify)
    return env


def backup_env_sources(
    fixed: Mapping[str, str],
    models: Sequence[Mapping[str, Any]],
    notify: Mapping[str, Any],
    notify_sources: Mapping[str, str],
) -> dict[str, str]:
    """The Ansible variable that sets each .env variable, for messages that
    name the variable, never the value."""
    sources = dict(fixed)
    for index, model in enumerate(models):
        entry = f"backup_config_databases[{index}] ({model['name']})"
        sources[model["password_variable"]] = f"{entry}.password"
        sources[model["restore"]["password_variable"]] = f"{entry}.restore_password or backup_config_restore_password"
        sources[model["encryption_variable"]] = f"{entry}.encryption_passphrase or backup_config_encryption_passphrase"
        for position, variable in enumerate(model["previous_passphrase_variables"]):
            sources[variable] = (
                f"{entry}.encryption_previous_passphrases[{position}]"
                f" or backup_config_encryption_previous_passphrases[{position}]"
            )
    sources.update((name, notify_sources[name]) for name in notify)
    return sources


def backup_notify_env(settings: Mapping[str, Any]) -> dict[str, str]:
    """The relay's settings (NOTIFY_*) of the channels that are on, from the
    role's values by the relay's name for each: a channel is on when its
    switch is set; headers only with the webhook, the SMTP login only when
    either half is set."""
    env: dict[str, Any] = {}
    if len(settings["NOTIFY_WEBHOOK_URL"]) > 0:
        env["NOTIFY_WEBHOOK_URL"] = settings["NOTIFY_WEBHOOK_URL"]
        if len(settings["NOTIFY_WEBHOOK_HEADERS"]) > 0:
            env["NOTIFY_WEBHOOK_HEADERS"] = to_json(settings["NOTIFY_WEBHOOK_HEADERS"])
    if len(settings["NOTIFY_SLACK_URL"]) > 0:
        env["NOTIFY_SLACK_URL"] = settings["NOTIFY_SLACK_URL"]
    if len(settings["NOTIFY_SMTP_HOST"]) > 0:
        env["NOTIFY_SMTP_HOST"] = settings["NOTIFY_SMTP_HOST"]
        env["NOTIFY_SMTP_PORT"] = str(settings["NOTIFY_SMTP_PORT"])
        env["NOTIFY_SMTP_SECURITY"] = settings["NOTIFY_SMTP_SECURITY"]
        env["NOTIFY_SMTP_FROM"] = settings["NOTIFY_SMTP_FROM"]
        env["NOTIFY_SMTP_TO"] = ",".join(str(address) for address in settings["NOTIFY_SMTP_TO"])
        if len(settings["NOTIFY_SMTP_USERNAME"]) > 0 or len(settings["NOTIFY_SMTP_PASSWORD"]) > 0:
            env["NOTIFY_SMTP_USERNAME"] = settings["NOTIFY_SMTP_USERNAME"]
            env["NOTIFY_SMTP_PASSWORD"] = settings["NOTIFY_SMTP_PASSWORD"]
    return env


def backup_notify_channels(notify_env: Mapping[str, Any]) -> list[str]:
    """The channels that are on, each one GoBackup notifier posting to the relay."""
    return [channel for channel, switch in CHANNEL_SWITCHES.items() if switch in notify_env]


class FilterModule:
    """Ansible filters of the backup_config role: its models and .env."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "backup_models": backup_models,
            "backup_model_name_problems": backup_model_name_problems,
            "backup_env": backup_env,
            "backup_env_sources": backup_env_sources,
            "backup_notify_env": backup_notify_env,
            "backup_notify_channels": backup_notify_channels,
        }
