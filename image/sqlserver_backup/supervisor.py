"""The container's main process, `backup-supervisor`: docker-entrypoint checks
the configuration, then execs it (under tini, which passes it docker stop's
SIGTERM). It runs GoBackup (`run`, the scheduler; `perform` in RUN_MODE=once)
with what serves it: the notification relay, started again when it dies; in
daemon mode the metrics exporter (METRICS_PORT) and the proof scheduler.

GoBackup has no handler for SIGTERM or SIGINT: signalled, it dies at once and
cuts off a running export, tar or upload. So it runs in a process group of its
own (a Ctrl-C on a terminal does not reach it either), and a stop request
waits up to STOP_GRACE_PERIOD seconds for the running backups before GoBackup
and whatever it started are stopped. Docker sends SIGKILL after the compose
file's stop_grace_period, a little longer: this process must have stopped
GoBackup and exited before then, or nothing says which backup was cut off.

Its log lines keep the prefix `docker-entrypoint:` that operators' alerts and
the README match."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import yaml

from sqlserver_backup.config_errors import ConfigError
from sqlserver_backup.gobackup_config import load, load_lenient, storages
from sqlserver_backup.notify_settings import relay_channels
from sqlserver_backup.temp_paths import running_jobs, workdir
from sqlserver_backup.workers import worker_configs

LOG_PREFIX = "docker-entrypoint"
NOTIFY_RELAY = "notify-relay"
METRICS_EXPORTER = "backup-metrics"
PROOF_SCHEDULER = "backup-proof-scheduler"
# Notifiers and after_script run after GoBackup has removed a run's temp
# folder: a stop gives them this many seconds before GoBackup is stopped.
AFTER_RUN_SECONDS = 3
# How often a stop that waits says so again.
REPORT_EVERY_SECONDS = 30
# A notification relay that stops after this long is started again; one that
# exits at once (its port taken) is not: its reason is in the log.
RELAY_MIN_UPTIME_SECONDS = 5
# How often an idle supervisor looks for a stop request or GoBackup's exit.
IDLE_POLL_SECONDS = 0.2
# GoBackup and its children get this long after SIGTERM before SIGKILL.
TERM_TRIES, TERM_POLL_SECONDS = 50, 0.2
# Lines GoBackup's web server (gin) logs for the health check's /status and
# /metrics requests, every 30 s; they would bury the backups' lines.
PROBE_LINE = re.compile(rb'\[GIN\] [^|]*\| 200 \|[^|]*\|[^|]*\| (GET|HEAD) +"/(status|metrics)"')


def log(message: str) -> None:
    print(f"{LOG_PREFIX}: {message}", file=sys.stderr, flush=True)


class Fatal(Exception):
    """A reason to exit 1 before GoBackup could run."""


def exit_status(returncode: int) -> int:
    """A status as a shell reports it: 128 + N for a child killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class Child(Protocol):
    """A process the supervisor started; tests give fakes."""

    pid: int
    stdout: BinaryIO | None

    def poll(self) -> int | None: ...

    def wait(self) -> int: ...

    def signal(self, number: int, group: bool = False) -> None: ...


class Process:
    """A real child, in a session and process group of its own (setsid): a
    Ctrl-C on the container's terminal reaches none of them."""

    def __init__(self, command: list[str], capture_output: bool = False) -> None:
        try:
            self.popen = subprocess.Popen(
                command, stdout=subprocess.PIPE if capture_output else None, start_new_session=True
            )
        except OSError as error:
            raise Fatal(f"cannot start {command[0]}: {error.strerror or error}") from None
        self.pid, self.stdout = self.popen.pid, self.popen.stdout

    def poll(self) -> int | None:
        returncode = self.popen.poll()
        return None if returncode is None else exit_status(returncode)

    def wait(self) -> int:
        return exit_status(self.popen.wait())

    def signal(self, number: int, group: bool = False) -> None:
        """To the process, or to its group (what it started, even once it is gone)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(self.pid, number)
            else:
                os.kill(self.pid, number)


Spawn = Callable[[list[str], bool], Child]


def first_failure(statuses: list[int]) -> int:
    return next((status for status in statuses if status != 0), 0)


class Workers:
    """The GoBackup processes of one container, one per worker configuration
    (workers.py), signalled and waited for together as one Child."""

    def __init__(self, children: list[Child]) -> None:
        self.children = children
        self.stdout: BinaryIO | None = None

    def first_exit(self) -> int | None:
        """The status of a process that has exited; None while all run."""
        return next((status for child in self.children if (status := child.poll()) is not None), None)

    def poll(self) -> int | None:
        """None while any process runs; then the first failure's status, or 0."""
        statuses = [child.poll() for child in self.children]
        return None if None in statuses else first_failure([status for status in statuses if status is not None])

    def wait(self) -> int:
        return first_failure([child.wait() for child in self.children])

    def signal(self, number: int, group: bool = False) -> None:
        for child in self.children:
            child.signal(number, group)


def drop_probe_lines(source: BinaryIO, target: BinaryIO) -> None:
    """Copies GoBackup's output line by line (a carriage return stays one),
    without the lines of successful health probes. Reads to the end even when
    the target is gone, so that GoBackup never blocks on a full pipe."""
    for line in source:
        if PROBE_LINE.fullmatch(line.rstrip(b"\n")):
            continue
        try:
            target.write(line if line.endswith(b"\n") else line + b"\n")
            target.flush()
        except (OSError, ValueError):
            pass


class StopRequest:
    """Set by SIGTERM (docker stop) or SIGINT (Ctrl-C). The handler only sets
    a flag and signals: the supervisor looks at the flag as it polls."""

    def __init__(self) -> None:
        self.requested = False
        self.on_request: list[Callable[[], None]] = []

    def __call__(self, _signum: int = signal.SIGTERM, _frame: object = None) -> None:
        self.requested = True
        for callback in self.on_request:
            callback()

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self)
        signal.signal(signal.SIGINT, self)


@dataclass(frozen=True)
class Settings:
    """The container's settings, as docker-entrypoint checked them (an empty
    value is the default, as there)."""

    config: Path
    once: bool
    grace: int
    metrics_port: int | None
    time_zone: str

    @classmethod
    def from_environment(cls, config: Path, environ: Mapping[str, str]) -> Settings:
        metrics_port = environ.get("METRICS_PORT", "")
        try:
            return cls(
                config=config,
                once=(environ.get("RUN_MODE") or "daemon") == "once",
                grace=int(environ.get("STOP_GRACE_PERIOD") or "3600", 10),
                metrics_port=int(metrics_port, 10) if metrics_port else None,
                time_zone=environ.get("TZ") or "UTC",
            )
        except ValueError:
            raise Fatal("STOP_GRACE_PERIOD or METRICS_PORT is not a number (docker-entrypoint checks them)") from None


class BackupConfig:
    """What the supervisor reads from GoBackup's config: the relay's port, the
    running backups (their temp folders) and, after a failure, the storages."""

    def __init__(self, config: Path, environ: Mapping[str, str]) -> None:
        self.config, self.environ = config, environ
        try:
            document = load_lenient(config, environ)
            self.relay_port: int | None = next(iter(relay_channels(document).values()), None)
            self.workdir = workdir(document)
            # One GoBackup per worker file (docker-entrypoint checked them).
            self.worker_configs = worker_configs(config)
        except (ConfigError, OSError, yaml.YAMLError, ValueError, TypeError, AttributeError) as error:
            raise Fatal(f"cannot read {config}: {reason(error)}") from None

    def running_models(self) -> str:
        """The backups running now, "model a" or "models a, b"; "" when idle.
        GoBackup's temp folders tell, so a `docker exec ... gobackup perform`
        counts too: it is cut off as well when the container stops."""
        try:
            models = sorted(set(running_jobs(self.workdir)))
        except OSError as error:
            log(f"error: cannot tell which backups are running ({reason(error)})")
            return ""
        if not models:
            return ""
        return f"{'model' if len(models) == 1 else 'models'} {', '.join(models)}"

    def storages(self) -> list[str]:
        """Where each model uploads, to name after a failed run."""
        try:
            document, _ = load(self.config, self.environ)
        except (ConfigError, OSError, yaml.YAMLError):
            return []
        return [f"model {model} uploads to {'; '.join(storages(document, model))}" for model in document["models"]]


def reason(error: BaseException) -> str:
    reasons = getattr(error, "reasons", None)
    return "; ".join(reasons) if reasons else f"{type(error).__name__}: {error}"


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class RelayKeeper:
    """Runs notify-relay, and again whenever it stops after it had been up a
    while (killed, out of memory): without it a failure would reach nobody."""

    def __init__(self, command: list[str], spawn: Spawn, clock: Clock) -> None:
        self.command, self.spawn, self.clock = command, spawn, clock
        self.lock = threading.Lock()
        self.child: Child | None = None
        self.stopping = False
        self.thread = threading.Thread(target=self.keep_running, name="notify-relay", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def alive(self) -> bool:
        return self.thread.is_alive()

    def keep_running(self) -> None:
        while True:
            with self.lock:
                if self.stopping:
                    return
                try:
                    self.child = self.spawn(self.command, False)
                except Fatal as error:
                    log(f"error: {error}")
                    return
                started = self.clock.now()
            self.child.wait()
            if self.stopping:
                return
            if self.clock.now() - started < RELAY_MIN_UPTIME_SECONDS:
                log(
                    f"error: the notification relay stopped within {RELAY_MIN_UPTIME_SECONDS} s of its start"
                    " (reason above); notifications are not sent"
                )
                return
            log("warning: the notification relay stopped; starting it again")

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            child = self.child
        if child is not None:
            child.signal(signal.SIGTERM)
        if self.thread.ident is not None:
            self.thread.join(timeout=30)


def stop_child(child: Child | None) -> None:
    if child is not None:
        child.signal(signal.SIGTERM)
        child.wait()


class Supervisor:
    """GoBackup and its helpers for one container's life. spawn, clock and
    config are the real ones in the container and fakes in unit tests."""

    def __init__(
        self,
        settings: Settings,
        config: BackupConfig,
        stop: StopRequest,
        spawn: Spawn = Process,
        clock: Clock | None = None,
        output: BinaryIO | None = None,
    ) -> None:
        self.settings, self.config, self.stop = settings, config, stop
        self.spawn, self.clock = spawn, clock or SystemClock()
        self.output = output if output is not None else sys.stdout.buffer
        self.relay: RelayKeeper | None = None
        self.proof: Child | None = None
        stop.on_request.append(self.stop_proof_scheduler_early)

    def stop_proof_scheduler_early(self) -> None:
        """A stop reaches the proof scheduler at once: it lets a running drill
        finish (within its bound) while the backups finish."""
        if self.proof is not None:
            self.proof.signal(signal.SIGTERM)

    def run(self) -> int:
        try:
            self.start_notify_relay()
            status = self.run_once() if self.settings.once else self.run_daemon()
        finally:
            if self.relay is not None:
                self.relay.stop()
        return self.report(status)

    def start_notify_relay(self) -> None:
        """GoBackup's notifiers post to notify-relay on the loopback (it removes
        the secrets from what they send): started when the config has
        notifiers, and listening before GoBackup can run a model."""
        port = self.config.relay_port
        if port is None:
            return
        self.relay = RelayKeeper([NOTIFY_RELAY, str(self.settings.config)], self.spawn, self.clock)
        self.relay.start()
        for _ in range(100):
            if listening(port):
                return
            if not self.relay.alive():
                raise Fatal("the notification relay did not start (reason above)")
            self.clock.sleep(0.1)
        raise Fatal(f"the notification relay does not listen on 127.0.0.1:{port}")

    def gobackup_commands(self, action: str) -> list[list[str]]:
        return [["gobackup", action, "-c", str(path)] for path in self.config.worker_configs]

    def workers_text(self) -> str:
        count = len(self.config.worker_configs)
        return f" in {count} GoBackup workers" if count > 1 else ""

    def run_once(self) -> int:
        log(f"running every model once{self.workers_text()}")
        return self.supervise(self.gobackup_commands("perform"), until_all=True)

    def run_daemon(self) -> int:
        log(f"starting the GoBackup scheduler{self.workers_text()} (TZ={self.settings.time_zone})")
        config = str(self.settings.config)
        metrics = None
        try:
            if self.settings.metrics_port is not None:
                # backup-metrics serves /metrics and nothing else on that port,
                # so GoBackup's web server and its /api/* stay on the loopback.
                port = str(self.settings.metrics_port)
                metrics = self.spawn([METRICS_EXPORTER, "--port", port, "--config", config], False)
            # Restore drills and coverage checks on restore.yml's schedules. It
            # alerts through the relay, so it stops before the relay does.
            self.proof = self.spawn([PROOF_SCHEDULER, "--config", config], False)
            if self.stop.requested:
                self.stop_proof_scheduler_early()
            return self.supervise(self.gobackup_commands("run"), until_all=False)
        finally:
            stop_child(self.proof)
            stop_child(metrics)

    def report(self, status: int) -> int:
        """The container's exit status, once every helper has stopped. A
        daemon is not meant to exit by itself: that is an error even with 0."""
        if self.stop.requested:
            return status
        if self.settings.once:
            if status != 0:
                log(f"error: the backup failed (exit {status}); GoBackup's reason is above")
                for line in self.config.storages():
                    log(line)
            return status
        log(f"error: GoBackup exited by itself (exit {status}); its reason is above")
        return status or 1

    def supervise(self, commands: list[list[str]], until_all: bool) -> int:
        """Runs one GoBackup per command until a stop request is through, or
        until they have all exited (until_all: one-shot runs) or one has (a
        scheduler that exits is an error: the others then stop as for a stop
        request). Returns GoBackup's status, or stop_gracefully's. Every line
        GoBackup printed has reached the output when this returns."""
        gobackups = Workers([self.spawn(command, True) for command in commands])
        copiers = []
        for child in gobackups.children:
            if child.stdout is not None:
                copier = threading.Thread(target=drop_probe_lines, args=(child.stdout, self.output), daemon=True)
                copier.start()
                copiers.append(copier)
        exited = gobackups.poll if until_all else gobackups.first_exit
        status = None
        while not self.stop.requested and (status := exited()) is None:
            self.clock.sleep(IDLE_POLL_SECONDS)
        if status is None:
            status = self.stop_gracefully(gobackups)
        else:
            if gobackups.poll() is None:
                log(f"error: a GoBackup worker exited (exit {status}); the others stop after their running backups")
                self.stop_gracefully(gobackups)
        for copier in copiers:
            copier.join(timeout=10)
        return status

    def stop_gracefully(self, gobackup: Child) -> int:
        """Waits, within the grace, for the running backups, then stops GoBackup.
        0 when nothing was cut off (once mode: perform's own status), 1 when a
        backup was cut off or a one-shot run did not finish, or GoBackup's
        status when it exited by itself meanwhile."""
        if not self.wait_for_backups(gobackup):
            self.stop_gobackup(gobackup)
            return 1
        status = gobackup.poll()
        if status is not None:
            return status
        self.stop_gobackup(gobackup)
        if self.settings.once:
            log("error: GoBackup was stopped before it had performed every model")
            return 1
        return 0

    def wait_for_backups(self, gobackup: Child) -> bool:
        """While GoBackup runs: waits for the running backups, and a few
        seconds after the last for its notifiers. False when the grace ran
        out on a running backup (it is named)."""
        grace = self.settings.grace
        deadline = self.clock.now() + grace
        report_at = idle_since = None
        while gobackup.poll() is None:
            models, now = self.config.running_models(), self.clock.now()
            if models:
                idle_since = None
                if now >= deadline:
                    log(f"error: grace of {grace} s ran out; cutting off {models}")
                    return False
                if report_at is None:
                    log(f"stop requested; waiting for {models} to finish (grace {grace} s)")
                    report_at = now + REPORT_EVERY_SECONDS
                elif now >= report_at:
                    log(f"still waiting for {models} to finish ({round(deadline - now)} s of the grace left)")
                    report_at = now + REPORT_EVERY_SECONDS
            elif report_at is None:
                log("stop requested; no backup is running, stopping GoBackup")
                return True
            elif idle_since is None:
                idle_since = now
            elif now - idle_since >= AFTER_RUN_SECONDS or now >= deadline:
                log("the backup finished; stopping GoBackup")
                return True
            self.clock.sleep(1)
        return True

    def stop_gobackup(self, gobackup: Child) -> int:
        """Stops GoBackup and whatever it started (sqlpackage, tar), then
        collects its status."""
        gobackup.signal(signal.SIGTERM, group=True)
        for _ in range(TERM_TRIES):
            if gobackup.poll() is not None:
                break
            self.clock.sleep(TERM_POLL_SECONDS)
        gobackup.signal(signal.SIGKILL, group=True)
        return gobackup.wait()


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="backup-supervisor",
        description="Run GoBackup with the notification relay, the metrics exporter and the proof scheduler;"
        " on SIGTERM or SIGINT let running backups finish within STOP_GRACE_PERIOD, then stop it."
        " docker-entrypoint starts it after checking the configuration.",
    )
    parser.add_argument("--config", type=Path, required=True, help="GoBackup's config, as the entrypoint checked it")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    arguments = parse_arguments(argv)
    stop = StopRequest()
    stop.install()
    environment = dict(os.environ if environ is None else environ)
    try:
        settings = Settings.from_environment(arguments.config, environment)
        return Supervisor(settings, BackupConfig(arguments.config, environment), stop).run()
    except Fatal as error:
        log(f"error: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
