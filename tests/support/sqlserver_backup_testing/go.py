"""The Go programs the Go-behaviour ports are compared with: each is built
from tests/standins/cmd/<name> against the modules GoBackup v3.1.1 pins
(tests/standins/go.mod: robfig/cron v3.0.1, gocron v1.18.0, godotenv v1.4.0)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from .paths import REPO


def build_reference(name: str, directory: Path) -> Path:
    """`go build` of tests/standins/cmd/<name> into directory."""
    binary = directory / name
    subprocess.run(
        ["go", "build", "-o", str(binary), f"./cmd/{name}"],
        cwd=REPO / "tests" / "standins",
        env={**os.environ, "CGO_ENABLED": "0"},
        check=True,
        capture_output=True,
    )
    return binary


def ask_portref(portref: Path, function: str, texts: list[str]) -> list[dict[str, Any]]:
    """What the Go function (`duration` or `dotenv`) makes of each text, in
    order: {"ok": ..., "nanoseconds": ...} or {"ok": ..., "values": {...}}."""
    result = subprocess.run(
        [str(portref), function], input=json.dumps(texts), capture_output=True, text=True, check=True
    )
    return [{"nanoseconds": 0, "values": {}, **answer} for answer in json.loads(result.stdout)]
