"""Which worker runs each model, as Ansible filters.

GoBackup v3.1.1 runs the models of one process one at a time. With
backup_config_workers N above 1, the role writes one GoBackup configuration
per worker (gobackup-worker-<i>.yml beside gobackup.yml and its .env), each
holding a share of the models, and the container runs one GoBackup per file:
up to N exports at once. A database entry's `worker` pins its model to one
worker; the others go, in the inventory's order, each to the worker with the
fewest models so far (the lowest number on a tie): the split is the same at
every deploy, and a model added at the end of the list moves no other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

WORKERS_VARIABLE = "backup_config_workers"


def _whole_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def backup_worker_problems(
    models: Sequence[Mapping[str, Any]], count: Any, base_port: Any = 2703, relay_port: Any = None
) -> list[str]:
    """Why the models cannot be split into `count` workers whose web ports
    count down from `base_port`, none of them the notification relay's
    `relay_port`; empty when they can."""
    workers = _whole_number(count)
    if workers is None or workers < 1:
        return [f"{WORKERS_VARIABLE} must be a whole number of 1 or more, not '{count}'"]
    reasons = []
    if workers > max(len(models), 1):
        reasons.append(
            f"{WORKERS_VARIABLE} ({workers}) is more than the models ({len(models)}): a worker would have no model"
        )
    for model in models:
        if "worker" not in model:
            continue
        pinned = _whole_number(model["worker"])
        if pinned is None or not 1 <= pinned <= workers:
            reasons.append(
                f"model {model['name']}: worker must be a number from 1 to {WORKERS_VARIABLE} ({workers}),"
                f" not '{model['worker']}'"
            )
    if reasons:
        return reasons
    idle = [str(number) for number, names in enumerate(backup_workers(models, workers), start=1) if not names]
    if idle:
        reasons.append(
            f"worker(s) {', '.join(idle)} would have no model: pin fewer models (worker:) or lower {WORKERS_VARIABLE}"
        )
    ports = backup_worker_ports(base_port, workers)
    if ports[-1] < 1:
        reasons.append(f"{workers} workers need the web ports {ports[-1]} to {base_port}: raise backup_config_web_port")
    if relay_port is not None and int(relay_port) in ports:
        reasons.append(
            f"backup_config_notify_relay_port ({relay_port}) is the web port of GoBackup worker"
            f" {ports.index(int(relay_port)) + 1} (backup_config_web_port {base_port} and the {workers - 1} below it):"
            " set one of them apart"
        )
    return reasons


def backup_workers(models: Sequence[Mapping[str, Any]], count: Any) -> list[list[Any]]:
    """The model names of each worker, worker 1 first (backup_worker_problems
    must be empty)."""
    # Names as the inventory gives them, as the models' own (backup_models).
    workers: list[list[Any]] = [[] for _worker in range(int(count))]
    for model in models:
        if "worker" in model:
            workers[int(model["worker"]) - 1].append(model["name"])
    for model in models:
        if "worker" not in model:
            fewest = min(range(len(workers)), key=lambda index: (len(workers[index]), index))
            workers[fewest].append(model["name"])
    return workers


def backup_worker_ports(base: Any, count: Any) -> list[int]:
    """The loopback web port of each worker's GoBackup, worker 1 first:
    backup_config_web_port and the ones below it (the notification relay's
    default port is the one above)."""
    return [int(base) - index for index in range(int(count))]


class FilterModule:
    """Ansible filters of the backup_config role: the models of each worker."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "backup_workers": backup_workers,
            "backup_worker_problems": backup_worker_problems,
            "backup_worker_ports": backup_worker_ports,
        }
