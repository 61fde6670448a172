"""Shared fixtures: the repository, the stand-in binaries and helpers that run
the project's own commands (entrypoint, ansible-playbook) for real."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / ".artifacts"
VENV_BIN = Path(sys.executable).parent
# The one switch between the stand-ins (default) and the real upstream
# artifacts: a vars file, relative to the repository (README: "Testing against
# the real tools").
TEST_VARS = REPO / os.environ.get("SQLSERVER_BACKUP_TEST_VARS", "tests/offline-vars.yml")
USES_STANDINS = bool(yaml.safe_load(TEST_VARS.read_text()).get("test_standins"))
standins_only = pytest.mark.skipif(
    not USES_STANDINS, reason="runs the stand-in binaries on this machine; test_e2e covers it with the real tools"
)

# Values the bundled template needs; tests remove or change one at a time.
REQUIRED_ENV = {
    "MSSQL_HOST": "127.0.0.1",
    "MSSQL_DATABASE": "SalesDemo",
    "MSSQL_PASSWORD": "Str0ngSecretPassw0rd",
    "MINIO_ENDPOINT": "http://127.0.0.1:9",
    "MINIO_BUCKET": "sqlserver-backups",
    "MINIO_ACCESS_KEY": "backup-key",
    "MINIO_SECRET_KEY": "Sup3rSecretMinioKey",
}


@pytest.fixture(scope="session")
def standin_bin() -> Path:
    """Builds the stand-in binaries (quick when nothing changed)."""
    subprocess.run(
        [sys.executable, str(REPO / "tests" / "standins" / "build_artifacts.py"), "--out", str(ARTIFACTS)],
        check=True,
        capture_output=True,
    )
    return ARTIFACTS / "bin"


@pytest.fixture
def entrypoint_env(tmp_path: Path, standin_bin: Path) -> dict[str, str]:
    """Environment that runs image/docker-entrypoint.sh on this machine with the
    image's paths redirected into tmp_path, the stand-ins on PATH and then the
    venv's console scripts (backup-config, the backup-supervisor it execs)."""
    (tmp_path / "home").mkdir()
    return {
        "PATH": f"{standin_bin}:{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "GOBACKUP_CONFIG": str(tmp_path / "etc" / "gobackup.yml"),
        "GOBACKUP_TEMPLATE": str(REPO / "image" / "gobackup.yml.template"),
        # The clean-up of interrupted uploads talks to MinIO: test_e2e runs it
        # in the image; here, with no MinIO, it is left out.
        "BACKUP_CLEANUP": "true",
        "TMPDIR": str(tmp_path / "work"),
        "SKIP_HEALTH_CHECK": "true",
    }


ENTRYPOINT = ["bash", str(REPO / "image" / "docker-entrypoint.sh")]


@pytest.fixture
def run_entrypoint(entrypoint_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(env: dict[str, str] | None = None, args: list[str] | None = None, timeout: float = 30):
        return subprocess.run(
            [*ENTRYPOINT, *(args or [])],
            env={**entrypoint_env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture
def daemon(entrypoint_env: dict[str, str]):
    """Starts the entrypoint in daemon mode, waits for GoBackup's /status on
    the given port, and stops it with SIGTERM on leaving."""

    @contextlib.contextmanager
    def start(env: dict[str, str], port: int) -> Iterator[subprocess.Popen[str]]:
        process = subprocess.Popen(
            ENTRYPOINT, env={**entrypoint_env, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=1):
                        break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        process.kill()
                        raise AssertionError(f"no /status on port {port}: {process.communicate()}") from None
                    time.sleep(0.2)
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.communicate(timeout=10)

    return start


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ansible_playbook(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Runs the venv's ansible-playbook with the project's ansible.cfg."""
    return subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), *arguments],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
    )


def dev_playbook(playbook: str, *arguments: dict[str, object] | str, verbose: bool = False):
    """Runs playbooks/<playbook> on the dev inventory with the test vars (the
    stand-ins, or the real tools), then each argument: a mapping as extra vars
    (JSON), a string as it is ("-e", "key=value", "--check"); later extra vars
    win."""
    command = ["-v"] if verbose else []
    command += ["-i", str(REPO / "inventories" / "dev"), "-e", f"@{TEST_VARS}"]
    for argument in arguments:
        command += [argument] if isinstance(argument, str) else ["-e", json.dumps(argument)]
    return ansible_playbook(*command, str(REPO / "playbooks" / playbook))


def prepare_standins() -> None:
    """The stand-ins and test images (quick when the test command built them)."""
    prepared = ansible_playbook(str(REPO / "tests" / "playbooks" / "prepare_standins.yml"))
    assert prepared.returncode == 0, prepared.stdout[-3000:]


def dev_stack_vars(name: str, mssql_port: int, minio_port: int) -> dict[str, object]:
    """Extra vars that deploy the dev inventory's stack as one of its own, beside
    the other tests' stacks: compose project sqlserver-backup-<name>, its files
    in /tmp/sqlserver-backup-<name>, its objects under <name>/ in the bucket."""
    root = Path(f"/tmp/sqlserver-backup-{name}")
    return {
        "dev_secrets_dir": str(root / "secrets"),
        "backup_stack_project": f"sqlserver-backup-{name}",
        "backup_stack_dir": str(root / "stack"),
        "backup_config_dir": str(root / "stack" / "config"),
        "backup_config_stack_dir": str(root / "stack"),
        "backup_image_build_dir": str(root / "build"),
        "minio_image_build_dir": str(root / "minio-build"),
        "backup_stack_mssql_port": mssql_port,
        "backup_stack_minio_port": minio_port,
        "backup_config_minio_path_prefix": name,
    }


@contextlib.contextmanager
def scratch_stack(variables: dict[str, object]) -> Iterator[None]:
    """The stack of dev_stack_vars removed (containers, volumes, files) before
    the stand-ins are prepared, and again on leaving."""
    root = Path(str(variables["backup_stack_dir"])).parent

    def remove() -> None:
        down = ["docker", "compose", "-p", str(variables["backup_stack_project"]), "down", "-v"]
        subprocess.run(down, capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)

    remove()
    prepare_standins()
    try:
        yield
    finally:
        remove()
