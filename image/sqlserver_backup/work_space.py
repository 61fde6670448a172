"""backup-space: is there room on the work volume for each model's next run?

A run holds on the work volume, until its upload ends, the .bacpac, its
archive (and the encrypted copy), and the new local copy, while the previous
local copy is still there. bench/run measured the peak at 3.97 times the
.bacpac with one local copy kept (tar, no encryption): the three new files and
the copy that was on the volume before. So a run needs, free, RUN_FACTOR times
its model's last archive, plus one more with encryption. The last archive is
the newest in the model's local storage on the work volume (else the size the
metrics exporter last read from MinIO); a model with neither has no need yet.

The sqlpackage wrapper checks its model before each export (a warning in the
run's log: the estimate can be high, and an export that does run out of space
says so itself); the deploy runs `backup-space` and warns for each model short
of space. Exit status 1 when any model is short."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlserver_backup import gobackup_config, gobackup_env, state_files
from sqlserver_backup.archives import local_listing
from sqlserver_backup.config_errors import ConfigError
from sqlserver_backup.models import active_config, chosen_models
from sqlserver_backup.status import size_text
from sqlserver_backup.temp_paths import workdir

RUN_FACTOR = 3
# Where the metrics exporter keeps what it read (metrics.STATE_FILE).
METRICS_STATE = "metrics-state.json"


def last_archive_size(model: str, body: Mapping[str, Any]) -> int | None:
    for storage in (body.get("storages") or {}).values():
        if isinstance(storage, dict) and storage.get("type") == "local" and Path(str(storage.get("path"))).is_dir():
            listing = local_listing(Path(str(storage["path"])), body)
            if listing.archives:
                return listing.archives[-1].size
    size = (state_files.read_state(METRICS_STATE).get(model.lower()) or {}).get("size")
    return size if isinstance(size, int) and size > 0 else None


def needed_bytes(model: str, body: Mapping[str, Any]) -> int | None:
    """What the model's next run needs free on the work volume; None when unknown."""
    size = last_archive_size(model, body)
    if size is None:
        return None
    return (RUN_FACTOR + (1 if body.get("encrypt_with") else 0)) * size


def space_lines(document: Mapping[str, Any], models: list[str], free: int, volume: str) -> tuple[list[str], bool]:
    """A line per model (OK, SHORT or UNKNOWN) and whether any is short."""
    lines, short = [], False
    for model in models:
        needs = needed_bytes(model, document["models"][model] or {})
        if needs is None:
            lines.append(f"UNKNOWN model={model}: no archive yet, so no measure of what its run needs")
        elif needs > free:
            short = True
            lines.append(
                f"SHORT model={model}: {volume} has {size_text(free)} free; the next run needs about"
                f" {size_text(needs)} ({RUN_FACTOR}x its last archive, +1x when encrypted). Free space there, or"
                " give the work volume more room (Ansible: backup_stack_work_volume_driver_opts)"
            )
        else:
            lines.append(f"OK model={model}: {size_text(free)} free, the next run needs about {size_text(needs)}")
    return lines, short


def volume_text(work: Path) -> str:
    name = os.environ.get("WORK_VOLUME", "")
    return f"the work volume {name} (mounted at {work})" if name else f"the work volume at {work}"


def warning_before_export(model: str) -> str:
    """The sqlpackage wrapper's check of its model: a warning line when it is
    short of room, else ''; never a failure."""
    try:
        document, _ = gobackup_config.load(active_config(None), gobackup_env.resolve_file_env(os.environ))
        work = workdir(document)
        lines, short = space_lines(document, [model], shutil.disk_usage(work).free, volume_text(work))
    except (ConfigError, OSError, KeyError):
        return ""  # the export's own failure, if any, says what is wrong
    return f"backup-sqlpackage: warning: {lines[0]}" if short else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="backup-space", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", action="append", help="a model to check (repeatable; default: every model)")
    parser.add_argument("--config", type=Path, help="GoBackup configuration (default: the active one)")
    arguments = parser.parse_args(argv)
    try:
        document, _ = gobackup_config.load(active_config(arguments.config), gobackup_env.resolve_file_env(os.environ))
        work = workdir(document)
        free = shutil.disk_usage(work).free
        models = chosen_models(document, arguments.model)
    except ConfigError as error:
        print(f"backup-space: {'; '.join(error.reasons)}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"backup-space: cannot read the free space of the work volume: {error}", file=sys.stderr)
        return 2
    lines, short = space_lines(document, models, free, volume_text(work))
    print("\n".join(lines))
    return 1 if short else 0
