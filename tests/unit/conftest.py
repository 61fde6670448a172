"""Fixtures of the unit tests: the image's entrypoint run on this machine with
the stand-ins, and the Go reference program."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlserver_backup_testing import ENTRYPOINT, REPO, VENV_BIN, answers, build_reference, wait_until


@pytest.fixture
def entrypoint_env(tmp_path: Path, standin_bin: Path) -> dict[str, str]:
    """Environment that runs image/docker-entrypoint.sh on this machine with the
    image's paths redirected into tmp_path, the stand-ins on PATH and then the
    venv's console scripts (backup-config, the backup-supervisor it execs)."""
    (tmp_path / "home").mkdir()
    # The clean-up of interrupted uploads talks to MinIO: test_e2e runs it in
    # the image; here, with no MinIO, a program that does nothing takes its name.
    no_cleanup = tmp_path / "no-cleanup" / "backup-cleanup"
    no_cleanup.parent.mkdir()
    no_cleanup.write_text("#!/bin/sh\nexit 0\n")
    no_cleanup.chmod(0o755)
    return {
        "PATH": f"{no_cleanup.parent}:{standin_bin}:{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "GOBACKUP_CONFIG": str(tmp_path / "etc" / "gobackup.yml"),
        "GOBACKUP_TEMPLATE": str(REPO / "image" / "gobackup.yml.template"),
        "TMPDIR": str(tmp_path / "work"),
        "SKIP_HEALTH_CHECK": "true",
    }


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
            url = f"http://127.0.0.1:{port}/status"
            try:
                wait_until(lambda: process.poll() is not None or answers(url, timeout=1), url, timeout=20)
                assert process.poll() is None, "the entrypoint exited"
            except AssertionError:  # timed out, or exited
                process.kill()
                raise AssertionError(f"no /status on port {port}: {process.communicate()}") from None
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.communicate(timeout=10)

    return start


@pytest.fixture(scope="session")
def portref(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go reference program of time.ParseDuration and godotenv (tests/standins/cmd/portref)."""
    return build_reference("portref", tmp_path_factory.mktemp("portref"))
