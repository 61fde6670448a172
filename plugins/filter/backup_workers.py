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


def backup_worker_problems(models: Sequence[Mapping[str, Any]], count: Any) -> list[str]:
    """Why the models cannot be split into `count` workers; empty when they can."""
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
    return reasons


def backup_workers(models: Sequence[Mapping[str, Any]], count: Any) -> list[list[str]]:
    """The model names of each worker, worker 1 first (backup_worker_problems
    must be empty)."""
    workers: list[list[str]] = [[] for _ in range(int(count))]
    for model in models:
        if "worker" in model:
            workers[int(model["worker"]) - 1].append(str(model["name"]))
    for model in models:
        if "worker" not in model:
            fewest = min(range(len(workers)), key=lambda index: (len(workers[index]), index))
            workers[fewest].append(str(model["name"]))
    return workers


def backup_worker_ports(base: Any, count: Any) -> list[int]:
    """The loopback web port of each worker's GoBackup, worker 1 first: the
    base port (backup_config_web_port) and the ones after it."""
    return [int(base) + index for index in range(int(count))]


class FilterModule:
    """Ansible filters of the backup_config role: the models of each worker."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "backup_workers": backup_workers,
            "backup_worker_problems": backup_worker_problems,
            "backup_worker_ports": backup_worker_ports,
        }
