"""The GoBackup workers of one container.

GoBackup v3.1.1 runs the models of one process one at a time: every job of its
scheduler takes the same mutex. A host that runs its models in N workers
(the role's backup_config_workers) has, beside gobackup.yml, one configuration
per worker, gobackup-worker-<i>.yml (i from 1 to N): the same file, holding
only that worker's share of the models and a loopback web port of its own.
backup-supervisor runs one `gobackup run` per worker file, so up to N exports
run at once. gobackup.yml stays whole: backup-now, restores, status and the
checks find every model there, whichever worker schedules it. Without worker
files, GoBackup runs gobackup.yml itself, as before.

The split itself is the role's (plugins/filter/backup_workers.py); this module
only reads the files and refuses a set of them that does not split
gobackup.yml's models exactly once each.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlserver_backup.config_errors import ConfigError
from sqlserver_backup.gobackup_config import load, load_lenient, web_address
from sqlserver_backup.notify_settings import relay_channels

WORKER_FILE = re.compile(r"^gobackup-worker-([1-9][0-9]*)\.yml$")


def worker_number(path: Path) -> int | None:
    found = WORKER_FILE.match(path.name)
    return int(found.group(1)) if found else None


def worker_configs(config: Path) -> list[Path]:
    """The configuration of each GoBackup process: the worker files beside
    `config`, worker 1 first, or `config` itself when there are none."""
    folder = config.parent
    found = sorted(
        (number, path)
        for path in (folder.iterdir() if folder.is_dir() else ())
        if (number := worker_number(path)) is not None
    )
    return [path for _, path in found] or [config]


@dataclass(frozen=True)
class Worker:
    """One GoBackup process as its file says: its web server's (host, port),
    None when web.enabled is false, and its model names."""

    address: tuple[str, int] | None
    models: list[str]


def read_workers(config: Path, environ: Mapping[str, str]) -> list[Worker]:
    """Each GoBackup process of the container, worker 1 first; each file read once."""
    documents = (load_lenient(path, environ) for path in worker_configs(config))
    return [Worker(web_address(document), list(document.get("models") or {})) for document in documents]


def scheduler_addresses(config: Path, environ: Mapping[str, str]) -> list[tuple[str, int]]:
    """(host, port) of the web server of each GoBackup process (none where
    web.enabled is false)."""
    return [worker.address for worker in read_workers(config, environ) if worker.address is not None]


class PartialReading(OSError):
    """Some workers' GoBackup did not answer; `text` is what the others said."""

    def __init__(self, message: str, text: str) -> None:
        super().__init__(message)
        self.text = text


def scheduler_reader(addresses: Sequence[tuple[str, int]]) -> Callable[[], str] | None:
    """Reads the /metrics of every GoBackup worker as one text (the parser
    joins a family that each worker lists into one). A worker that does not
    answer raises PartialReading with the others' text."""
    if not addresses:
        return None
    urls = [f"http://{host}:{port}/metrics" for host, port in addresses]

    def fetch() -> str:
        texts, failures = [], []
        for url in urls:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback http only
                    texts.append(response.read().decode())
            except OSError as error:
                failures.append(f"{url}: {error}")
        if failures:
            raise PartialReading("; ".join(failures), "\n".join(texts))
        return "\n".join(texts)

    return fetch


def worker_models(config: Path, environ: Mapping[str, str]) -> list[list[str]]:
    """The model names each GoBackup process schedules, worker 1 first."""
    return [worker.models for worker in read_workers(config, environ)]


def worker_problems(config: Path, document: Mapping[str, Any], environ: Mapping[str, str]) -> list[str]:
    """Why the worker files beside `config` (whose checked `document` is
    given) cannot run its models; empty when they can or when there are none."""
    files = worker_configs(config)
    if files == [config]:
        return []
    numbers = [worker_number(path) for path in files]
    if numbers != list(range(1, len(files) + 1)):
        found = ", ".join(path.name for path in files)
        return [f"the worker files beside {config.name} must be numbered 1 to {len(files)} without a gap: {found}"]
    reasons: list[str] = []
    unreadable = False
    holder: dict[str, str] = {}
    addresses: dict[tuple[str, int], str] = {}
    for path in files:
        try:
            worker, _ = load(path, environ)
        except ConfigError as error:
            reasons += error.reasons
            unreadable = True
            continue
        reasons += _differences(path.name, worker, document, config.name)
        for model in worker["models"]:
            if model in holder:
                reasons.append(f"model {model} is in both {holder[model]} and {path.name}: it would run twice")
            holder[model] = path.name
        address = web_address(worker)
        if address is not None and address in addresses:
            reasons.append(f"{path.name} and {addresses[address]} both serve on {address[0]}:{address[1]}")
        elif address is not None:
            addresses[address] = path.name
    relay = {("127.0.0.1", int(port)) for port in relay_channels(document).values()}
    reasons += [
        f"{addresses[address]} serves on {address[0]}:{address[1]}, the notification relay's port"
        for address in sorted(relay & addresses.keys())
    ]
    unassigned = [str(model) for model in document["models"] if model not in holder]
    if unassigned and not unreadable:
        reasons.append(f"model(s) {', '.join(unassigned)} of {config.name} are in no worker file: they would never run")
    return reasons


def _differences(name: str, worker: Mapping[str, Any], document: Mapping[str, Any], config_name: str) -> list[str]:
    """Where a worker file says other than gobackup.yml beyond its share of
    the models and its web port."""
    reasons = []
    if worker.get("workdir") != document.get("workdir"):
        reasons.append(f"{name} has another workdir than {config_name}: a stop could not see its running backups")
    for model, body in worker["models"].items():
        if model not in document["models"]:
            reasons.append(f"model {model} of {name} is not in {config_name}")
        elif body != document["models"][model]:
            reasons.append(f"model {model} of {name} differs from the same model in {config_name}")
    return reasons
