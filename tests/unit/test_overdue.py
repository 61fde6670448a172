"""One rule for when a backup is overdue (health check, backup-status,
metrics): the model's RPO grace plus the measured time of the runs that queue
with it under GoBackup's one lock, so a model waiting its turn is never
called overdue, and a model nothing delays still is."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from sqlserver_backup import healthcheck, overdue, state_files, status

UTC = datetime.timezone.utc
DUE = datetime.datetime(2026, 11, 23, 2, 0, 0, tzinfo=UTC).timestamp()
STARTED = DUE - 3600
HOUR = 3600
STORAGES = {"minio": {"type": "minio", "endpoint": "http://minio:9000", "bucket": "backups"}}


def nightly(count: int, cron: str = "0 2 * * *") -> dict:
    """`count` models db0.. on one schedule."""
    return {"models": {f"db{n}": model(cron, f"DB{n}") for n in range(count)}}


def model(cron: str, database: str = "Sales") -> dict:
    databases = {database.lower(): {"type": "mssql", "host": "mssql", "database": database}}
    return {"schedule": {"cron": cron}, "databases": databases, "storages": STORAGES}


def test_a_model_measured_alone_has_its_rpo_grace_plus_its_own_run() -> None:
    grace = overdue.Grace(nightly(1), {}, {"db0": 600.5}, UTC, default=HOUR)
    assert grace.seconds("db0", DUE) == HOUR + 601


def test_models_due_at_the_same_minute_queue_behind_each_other() -> None:
    """100 databases at 02:00, 5 minutes each: any of them may start 8 h 15 min late."""
    document = nightly(100)
    measured = {f"db{n}": 300.0 for n in range(100)}
    assert overdue.Grace(document, {}, measured, UTC, default=HOUR).seconds("db99", DUE) == HOUR + 100 * 300


def test_a_model_queues_only_with_the_models_of_its_own_worker() -> None:
    """100 databases at 02:00 in 4 workers (separate GoBackup processes, each
    with its own lock): a model waits for the 25 runs of its worker only."""
    document = nightly(100)
    measured = {f"db{n}": 300.0 for n in range(100)}
    workers = [[f"db{n}" for n in range(worker, 100, 4)] for worker in range(4)]
    grace = overdue.Grace(document, {}, measured, UTC, default=HOUR, workers=workers)
    assert grace.seconds("db99", DUE) == HOUR + 25 * 300


def test_a_model_on_another_schedule_is_not_in_the_queue() -> None:
    document = nightly(2)
    document["models"]["noon"] = model("0 12 * * *")
    measured = {"db0": 600.0, "db1": 600.0, "noon": 600.0}
    assert overdue.Grace(document, {}, measured, UTC).queue_seconds("db0", DUE) == 1200


def test_a_run_that_fell_due_shortly_before_can_still_hold_the_lock() -> None:
    """A model at 01:50 taking 20 minutes still runs at 02:00."""
    document = nightly(1)
    document["models"]["early"] = model("50 1 * * *")
    measured = {"db0": 300.0, "early": 1200.0}
    assert overdue.Grace(document, {}, measured, UTC).queue_seconds("db0", DUE) == 1500


def test_the_grace_is_settable_per_model_in_restore_yml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(overdue.DEFAULT_GRACE_VARIABLE, "900")
    targets = {"models": {"db0": {"rpo_grace_seconds": 7200}}}
    grace = overdue.Grace(nightly(2), targets, {}, UTC)
    assert grace.seconds("db0", DUE) == 7200
    assert grace.seconds("db1", DUE) == 900, "restore.yml names none"
    monkeypatch.delenv(overdue.DEFAULT_GRACE_VARIABLE)
    assert overdue.rpo_grace("db1", targets) == 3600


def test_last_duration_reads_the_runs_since_the_last_reading() -> None:
    assert overdue.last_duration(3, 90.0, (2, 60.0)) == (30.0, (3, 90.0))
    assert overdue.last_duration(4, 130.0, (2, 60.0)) == (35.0, (4, 130.0)), "two runs: their mean"
    assert overdue.last_duration(2, 60.0, (2, 60.0)) == (None, (2, 60.0)), "no run ended"
    assert overdue.last_duration(1, 12.0, (5, 300.0)) == (12.0, (1, 12.0)), "GoBackup started over"


def test_durations_are_recorded_on_the_state_volume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_files, "STATE_DIR", tmp_path)
    assert overdue.record_durations({"sales": (1, 40.0)}, STARTED) == {"sales": 40.0}
    assert overdue.record_durations({"sales": (1, 40.0)}, STARTED) == {"sales": 40.0}, "no new run: the last is kept"
    assert overdue.record_durations({"sales": (3, 100.0), "hr": (2, 10.0)}, STARTED) == {"sales": 30.0, "hr": 5.0}
    assert overdue.durations() == {"sales": 30.0, "hr": 5.0}
    # A GoBackup started since then counts from 0 again, even when its count
    # has passed the old one before the first reading.
    restarted = STARTED + 600
    assert overdue.record_durations({"sales": (0, 0.0)}, restarted) == {"sales": 30.0, "hr": 5.0}, "kept until a run"
    assert overdue.record_durations({"sales": (4, 48.0)}, restarted + 1) == {"sales": 12.0, "hr": 5.0}


def test_a_damaged_durations_file_is_read_as_far_as_it_makes_sense(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_files, "STATE_DIR", tmp_path)
    state_files.write_state(
        overdue.DURATIONS_STATE,
        {"started": STARTED, "models": {"sales": {"count": None, "sum": "3", "seconds": 9}, "hr": [], "x": {}}},
    )
    assert overdue.durations() == {"sales": 9.0}
    assert overdue.record_durations({"sales": (2, 50.0), "hr": (1, 7.0)}, STARTED) == {"sales": 25.0, "hr": 7.0}
    (tmp_path / overdue.DURATIONS_STATE).write_text("{not json")
    assert overdue.durations() == {}
    assert overdue.record_durations({"sales": (1, 5.0)}, STARTED) == {"sales": 5.0}


def test_interval_schedules_queue_with_every_model_and_count_their_own_run() -> None:
    """every/@every runs fall wherever the last one ended: they may hold the lock at any due time."""
    document = {"models": {"hourly": model("@every 1h"), "daily": model("0 2 * * *")}}
    document["models"]["day"] = {"schedule": {"every": "24h"}, "storages": STORAGES}
    measured = {"hourly": 600.0, "daily": 300.0, "day": 900.0}
    grace = overdue.Grace(document, {}, measured, UTC, default=HOUR)
    assert grace.seconds("hourly", DUE + 4 * HOUR) == HOUR + 600 + 900, "its own run and the other interval model's"
    assert grace.seconds("daily", DUE) == HOUR + 300 + 600 + 900


def test_a_default_grace_that_is_not_a_whole_number_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(overdue.DEFAULT_GRACE_VARIABLE, "7200.0")
    assert overdue.default_grace() == 3600
    monkeypatch.setenv(overdue.DEFAULT_GRACE_VARIABLE, "7200")
    assert overdue.default_grace() == 7200


def test_the_health_check_waits_for_a_queued_model_and_not_for_a_stalled_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(overdue.DEFAULT_GRACE_VARIABLE, raising=False)
    document = nightly(40)
    # 39 models took 10 minutes each at 02:00 last night; db39 waits its turn.
    measured = {f"db{n}": 600.0 for n in range(39)}
    runs = {(f"db{n}", "success"): DUE + 600 * (n + 1) for n in range(39)}
    late_night = datetime.datetime.fromtimestamp(DUE + 6 * HOUR, UTC)
    assert healthcheck.problems(document, runs, STARTED, late_night, UTC, {}, measured) == []
    # Without the measured durations, the fixed grace calls it overdue.
    [problem] = healthcheck.problems(document, runs, STARTED, late_night, UTC, {}, {})
    assert "model db39 has no successful backup since its run due at 2026-11-23T02:00:00+00:00" in problem
    # Past the queue and the grace, it is overdue all the same.
    too_late = datetime.datetime.fromtimestamp(DUE + 39 * 600 + HOUR + 60, UTC)
    [problem] = healthcheck.problems(document, runs, STARTED, too_late, UTC, {}, measured)
    assert f"nor in the {HOUR + 39 * 600} s after it" in problem


def test_the_probe_reads_gobackup_durations() -> None:
    text = "\n".join(
        [
            'gobackup_duration_seconds_bucket{model="sales",le="1"} 0',
            'gobackup_duration_seconds_sum{model="sales"} 125.5',
            'gobackup_duration_seconds_count{model="sales"} 3',
            'gobackup_duration_seconds_sum{model="hr"} 2e+01',
            'gobackup_duration_seconds_count{model="hr"} 1',
        ]
    )
    assert healthcheck.run_durations(text) == {"sales": (3.0, 125.5), "hr": (1.0, 20.0)}


def test_backup_status_applies_the_same_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    document = nightly(3)
    measured = {"db0": 1800.0, "db1": 1800.0, "db2": 600.0}
    targets = {"models": {name: {"rpo_grace_seconds": HOUR} for name in document["models"]}}
    last_night = DUE - 86400 + 60

    def state(now: float, durations: dict) -> list[str]:
        rows = status.status_rows(document, targets, {}, {}, now, STARTED, lambda body: (last_night, 1), durations)
        return sorted({row["status"] for row in rows if row["model"] == "db2"})

    assert state(DUE + 2 * HOUR, measured) == ["NOT PROVEN"], "queued behind two 30-minute runs"
    assert state(DUE + 2 * HOUR, {}) == ["OVERDUE"]
