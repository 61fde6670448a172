"""Render, check and inspect a GoBackup configuration inside the backup image.

The `backup-config` console script, which docker-entrypoint calls before it
starts GoBackup (check, settings, render, secret-variables, ca-bundle, ...)
and again when it stops (workdir, running-jobs, clean-temp). Problems go to
stderr, one line each, and exit 1; no value from the environment is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from sqlserver_backup.config_errors import ConfigError
from sqlserver_backup.config_yaml import yaml_problem
from sqlserver_backup.container_settings import container_settings_problems
from sqlserver_backup.environment_names import ignored_variable_problems
from sqlserver_backup.gobackup_config import endpoints, load, load_lenient, storages
from sqlserver_backup.gobackup_env import SECRET_VARIABLES, ca_bundle, render_defaults
from sqlserver_backup.notify_settings import relay_channels
from sqlserver_backup.temp_paths import clean_temp, running_jobs, workdir
from sqlserver_backup.workers import scheduler_addresses, worker_configs, worker_problems

# Subcommands that read the config without the full check: they run at stop
# time too, when only the workdir matters.
LENIENT_COMMANDS = ("workdir", "running-jobs", "clean-temp", "notify-port")


def _error(reasons: list[str], prefix: str = "config error") -> int:
    for reason in reasons:
        print(f"{prefix}: {reason}", file=sys.stderr)
    return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    render = commands.add_parser("render", help="resolve ${VAR:-default} in a template")
    render.add_argument("template", type=Path)
    render.add_argument("output", type=Path)
    for name, text in (
        ("check", "check a config as GoBackup will read it"),
        ("endpoints", "print host<TAB>port<TAB>model<TAB>what for each server the config connects to"),
        ("storages", "print where each model uploads"),
        ("workdir", "print the workdir GoBackup will use"),
        ("notify-port", "print the port of the notification relay (nothing when no notifier uses it)"),
        ("running-jobs", "print one model per line for every GoBackup run in progress"),
        ("clean-temp", "remove the temp dirs a killed run left; print path<TAB>models per removed dir"),
    ):
        commands.add_parser(name, help=text).add_argument("config", type=Path)
    commands.add_parser(
        "settings", help="check the container's own settings (RUN_MODE, METRICS_PORT, ...) against a config"
    ).add_argument("config", type=Path)
    commands.add_parser("secret-variables", help="print the variables that may come from <NAME>_FILE")
    commands.add_parser("ca-bundle", help="write the CA bundle with EXTRA_CA_CERTS and print its path")
    return parser


def _render(template: Path, output: Path) -> int:
    rendered = render_defaults(template.read_text(encoding="utf-8"), os.environ)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(rendered, encoding="utf-8")
    output.chmod(0o600)
    return 0


def _ca_bundle() -> int:
    try:
        bundle = ca_bundle(os.environ)
    except (ConfigError, OSError) as error:
        return _error(getattr(error, "reasons", [str(error)]), "ca-bundle error")
    if bundle:
        print(bundle)
    return 0


def _settings(config: Path) -> int:
    try:
        ports = [port for _, port in scheduler_addresses(config, os.environ)]
    except (ConfigError, OSError, yaml.YAMLError, ValueError, TypeError, AttributeError):
        ports = []  # the config's own check names what is wrong with it
    problems = ignored_variable_problems(os.environ) + container_settings_problems(os.environ, ports)
    return _error(problems, "settings error") if problems else 0


def _lenient(command: str, config: Path) -> int:
    """workdir, running-jobs, clean-temp and notify-port: no full check."""
    try:
        if not config.is_file():
            raise ConfigError([f"{config} does not exist"])
        document = load_lenient(config, os.environ)
        if command == "notify-port":
            print(next(iter(relay_channels(document).values()), ""))
            return 0
        work = workdir(document)
        if command == "workdir":
            print(work)
        elif command == "running-jobs":
            for model in running_jobs(work):
                print(model)
        else:
            for path, models in clean_temp(work):
                print(f"{path}\t{','.join(models)}")
    except ConfigError as error:
        return _error(error.reasons)
    except yaml.YAMLError as error:
        problem, line = yaml_problem(error)
        return _error([f"{config} is not valid YAML{f' (line {line})' if line else ''}: {problem}"])
    except OSError as error:
        return _error([f"{type(error).__name__}: {error}"])
    return 0


def _checked(command: str, config: Path) -> int:
    """check, endpoints and storages: after the full check."""
    try:
        document, _ = load(config, os.environ)
    except ConfigError as error:
        return _error(error.reasons)
    workers = worker_problems(config, document, os.environ)
    if workers:
        return _error(workers)
    if command == "endpoints":
        for what, model, host, port in endpoints(document):
            print(f"{host}\t{port}\t{model}\t{what}")
    elif command == "storages":
        for model in document["models"]:
            print(f"model {model} uploads to {'; '.join(storages(document, model))}")
    else:
        processes = worker_configs(config)
        split = f", run by {len(processes)} GoBackup workers" if processes != [config] else ""
        print(f"config ok: {len(document['models'])} model(s) in {config}{split}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    if arguments.command == "render":
        return _render(arguments.template, arguments.output)
    if arguments.command == "secret-variables":
        print("\n".join(SECRET_VARIABLES))
        return 0
    if arguments.command == "ca-bundle":
        return _ca_bundle()
    if arguments.command == "settings":
        return _settings(arguments.config)
    if arguments.command in LENIENT_COMMANDS:
        return _lenient(arguments.command, arguments.config)
    return _checked(arguments.command, arguments.config)
