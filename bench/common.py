"""What every section of the benchmark uses: one run (`Bench`: its id, its
temp folder, what it must remove at the end), the backup image's work dir,
commands run with their failure shown, and the table's rows."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from sqlserver_backup_testing import REPO, ansible_playbook, base_image, load_test_vars

PREFIX = "sqlserver-backup-bench"
# The deploy's test hosts (section 5) and their network.
FLEET_PREFIX = f"{PREFIX}fleet"
GIB = 1024**3
MB = 1000**2
# Inside the backup image: its work-dir volume and the benchmark's folder on it.
WORK = "/tmp/gobackup"  # noqa: S108 - the image's VOLUME, not a temp file of this host
BENCH_ROOT = f"{WORK}/bench"
SOURCE_DIR = f"{BENCH_ROOT}/source"
MODEL = "sales"
DATABASE = "Sales"
BACPAC = f"{SOURCE_DIR}/{MODEL}/mssql/{MODEL}/{DATABASE}.bacpac"


def log(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


@dataclass
class Row:
    figure: str
    measured: str
    target: str = "-"
    verdict: str = "info"


def megabytes(size: float) -> str:
    return f"{size / MB:.1f} MB"


def gibibytes(size: float) -> str:
    return f"{size / GIB:.2f} GiB"


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def run(*command: str, stdin: str | None = None, quiet: bool = False) -> str:
    """Runs a command, returns its stdout; on failure shows its output and stops."""
    result = subprocess.run(command, input=stdin, capture_output=True, text=True, cwd=REPO, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ... failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    if not quiet and result.stderr.strip():
        print(result.stderr.rstrip(), file=sys.stderr)
    return result.stdout


def quietly(*command: str) -> None:
    """A clean-up command: what it removes may already be gone."""
    subprocess.run(command, capture_output=True, check=False)


def playbook_output(*arguments: str, environment: dict[str, str] | None = None) -> str:
    """Runs ansible-playbook; its output, or on failure a stop showing it."""
    result = ansible_playbook(*arguments, environment=environment)
    if result.returncode != 0:
        raise RuntimeError(f"ansible-playbook {' '.join(arguments)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


class Bench:
    """One run: its id, its temp folder, and what it must remove at the end."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self.id = secrets.token_hex(4)
        self.name = f"{PREFIX}-{self.id}"
        self.stack = stack
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        stack.callback(shutil.rmtree, self.tmp, ignore_errors=True)
        self.docker = docker.from_env()
        self.test_vars: dict[str, Any] = load_test_vars()
        self.base = base_image()
        self.size = int(float(os.environ.get("BENCH_GIB", "1")) * GIB)
        if self.size <= 0:
            raise SystemExit("BENCH_GIB must be a positive number of GiB")
        self.image = f"{PREFIX}/backup:{self.id}"
        # What playbooks/build.yml built as self.image, from which base: the
        # deploys must ask for the same image, or they would build again.
        self.built_image = self.image
        self.built_base = ""
        self.fleet_network = f"{FLEET_PREFIX}-{self.id}"
        self.volume = f"{self.name}-work"
        self.minio_storage = ""

    def on_exit(self, action: Callable[..., Any], *arguments: Any) -> None:
        """Registers a clean-up step that must not stop the other clean-ups."""

        def guarded() -> None:
            try:
                action(*arguments)
            except Exception as error:  # report it and go on cleaning up
                log(f"clean-up step failed: {error}")

        self.stack.callback(guarded)

    def in_image(self, *arguments: str, stdin: str | None = None, network: str | None = None) -> Any:
        """Runs bench/in_image.py in the backup image, as its own user, with
        the benchmark's volume as the work dir; returns its JSON."""
        container = f"{self.name}-{arguments[0]}"
        self.on_exit(quietly, "docker", "rm", "-f", "-v", container)
        command = ["docker", "run", "--rm", "-i", "--name", container]
        command += ["--mount", f"type=volume,src={self.volume},dst={WORK}"]
        command += ["--mount", f"type=bind,src={REPO / 'bench' / 'in_image.py'},dst=/bench/in_image.py,readonly"]
        if network:
            command += ["--network", network]
        command += ["--entrypoint", "python3", self.image, "/bench/in_image.py", *arguments]
        return json.loads(run(*command, stdin=stdin or ""))
