"""Runs the restore drills and the coverage check of the backup container on
their schedules, and alerts through the notification relay when one finds a
problem.

  backup-proof-scheduler --config /etc/gobackup/gobackup.yml

Started by the entrypoint in daemon mode. Reads restore.yml beside the config:
each model's drill_schedule and coverage.schedule (robfig cron, as GoBackup's
schedule.cron: the container's local time, TZ). A drill is
`backup-restore --model M --drill`; drills run one at a time, in the order
they fell due, and a drill whose model is being backed up (a GoBackup temp
folder of the model in the workdir) waits until the backup is over. A
schedule that fires while its previous drill is still waiting or running is
skipped. The coverage check is `backup-coverage`, beside the drills, one at a
time too. A failed drill, and each database a coverage check finds uncovered
that the last checks had not, is posted as {"title", "message"} to every
channel of the notification relay, as GoBackup's webhook notifiers post.

SIGTERM or SIGINT: nothing new starts, a running coverage check is stopped, a
running drill gets FINISH_SECONDS to end, then SIGTERM (backup-restore drops
its scratch database on it) and CLEANUP_SECONDS more before it is killed.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlserver_backup import (
    config_errors,
    go_gocron,
    go_robfig_cron,
    go_time_location,
    gobackup_config,
    gobackup_env,
    notify_settings,
    restore_rules,
    temp_paths,
)

DEFAULT_CONFIG = Path("/etc/gobackup/gobackup.yml")
TICK_SECONDS = 1.0
FINISH_SECONDS = 10.0
CLEANUP_SECONDS = 15.0
RELAY_TIMEOUT_SECONDS = 30
# While a drill waits for its model's backup, it says so again this often.
WAIT_REPORT_SECONDS = 600
KEPT_LINES = 200
UNCOVERED_LINE = re.compile(r"^UNCOVERED server=(\S+) database=(.+)$")


def log(message: str) -> None:
    print(f"backup-proof-scheduler: {message}", file=sys.stderr, flush=True)


class Process(Protocol):
    """What the scheduler needs of a program it started."""

    lines: collections.deque[str]

    def poll(self) -> int | None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def wait(self, timeout: float) -> int | None: ...


class Child:
    """A program in a session of its own (a kill reaches sqlpackage and
    sqlcmd too); its output is logged line by line and its last lines kept."""

    def __init__(self, command: list[str], label: str) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=KEPT_LINES)
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self.read, args=(label,), daemon=True)
        self.reader.start()

    def read(self, label: str) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            log(f"{label}: {line}")

    def poll(self) -> int | None:
        status = self.process.poll()
        if status is not None:
            self.reader.join(timeout=5)  # every line read before the result is
        return status

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def wait(self, timeout: float) -> int | None:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.poll()


@dataclass
class Job:
    """A drill of a model (model set) or the coverage check (model None)."""

    model: str | None
    expression: str
    schedule: Any
    next_at: float = 0.0

    @property
    def what(self) -> str:
        return f"drill of model {self.model}" if self.model else "coverage check"


def post_to_relay(channels: Mapping[str, int], title: str, message: str) -> None:
    """What GoBackup's webhook notifier sends, to each channel of the relay."""
    body = json.dumps({"title": title, "message": message}).encode()
    for channel, port in sorted(channels.items()):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/{channel}",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=RELAY_TIMEOUT_SECONDS) as response:  # noqa: S310
                response.read()
        except OSError as error:
            log(f"error: the {channel} alert was not sent: {error}")


@dataclass
class Scheduler:
    jobs: list[Job]
    workdir: Path
    channels: Mapping[str, int]
    clock: Callable[[], float] = time.time
    zone: datetime.tzinfo = field(default_factory=go_time_location.local_zone)
    drill_command: Callable[[str], list[str]] = lambda model: ["backup-restore", "--model", model, "--drill"]
    coverage_command: list[str] = field(default_factory=lambda: ["backup-coverage"])
    spawn: Callable[[list[str], str], Process] = Child
    post: Callable[[Mapping[str, int], str, str], None] = post_to_relay
    running_backups: Callable[[Path], list[str]] = temp_paths.running_jobs
    finish_seconds: float = FINISH_SECONDS
    cleanup_seconds: float = CLEANUP_SECONDS
    queue: list[str] = field(default_factory=list)
    drill: tuple[str, Process] | None = None
    coverage: Process | None = None
    coverage_due: bool = False
    waiting: tuple[str, float] | None = None  # (model, when it was last said)
    alerted: set[tuple[str, str]] = field(default_factory=set)  # uncovered (server, database) already told

    def __post_init__(self) -> None:
        now = self.clock()
        for job in self.jobs:
            job.next_at = self.next_after(job, now)
            log(f"{job.what} at '{job.expression}' (next {self.moment(job.next_at)})")

    def moment(self, unix: float) -> str:
        return datetime.datetime.fromtimestamp(unix, self.zone).strftime("%Y-%m-%d %H:%M:%S %Z") if unix else "never"

    def next_after(self, job: Job, now: float) -> float:
        found = job.schedule.next(datetime.datetime.fromtimestamp(now, self.zone))
        return found.timestamp() if found is not None else 0.0

    def step(self) -> None:
        """Once a tick: what fell due is queued, what ended is reported, the next drill starts."""
        now = self.clock()
        for job in self.jobs:
            if not job.next_at or job.next_at > now:
                continue
            job.next_at = self.next_after(job, now)
            if job.model is None:
                if self.coverage is not None or self.coverage_due:
                    log("coverage check skipped: the previous one is still running")
                self.coverage_due = True
            elif job.model in self.queue or (self.drill and self.drill[0] == job.model):
                log(f"drill of model {job.model} skipped: its previous drill is still waiting or running")
            else:
                self.queue.append(job.model)
        self.reap(now)
        if self.coverage is None and self.coverage_due:
            self.coverage_due = False
            log("starting the coverage check")
            self.coverage = self.spawn(self.coverage_command, "coverage")
        if self.drill is None and self.queue:
            model = self.queue[0]
            if model in self.running_backups(self.workdir):
                if self.waiting is None or self.waiting[0] != model or now - self.waiting[1] >= WAIT_REPORT_SECONDS:
                    log(f"drill of model {model} waits: a backup of model {model} is running")
                    self.waiting = (model, now)
                return
            self.queue.pop(0)
            if self.waiting and self.waiting[0] == model:
                log(f"the backup of model {model} is over; starting its drill")
            else:
                log(f"starting the drill of model {model}")
            self.waiting = None
            self.drill = (model, self.spawn(self.drill_command(model), f"drill {model}"))

    def reap(self, now: float) -> None:
        if self.drill is not None:
            model, process = self.drill
            status = process.poll()
            if status is not None:
                self.drill = None
                self.drill_ended(model, status, list(process.lines), now)
        if self.coverage is not None:
            status = self.coverage.poll()
            if status is not None:
                lines, self.coverage = list(self.coverage.lines), None
                self.coverage_ended(status, lines, now)

    def drill_ended(self, model: str, status: int, lines: list[str], now: float) -> None:
        if status == 0:
            log(f"drill of model {model} passed")
            return
        log(f"error: drill of model {model} failed (exit {status})")
        failures = [line for line in lines if line.startswith("DRILL FAIL")] or lines[-10:]
        self.post(
            self.channels,
            f"[GoBackup] Err: Restore drill of {model} has failed",
            f"Restore drill of {model} failed at {self.moment(now)}: a database of the model is not proven"
            f" restorable.\n\n" + "\n".join(failures),
        )

    def coverage_ended(self, status: int, lines: list[str], now: float) -> None:
        found = [match.groups() for match in map(UNCOVERED_LINE.match, lines) if match]
        if status not in (0, 1):
            log(f"error: the coverage check could not check every server (exit {status})")
        if status == 0:
            self.alerted.clear()
            return
        if status == 1:
            # A database stays told while it stays uncovered; one covered since is forgotten.
            self.alerted &= set(found)
        new = [(server, database) for server, database in found if (server, database) not in self.alerted]
        if not new:
            return
        self.alerted |= set(new)
        self.post(
            self.channels,
            f"[GoBackup] Err: {len(new)} database(s) without a backup",
            f"Coverage check at {self.moment(now)}: no model backs up these databases; add each to a model or to"
            " the coverage ignore list.\n\n"
            + "\n".join(f"UNCOVERED server={server} database={database}" for server, database in new),
        )

    def run(self, stopped: Callable[[], bool], tick: float = TICK_SECONDS) -> None:
        while not stopped():
            self.step()
            time.sleep(tick)
        self.shutdown()

    def shutdown(self) -> None:
        """A stop: the coverage check ends now, a drill within the bounds."""
        if self.coverage is not None:
            self.coverage.terminate()
            if self.coverage.wait(self.cleanup_seconds) is None:
                self.coverage.kill()
            self.coverage = None
        if self.queue:
            log(f"stopping; drills not started: model {', '.join(self.queue)}")
            self.queue.clear()
        if self.drill is None:
            return
        model, process = self.drill
        self.drill = None
        log(f"stopping; letting the drill of model {model} finish (up to {self.finish_seconds:g} s)")
        status = process.wait(self.finish_seconds)
        if status is not None:  # it ended by itself: its result stands
            self.drill_ended(model, status, list(process.lines), self.clock())
            return
        log(f"stopping the drill of model {model}: it drops its scratch database")
        process.terminate()
        status = process.wait(self.cleanup_seconds)
        if status is None:
            process.kill()
            process.wait(5)
            log(
                f"error: killed the drill of model {model} after {self.cleanup_seconds:g} s: its scratch database"
                " may be left on the restore server (its name ends in _drill_<time>)"
            )
        else:
            log(f"the drill of model {model} stopped (exit {status})")


def jobs_of(document: Mapping[str, Any], settings: Mapping[str, Any]) -> list[Job]:
    """The drills of restore.yml's models that are in the config, and the coverage check."""
    jobs = []
    models = settings.get("models") if isinstance(settings.get("models"), dict) else {}
    for model in sorted(document.get("models") or {}):
        entry = models.get(model)
        expression = str(entry.get("drill_schedule") or "") if isinstance(entry, dict) else ""
        if expression:
            jobs.append(Job(model, expression, go_gocron.parse_cron(expression)))
    coverage = settings.get("coverage") if isinstance(settings.get("coverage"), dict) else {}
    expression = str(coverage.get("schedule") or "")
    if expression:
        jobs.append(Job(None, expression, go_gocron.parse_cron(expression)))
    return jobs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="the GoBackup configuration in use")
    arguments = parser.parse_args(argv)
    # The handlers only set a flag (the loop notices within a tick): nothing
    # that takes a lock runs inside a signal handler.
    stop_requested: list[int] = []
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda number, _frame: stop_requested.append(number))
    try:
        document, environment = gobackup_config.load(arguments.config, gobackup_env.resolve_file_env(os.environ))
        settings = restore_rules.load_restore_settings(arguments.config, environment)
        jobs = jobs_of(document, settings)
        workdir = temp_paths.workdir(document)
    except config_errors.ConfigError as error:
        for reason in error.reasons:
            log(f"config error: {reason}")
        return 1
    except go_robfig_cron.CronError as error:
        log(f"config error: restore.yml: {error}")
        return 1
    if not jobs:
        settings_file = arguments.config.parent / restore_rules.RESTORE_SETTINGS
        where = "in restore.yml" if settings_file.is_file() else f"(no {settings_file})"
        log(f"no drill_schedule or coverage schedule {where}: no drills or coverage checks are scheduled")
        while not stop_requested:
            time.sleep(TICK_SECONDS)
        return 0
    channels = notify_settings.relay_channels(document)
    if not channels:
        log("the configuration has no notifiers: failed drills and uncovered databases are only logged")
    config = str(arguments.config)
    scheduler = Scheduler(
        jobs,
        workdir,
        channels,
        drill_command=lambda model: ["backup-restore", "--config", config, "--model", model, "--drill"],
        coverage_command=["backup-coverage", "--config", config],
    )
    scheduler.run(lambda: bool(stop_requested))
    return 0
