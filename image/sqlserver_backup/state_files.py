"""The state volume the tools share: which config the entrypoint validated
(ACTIVE_CONFIG, for tools started later with `docker exec`) and the JSON
state files of the drills and coverage checks, which backup-status and
backup-metrics read."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

STATE_DIR = Path(os.environ.get("GOBACKUP_STATE_DIR", os.environ.get("HOME", "/var/lib/gobackup")))
# docker-entrypoint records here which config it validated and GoBackup runs with.
ACTIVE_CONFIG = STATE_DIR / "active-config"
# What the drills (backup-restore --drill) and the coverage checks
# (backup-coverage) record.
DRILLS_STATE = "drills.json"
COVERAGE_STATE = "coverage.json"


def state_dir(environ: Mapping[str, str]) -> Path:
    """The state directory a given environment names (GOBACKUP_STATE_DIR, else HOME)."""
    return Path(environ.get("GOBACKUP_STATE_DIR") or environ.get("HOME") or "/var/lib/gobackup")


def read_state(name: str) -> dict[str, Any]:
    """A JSON state file of STATE_DIR ({} when absent or unreadable)."""
    try:
        loaded = json.loads((STATE_DIR / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def write_state(name: str, data: Mapping[str, Any]) -> None:
    """Replace a JSON state file of STATE_DIR at once: a reader never sees half of it."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    temporary = STATE_DIR / f".{name}.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    temporary.chmod(0o600)
    os.replace(temporary, STATE_DIR / name)
