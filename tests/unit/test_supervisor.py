"""backup-supervisor's logic without Docker and without waiting: GoBackup, the
relay and the helpers are fakes, time is a fake clock that moves only when
the supervisor sleeps, and a stop request or a backup's end is an event on
that clock. tests/unit/test_entrypoint.py runs the real thing end to end."""

from __future__ import annotations

import io
import itertools
import re
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlserver_backup import supervisor
from sqlserver_backup.supervisor import Fatal, RelayKeeper, Settings, StopRequest, Supervisor
from sqlserver_backup_testing import wait_until

CONFIG = Path("/etc/gobackup/gobackup.yml")
PIDS = itertools.count(1000)


class FakeClock:
    """Time moves only when the supervisor sleeps; events fire when it passes them."""

    def __init__(self) -> None:
        self.time = 0.0
        self.events: list[tuple[float, Callable[[], object]]] = []

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.time = round(self.time + seconds, 6)
        for event in [event for event in self.events if event[0] <= self.time]:
            self.events.remove(event)
            event[1]()

    def at(self, when: float, action: Callable[[], object]) -> None:
        self.events.append((when, action))


class FakeChild:
    """A process that exits when told, or on SIGKILL, or on SIGTERM unless
    it ignores it; it records the signals it got."""

    def __init__(self, command: list[str], output: bytes = b"", ignores_term: bool = False) -> None:
        self.command, self.pid, self.ignores_term = command, next(PIDS), ignores_term
        self.stdout: io.BytesIO | None = io.BytesIO(output)
        self.status: int | None = None
        self.signals: list[tuple[int, bool]] = []

    def exit(self, status: int) -> None:
        if self.status is None:
            self.status = status

    def poll(self) -> int | None:
        return self.status

    def wait(self) -> int:
        assert self.status is not None, f"{self.command[0]} would never end"
        return self.status

    def signal(self, number: int, group: bool = False) -> None:
        self.signals.append((number, group))
        if number == signal.SIGKILL or not self.ignores_term:
            self.exit(128 + number)


class FakeConfig:
    """Models that run while the clock is in one of their intervals."""

    relay_port = None

    def __init__(self, clock: FakeClock, runs: dict[str, tuple[float, float]] | None = None, workers: int = 1) -> None:
        self.clock, self.runs = clock, runs or {}
        self.worker_configs = (
            [CONFIG.parent / f"gobackup-worker-{number}.yml" for number in range(1, workers + 1)]
            if workers > 1
            else [CONFIG]
        )

    def running_models(self) -> str:
        models = sorted(model for model, (start, end) in self.runs.items() if start <= self.clock.now() < end)
        return f"{'model' if len(models) == 1 else 'models'} {', '.join(models)}" if models else ""

    def storages(self) -> list[str]:
        return ["model sales uploads to minio http://minio:9000 bucket backups path sales"]


class Harness:
    """A supervisor with fakes around it; gobackup is the fake GoBackup it starts."""

    def __init__(
        self, once: bool = False, grace: int = 600, metrics_port: int | None = None, workers: int = 1, **gobackup
    ) -> None:
        self.clock, self.stop, self.output = FakeClock(), StopRequest(), io.BytesIO()
        self.config = FakeConfig(self.clock, workers=workers)
        # One fake GoBackup per worker; gobackup is worker 1's.
        self.gobackups = [FakeChild(["gobackup"], **gobackup) for _ in range(workers)]
        self.gobackup = self.gobackups[0]
        self.started: list[FakeChild] = []
        settings = Settings(CONFIG, once=once, grace=grace, metrics_port=metrics_port, time_zone="UTC")
        self.supervisor = Supervisor(settings, self.config, self.stop, self.spawn, self.clock, self.output)

    def spawn(self, command: list[str], capture_output: bool) -> FakeChild:
        if command[0] == "gobackup":
            child = self.gobackups[self.config.worker_configs.index(Path(command[-1]))]
        else:
            child = FakeChild(command)
        child.command = command
        if not capture_output:
            child.stdout = None
        self.started.append(child)
        return child

    def child(self, program: str) -> FakeChild:
        (found,) = [child for child in self.started if child.command[0] == program]
        return found

    def run(self) -> int:
        return self.supervisor.run()


def logged(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_a_stop_while_idle_stops_gobackup_at_once_and_exits_0(capsys) -> None:
    harness = Harness(metrics_port=9850)
    harness.clock.at(1, harness.stop)
    assert harness.run() == 0
    assert logged(capsys) == [
        "docker-entrypoint: starting the GoBackup scheduler (TZ=UTC)",
        "docker-entrypoint: stop requested; no backup is running, stopping GoBackup",
    ]
    assert harness.gobackup.command == ["gobackup", "run", "-c", str(CONFIG)]
    assert harness.gobackup.signals == [(signal.SIGTERM, True), (signal.SIGKILL, True)], "its whole group"
    assert harness.clock.now() < 1.5, "no wait"
    metrics, proof = harness.child("backup-metrics"), harness.child("backup-proof-scheduler")
    assert metrics.command == ["backup-metrics", "--port", "9850", "--config", str(CONFIG)]
    assert metrics.signals == [(signal.SIGTERM, False)]
    assert proof.command == ["backup-proof-scheduler", "--config", str(CONFIG)]
    assert proof.signals[0] == (signal.SIGTERM, False), "the stop reaches the proof scheduler at once"


def test_without_metrics_port_no_exporter_starts() -> None:
    harness = Harness()
    harness.clock.at(1, harness.stop)
    assert harness.run() == 0
    assert [child.command[0] for child in harness.started] == ["backup-proof-scheduler", "gobackup"]


def test_a_stop_while_a_model_runs_waits_for_it_then_for_its_notifiers(capsys) -> None:
    harness = Harness()
    harness.config.runs = {"sales": (0, 45)}
    harness.clock.at(1, harness.stop)
    assert harness.run() == 0
    lines = logged(capsys)
    assert lines[1] == "docker-entrypoint: stop requested; waiting for model sales to finish (grace 600 s)"
    assert lines[2] == "docker-entrypoint: still waiting for model sales to finish (570 s of the grace left)"
    assert lines[3:] == ["docker-entrypoint: the backup finished; stopping GoBackup"]
    assert 45 + supervisor.AFTER_RUN_SECONDS <= harness.clock.now() < 45 + supervisor.AFTER_RUN_SECONDS + 2
    assert harness.gobackup.signals[0] == (signal.SIGTERM, True), "stopped only once the backup had finished"


def test_every_running_model_is_named(capsys) -> None:
    harness = Harness()
    harness.config.runs = {"sales": (0, 5), "hr": (0, 5)}
    harness.clock.at(1, harness.stop)
    assert harness.run() == 0
    assert "docker-entrypoint: stop requested; waiting for models hr, sales to finish (grace 600 s)" in logged(capsys)


def test_a_grace_that_runs_out_cuts_off_the_model_naming_it(capsys) -> None:
    harness = Harness(grace=1, ignores_term=True)
    harness.config.runs = {"sales": (0, 3600)}
    harness.clock.at(1, harness.stop)
    assert harness.run() == 1
    assert logged(capsys)[1:] == [
        "docker-entrypoint: stop requested; waiting for model sales to finish (grace 1 s)",
        "docker-entrypoint: error: grace of 1 s ran out; cutting off model sales",
    ]
    assert harness.gobackup.signals == [(signal.SIGTERM, True), (signal.SIGKILL, True)]
    # A GoBackup that ignores SIGTERM gets SIGKILL after 50 x 0.2 s.
    assert 12 <= harness.clock.now() < 13


def test_a_grace_of_0_cuts_off_at_once(capsys) -> None:
    harness = Harness(grace=0)
    harness.config.runs = {"sales": (0, 3600)}
    harness.clock.at(1, harness.stop)
    assert harness.run() == 1
    assert logged(capsys)[1:] == ["docker-entrypoint: error: grace of 0 s ran out; cutting off model sales"]


@pytest.mark.parametrize(("status", "exit_status"), [(0, 1), (2, 2), (137, 137)])
def test_a_daemon_whose_gobackup_exits_by_itself_fails(capsys, status: int, exit_status: int) -> None:
    harness = Harness()
    harness.clock.at(5, lambda: harness.gobackup.exit(status))
    assert harness.run() == exit_status
    assert logged(capsys)[1:] == [
        f"docker-entrypoint: error: GoBackup exited by itself (exit {status}); its reason is above"
    ]
    assert harness.child("backup-proof-scheduler").signals == [(signal.SIGTERM, False)], "the helpers stop too"


def test_gobackup_exiting_during_the_wait_gives_its_status() -> None:
    harness = Harness(once=True)
    harness.config.runs = {"sales": (0, 3600)}
    harness.clock.at(1, harness.stop)
    harness.clock.at(10, lambda: harness.gobackup.exit(3))
    assert harness.run() == 3
    assert harness.gobackup.signals == [], "nothing left to stop"


def test_once_mode_performs_every_model_and_exits_with_its_status(capsys) -> None:
    harness = Harness(once=True)
    harness.clock.at(5, lambda: harness.gobackup.exit(0))
    assert harness.run() == 0
    assert harness.gobackup.command == ["gobackup", "perform", "-c", str(CONFIG)]
    assert logged(capsys) == ["docker-entrypoint: running every model once"]
    assert harness.started == [harness.gobackup], "no scheduler helpers in once mode"


def test_a_failed_one_shot_run_names_where_each_model_uploads(capsys) -> None:
    harness = Harness(once=True)
    harness.clock.at(5, lambda: harness.gobackup.exit(1))
    assert harness.run() == 1
    assert logged(capsys)[1:] == [
        "docker-entrypoint: error: the backup failed (exit 1); GoBackup's reason is above",
        "docker-entrypoint: model sales uploads to minio http://minio:9000 bucket backups path sales",
    ]


def test_a_one_shot_run_stopped_while_idle_did_not_perform_every_model(capsys) -> None:
    harness = Harness(once=True)
    harness.clock.at(1, harness.stop)
    assert harness.run() == 1
    assert logged(capsys)[1:] == [
        "docker-entrypoint: stop requested; no backup is running, stopping GoBackup",
        "docker-entrypoint: error: GoBackup was stopped before it had performed every model",
    ]


def test_a_stopped_one_shot_run_finishes_its_backup_and_exits_with_its_status(capsys) -> None:
    harness = Harness(once=True)
    harness.config.runs = {"sales": (0, 20)}
    harness.clock.at(1, harness.stop)
    harness.clock.at(20, lambda: harness.gobackup.exit(0))
    assert harness.run() == 0
    assert "docker-entrypoint: stop requested; waiting for model sales to finish (grace 600 s)" in logged(capsys)


def test_each_worker_runs_a_scheduler_of_its_own_and_a_stop_waits_for_all_of_them(capsys) -> None:
    harness = Harness(workers=2)
    harness.config.runs = {"sales": (0, 20), "inventory": (0, 30)}
    harness.clock.at(1, harness.stop)
    assert harness.run() == 0
    assert [child.command for child in harness.gobackups] == [
        ["gobackup", "run", "-c", "/etc/gobackup/gobackup-worker-1.yml"],
        ["gobackup", "run", "-c", "/etc/gobackup/gobackup-worker-2.yml"],
    ]
    assert logged(capsys)[:2] == [
        "docker-entrypoint: starting the GoBackup scheduler in 2 GoBackup workers (TZ=UTC)",
        "docker-entrypoint: stop requested; waiting for models inventory, sales to finish (grace 600 s)",
    ]
    assert harness.clock.now() >= 30, "the stop waited for the longer run, on the other worker"
    for gobackup in harness.gobackups:
        assert gobackup.signals == [(signal.SIGTERM, True), (signal.SIGKILL, True)]


def test_a_worker_that_exits_stops_the_others_after_their_running_backups(capsys) -> None:
    harness = Harness(workers=3)
    harness.config.runs = {"sales": (0, 40)}
    harness.clock.at(5, lambda: harness.gobackups[1].exit(2))
    assert harness.run() == 2
    assert logged(capsys)[1:] == [
        "docker-entrypoint: error: a GoBackup worker exited (exit 2); the others stop after their running backups",
        "docker-entrypoint: stop requested; waiting for model sales to finish (grace 600 s)",
        "docker-entrypoint: still waiting for model sales to finish (570 s of the grace left)",
        "docker-entrypoint: the backup finished; stopping GoBackup",
        "docker-entrypoint: error: GoBackup exited by itself (exit 2); its reason is above",
    ]
    assert harness.clock.now() >= 40, "worker 1's backup was not cut off"
    assert harness.gobackups[0].signals[0] == (signal.SIGTERM, True)
    assert harness.gobackups[2].signals[0] == (signal.SIGTERM, True)


def test_a_one_shot_run_performs_each_workers_models_at_once_and_waits_for_all(capsys) -> None:
    harness = Harness(once=True, workers=2)
    harness.clock.at(5, lambda: harness.gobackups[0].exit(0))
    harness.clock.at(9, lambda: harness.gobackups[1].exit(1))
    assert harness.run() == 1
    assert [child.command[:2] for child in harness.gobackups] == [["gobackup", "perform"]] * 2
    assert logged(capsys)[0] == "docker-entrypoint: running every model once in 2 GoBackup workers"
    assert harness.clock.now() >= 9
    assert [child.signals for child in harness.gobackups] == [[], []], "both ran to their end"


GIN_STATUS = b'[GIN] 2026/11/24 - 11:28:09 | 200 |      52.1\xc2\xb5s |       127.0.0.1 | GET      "/status"'
GIN_METRICS = b'[GIN] 2026/11/24 - 11:28:09 | 200 |    1.203811ms |       127.0.0.1 | GET      "/metrics"'
KEPT_LINES = [
    b'[GIN] 2026/11/24 - 11:28:10 | 200 |     173.696\xc2\xb5s |       127.0.0.1 | POST     "/api/perform"',
    b'[GIN] 2026/11/24 - 11:28:11 | 200 |      80.1\xc2\xb5s |       127.0.0.1 | GET      "/api/config"',
    b'[GIN] 2026/11/24 - 11:28:12 | 404 |       3.2\xc2\xb5s |       127.0.0.1 | GET      "/status"',
    b'2026/11/24 11:28:13 [Scheduler: sales] Failed to perform: GET "/status"',
    b"2026/11/24 11:28:14 [MinIO] [====------] 40.00% (? p/s)\r[MinIO] [======----] 60.00% (? p/s)",
    b"",
]


def test_probe_request_lines_are_dropped_and_every_other_line_kept() -> None:
    lines = [GIN_STATUS, KEPT_LINES[0], GIN_METRICS, *KEPT_LINES[1:], GIN_STATUS]
    output = io.BytesIO()
    supervisor.drop_probe_lines(io.BytesIO(b"\n".join(lines) + b"\n"), output)
    assert output.getvalue().split(b"\n")[:-1] == KEPT_LINES


def test_gobackups_output_reaches_the_output_without_probe_lines() -> None:
    harness = Harness(output=b"\n".join([GIN_STATUS, b"[Scheduler] Register sales", b"unterminated"]))
    harness.clock.at(1, harness.stop)
    assert harness.run() == 0
    assert harness.output.getvalue() == b"[Scheduler] Register sales\nunterminated\n"


class FakeRelay:
    """A relay the keeper waits for in its thread: it ends when it crashes or
    on SIGTERM."""

    def __init__(self) -> None:
        self.pid, self.stdout, self.ended, self.signals = next(PIDS), None, threading.Event(), []

    def poll(self) -> int | None:
        return 0 if self.ended.is_set() else None

    def wait(self) -> int:
        self.ended.wait()
        return 0

    def signal(self, number: int, group: bool = False) -> None:
        self.signals.append(number)
        self.ended.set()


class RelaySpawn:
    def __init__(self) -> None:
        self.relays: list[FakeRelay] = []
        self.commands: list[list[str]] = []

    def __call__(self, command: list[str], capture_output: bool) -> FakeRelay:
        self.commands.append(command)
        self.relays.append(FakeRelay())
        return self.relays[-1]


def test_a_relay_that_crashes_after_its_start_is_started_again(capsys) -> None:
    clock, spawn = FakeClock(), RelaySpawn()
    keeper = RelayKeeper(["notify-relay", str(CONFIG)], spawn, clock)
    keeper.start()
    wait_until(lambda: len(spawn.relays) == 1, "the relay's start", 5, interval=0.01)
    clock.sleep(supervisor.RELAY_MIN_UPTIME_SECONDS)
    spawn.relays[0].ended.set()  # killed: out of memory, say
    wait_until(lambda: len(spawn.relays) == 2, "the relay's second start", 5, interval=0.01)
    assert keeper.alive()
    keeper.stop()
    assert not keeper.alive()
    assert spawn.relays[1].signals == [signal.SIGTERM]
    assert spawn.commands == [["notify-relay", str(CONFIG)]] * 2
    assert logged(capsys) == ["docker-entrypoint: warning: the notification relay stopped; starting it again"]


def test_a_relay_that_stops_at_once_is_not_started_again(capsys) -> None:
    clock, spawn = FakeClock(), RelaySpawn()
    keeper = RelayKeeper(["notify-relay", str(CONFIG)], spawn, clock)
    keeper.start()
    wait_until(lambda: len(spawn.relays) == 1, "the relay's start", 5, interval=0.01)
    spawn.relays[0].ended.set()  # its port taken, say
    wait_until(lambda: not keeper.alive(), "the keeper to give up", 5, interval=0.01)
    assert len(spawn.relays) == 1
    assert logged(capsys) == [
        "docker-entrypoint: error: the notification relay stopped within 5 s of its start (reason above);"
        " notifications are not sent"
    ]


def test_gobackup_does_not_start_when_the_relay_does_not(capsys) -> None:
    class ExitingAtOnce(RelaySpawn):
        def __call__(self, command: list[str], capture_output: bool) -> FakeRelay:
            relay = super().__call__(command, capture_output)
            relay.ended.set()
            return relay

    class PatientClock(FakeClock):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            time.sleep(0.01)  # lets the keeper's thread see its relay end

    harness = Harness()
    harness.config.relay_port = 9  # nothing listens there
    harness.supervisor.spawn, harness.supervisor.clock = ExitingAtOnce(), PatientClock()
    with pytest.raises(Fatal, match=r"^the notification relay did not start \(reason above\)$"):
        harness.run()
    assert harness.gobackup.command == ["gobackup"], "GoBackup was not started"


def test_a_real_group_is_stopped_with_what_gobackup_started() -> None:
    child = supervisor.Process(["sh", "-c", "sleep 60 & echo $!; wait"], capture_output=True)
    assert child.stdout is not None
    sleeper = int(child.stdout.readline())
    child.signal(signal.SIGTERM, group=True)
    assert child.wait() == 128 + signal.SIGTERM
    wait_until(lambda: process_state(sleeper) in (None, "Z"), "the background sleep to end", 5, interval=0.01)


def process_state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def test_a_program_that_cannot_start_is_named() -> None:
    with pytest.raises(Fatal, match=r"^cannot start /nonexistent/gobackup: No such file or directory$"):
        supervisor.Process(["/nonexistent/gobackup"])


def test_a_stop_request_is_a_flag_and_reaches_its_listeners() -> None:
    stop, heard = StopRequest(), []
    stop.on_request.append(lambda: heard.append("proof scheduler"))
    stop(signal.SIGINT, None)
    assert stop.requested
    assert heard == ["proof scheduler"]


def test_settings_take_an_empty_value_for_the_default() -> None:
    environment = {"RUN_MODE": "", "STOP_GRACE_PERIOD": "", "METRICS_PORT": "", "TZ": ""}
    assert Settings.from_environment(CONFIG, environment) == Settings(CONFIG, False, 3600, None, "UTC")
    environment = {"RUN_MODE": "once", "STOP_GRACE_PERIOD": "0600", "METRICS_PORT": "09850", "TZ": "Asia/Tokyo"}
    assert Settings.from_environment(CONFIG, environment) == Settings(CONFIG, True, 600, 9850, "Asia/Tokyo")


def test_an_unreadable_config_is_named(tmp_path: Path) -> None:
    with pytest.raises(Fatal, match=f"^cannot read {re.escape(str(tmp_path / 'absent.yml'))}: "):
        supervisor.BackupConfig(tmp_path / "absent.yml", {})


def test_the_running_models_are_read_from_gobackups_temp_folders(tmp_path: Path) -> None:
    config = tmp_path / "gobackup.yml"
    config.write_text(f"workdir: {tmp_path / 'work'}\nmodels: {{}}\n")
    backup_config = supervisor.BackupConfig(config, {})
    assert backup_config.running_models() == ""
    (tmp_path / "work" / "1795522886150511404" / "sales").mkdir(parents=True)
    (tmp_path / "work" / "1795522886150511405" / "hr").mkdir(parents=True)
    (tmp_path / "work" / "tmp" / "not-a-run").mkdir(parents=True)
    assert backup_config.running_models() == "models hr, sales"
