"""GoBackup's work dir and the TempPaths of its runs.

Each run of a model works in `<workdir>/<unix-nanos>/<model>/...`, which
GoBackup removes when the run ends, and leaves behind when it is killed (it
installs no signal handler). A TempPath therefore says which runs are in
progress, and after a stop which runs were cut off."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from sqlserver_backup.config_errors import ConfigError
from sqlserver_backup.config_yaml import viper_string

TEMP_DIR_NAME = re.compile(r"^[0-9]+$")


def workdir(document: Any) -> Path:
    """GoBackup's workdir (required by the checker); ConfigError when unset."""
    value = viper_string(document.get("workdir")) if isinstance(document, dict) else ""
    if not value:
        raise ConfigError(["workdir is not set: set it to the work volume, e.g. /tmp/gobackup"])
    return Path(value)


def temp_dirs(work: Path) -> list[Path]:
    """GoBackup's TempPaths `<workdir>/<unix-nanos>/`; nothing else in workdir."""
    if not work.is_dir():
        return []
    return sorted(
        entry
        for entry in work.iterdir()
        if TEMP_DIR_NAME.match(entry.name) and entry.is_dir() and not entry.is_symlink()
    )


def models_in(temp_dir: Path) -> list[str]:
    """The models of a TempPath: its dump paths `<TempPath>/<model>/`."""
    return sorted(entry.name for entry in temp_dir.iterdir() if entry.is_dir() and not entry.is_symlink())


def running_jobs(work: Path) -> list[str]:
    """The model of every run in progress."""
    return [model for temp_dir in temp_dirs(work) for model in models_in(temp_dir)]


def clean_temp(work: Path) -> list[tuple[Path, list[str]]]:
    """Remove every TempPath a killed run left behind: [(path, models)]."""
    removed = []
    for temp_dir in temp_dirs(work):
        models = models_in(temp_dir)
        shutil.rmtree(temp_dir)
        removed.append((temp_dir, models))
    return removed
