"""The stand-ins of tests/standins (sqlpackage, GoBackup, go-sqlcmd, SQL
Server), built on this machine and run here, and the mark of the tests that
run them here."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .paths import ARTIFACTS, REPO, USES_STANDINS
from .waiting import free_port, wait_until

standins_only = pytest.mark.skipif(
    not USES_STANDINS, reason="runs the stand-in binaries on this machine; test_e2e covers it with the real tools"
)


def build_standins(out: Path = ARTIFACTS) -> Path:
    """Builds the stand-in binaries and artifacts into out (quick when nothing
    changed); returns the folder of the binaries."""
    built = subprocess.run(
        [sys.executable, str(REPO / "tests" / "standins" / "build_artifacts.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if built.returncode != 0:
        raise RuntimeError(
            f"tests/standins/build_artifacts.py failed ({built.returncode}):\n{built.stdout}{built.stderr}"
        )
    return out / "bin"


class StandinSqlServer:
    """The SQL Server stand-in on a port of the loopback. pause() freezes it as
    `docker pause` freezes a SQL Server container: connections are accepted
    by the kernel, nothing answers, so an export started then hangs."""

    def __init__(self, process: subprocess.Popen, port: int, binaries: Path, password: str) -> None:
        self.process, self.port, self.binaries, self.password = process, port, binaries, password

    @property
    def address(self) -> str:
        """The server as sqlcmd and GoBackup name it: 127.0.0.1,<port>."""
        return f"127.0.0.1,{self.port}"

    @property
    def sqlcmd(self) -> list[str]:
        """The stand-in sqlcmd logged in as sa (-C: trust the certificate, -b: fail on an error)."""
        return [str(self.binaries / "sqlcmd"), "-S", self.address, "-U", "sa", "-P", self.password, "-C", "-b"]

    def query(self, text: str, database: str | None = None) -> str:
        """Runs one batch (in sa's default database unless named); its output."""
        in_database = ["-d", database] if database else []
        result = subprocess.run([*self.sqlcmd, *in_database, "-Q", text], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def answers(self) -> bool:
        return subprocess.run([*self.sqlcmd, "-Q", "SELECT 1"], capture_output=True, check=False).returncode == 0

    def pause(self) -> None:
        """Returns once every thread is stopped, as `docker pause` returns once
        frozen: SIGSTOP takes effect asynchronously (0.1 s and more under load),
        and until then the stand-in's other threads still answer."""
        self.process.send_signal(signal.SIGSTOP)
        wait_until(self.frozen, "every thread of the SQL Server stand-in to stop", timeout=5, interval=0.1)

    def frozen(self) -> bool:
        states = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            with contextlib.suppress(OSError):  # a thread that just ended
                states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
        return bool(states) and all(state in ("t", "T") for state in states)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)


@contextlib.contextmanager
def standin_sql_server(binaries: Path, password: str, data_dir: Path) -> Iterator[StandinSqlServer]:
    """The SQL Server stand-in of `binaries` with sa's password and a data
    directory (its output in <data_dir>.log), on a free port; returns once it
    answers a query, stops it on leaving."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir.with_name(f"{data_dir.name}.log")
    port = free_port()
    environment = {"ACCEPT_EULA": "Y", "MSSQL_SA_PASSWORD": password, "MSSQL_DATA_DIR": str(data_dir)}
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(binaries / "mssql-standin")],
            env={**environment, "MSSQL_TCP_PORT": str(port)},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = StandinSqlServer(process, port, binaries, password)
    try:
        wait_until(
            lambda: process.poll() is not None or server.answers(),
            lambda: f"the SQL Server stand-in on port {port}:\n{log.read_text()}",
            timeout=20,
            interval=0.1,
        )
        if process.returncode is not None:
            raise AssertionError(f"the SQL Server stand-in exited ({process.returncode}):\n{log.read_text()}")
        yield server
    finally:
        server.resume()
        process.terminate()
        process.wait(timeout=10)
