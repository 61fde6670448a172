"""Prometheus metrics of the backups (image/sqlserver_backup/metrics.py): per
model the last success and failure, the last duration and the size of the last
archive, per database the restore drills and per source server the uncovered
databases. The exporter, then its HTTP handler on this machine; the port the
backup container publishes is tests/integration/test_metrics_stack.py's."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlserver_backup import metrics, metrics_web, overdue, state_files, workers
from sqlserver_backup_testing import metric_samples, request

DOCUMENT = {"models": {"sales": {"schedule": {"cron": "0 2 * * *"}, "storages": {}}}}
# The Accept header of a Prometheus 2 scrape.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)


def upstream(success: float = 0, failure: float = 0, count: int = 0, total: float = 0.0) -> str:
    """GoBackup's /metrics text for model sales, as client_golang writes it."""
    lines = ["# HELP go_goroutines Number of goroutines that currently exist.", "# TYPE go_goroutines gauge"]
    lines += ["go_goroutines 12", "# HELP gobackup_duration_seconds Duration of backup in seconds"]
    lines += ["# TYPE gobackup_duration_seconds histogram"]
    if count:
        lines += [
            f'gobackup_duration_seconds_bucket{{model="sales",le="+Inf"}} {count}',
            f'gobackup_duration_seconds_sum{{model="sales"}} {total}',
            f'gobackup_duration_seconds_count{{model="sales"}} {count}',
        ]
    lines += ["# HELP gobackup_last_timestamp Timestamp of the last backup attempt (Unix epoch)"]
    lines += ["# TYPE gobackup_last_timestamp gauge"]
    lines += [f'gobackup_last_timestamp{{model="sales",status="success"}} {success}'] if success else []
    lines += [f'gobackup_last_timestamp{{model="sales",status="failure"}} {failure}'] if failure else []
    lines += [
        "# HELP gobackup_total_attempts Total number of backup attempts",
        "# TYPE gobackup_total_attempts counter",
    ]
    lines += [f'gobackup_total_attempts{{model="sales",status="success"}} {count}'] if count else []
    lines += ["# HELP promhttp_metric_handler_requests_total Total number of scrapes by HTTP status code."]
    lines += [
        "# TYPE promhttp_metric_handler_requests_total counter",
        'promhttp_metric_handler_requests_total{code="200"} 3',
    ]
    return "\n".join(lines) + "\n"


def sales(values: dict[str, float]) -> dict[str, float]:
    """The series of model sales alone: family name without sqlserver_backup_ -> value."""
    found = (re.fullmatch(r'sqlserver_backup_(\w+)\{model="sales"\}', name) for name in values)
    return {match.group(1): values[match.group(0)] for match in found if match}


def exporter(tmp_path: Path, readings: list[str], sizes: list[int | None] | None = None):
    sizes = list(sizes or [])
    fetched = iter(readings)
    return metrics.Exporter(
        DOCUMENT, tmp_path / "state.json", lambda: next(fetched), lambda storages: sizes.pop(0) if sizes else None
    )


def test_success_failure_duration_and_size_per_model(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    source = exporter(tmp_path, [upstream(), upstream(success=1000, count=1, total=4.5)], sizes=[12345])
    source.poll()
    source.refresh_sizes()
    first = metric_samples(source.render())
    assert first['sqlserver_backup_last_success_timestamp_seconds{model="sales"}'] == 0
    assert 'sqlserver_backup_last_archive_size_bytes{model="sales"}' not in first
    source.poll()
    source.refresh_sizes()
    after = metric_samples(source.render())
    assert sales(after) == {
        "last_success_timestamp_seconds": 1000,
        "last_failure_timestamp_seconds": 0,
        "last_duration_seconds": 4.5,
        "last_archive_size_bytes": 12345,
        "last_archive_size_stale": 0,
        "success_due_timestamp_seconds": 7200,  # the next run of "0 2 * * *" after the success (UTC)
        "drill_max_age_seconds": 8 * 86400,
        "rpo_grace_seconds": 3600,
    }
    assert after["sqlserver_backup_scheduler_up"] == 1
    assert after['gobackup_duration_seconds_count{model="sales"}'] == 1, "GoBackup's own series are passed on"
    assert after['gobackup_total_attempts{model="sales",status="success"}'] == 1
    assert "go_goroutines" not in after, "only gobackup_* series of GoBackup's"
    assert not [name for name in after if name.startswith("promhttp_")]


def test_gobackups_families_keep_their_names_help_and_types(tmp_path: Path) -> None:
    source = exporter(tmp_path, [upstream(success=1000, count=2, total=5.0)])
    source.poll()
    text = source.render()
    assert "# HELP gobackup_duration_seconds Duration of backup in seconds\n" in text
    assert "# TYPE gobackup_duration_seconds histogram\n" in text
    assert 'gobackup_duration_seconds_bucket{le="+Inf",model="sales"} 2.0\n' in text
    assert "# HELP gobackup_total_attempts Total number of backup attempts\n" in text
    # A counter's samples are named <family>_total in prometheus_client: this
    # one, named without the suffix, is served untyped under its own name.
    assert "# TYPE gobackup_total_attempts untyped\n" in text
    assert "_total_total" not in text


def test_the_duration_is_the_last_runs_even_across_a_gobackup_restart(tmp_path: Path) -> None:
    source = exporter(
        tmp_path,
        [
            upstream(failure=900, count=1, total=10.0),
            upstream(success=1000, failure=900, count=2, total=13.0),
            upstream(failure=1100, count=1, total=2.0),  # GoBackup started over
        ],
    )
    durations = []
    for _ in range(3):
        source.poll()
        durations.append(sales(metric_samples(source.render()))["last_duration_seconds"])
    assert durations == [10.0, 3.0, 2.0]
    final = sales(metric_samples(source.render()))
    assert final["last_success_timestamp_seconds"] == 1000, "kept over the restart"
    assert final["last_failure_timestamp_seconds"] == 1100


def test_what_is_known_survives_the_exporter_and_gobackup(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    first = exporter(tmp_path, [upstream(success=1000, count=1, total=4.0)], sizes=[77])
    first.poll()
    first.refresh_sizes()
    again = exporter(tmp_path, [upstream()])  # GoBackup started over too: it knows of no run
    again.poll()
    values = sales(metric_samples(again.render()))
    assert values == sales(metric_samples(first.render()))
    assert values["last_success_timestamp_seconds"] == 1000
    assert values["last_archive_size_bytes"] == 77
    assert values["last_duration_seconds"] == 4.0
    # The next run of "0 2 * * *" after the success (UTC).
    assert values["success_due_timestamp_seconds"] == 7200


def test_a_silent_scheduler_or_storage_is_reported_not_fatal(tmp_path: Path, capsys) -> None:
    def refuse() -> str:
        raise ConnectionRefusedError(111, "Connection refused")

    def broken(storages) -> int:
        raise OSError("cannot reach http://minio:9000 (bucket b)")

    source = metrics.Exporter(DOCUMENT, tmp_path / "state.json", refuse, broken)
    source.poll()
    source.poll()
    assert metric_samples(source.render())["sqlserver_backup_scheduler_up"] == 0
    source.fetch = lambda: upstream(success=1000)
    for _ in range(2):
        source.poll()
        source.refresh_sizes()
    errors = capsys.readouterr().err
    assert errors.count("GoBackup's scheduler does not answer") == 1, "said once, not every few seconds"
    assert errors.count("cannot read the size of model sales's last archive") == 1
    assert 'sqlserver_backup_last_archive_size_bytes{model="sales"}' not in metric_samples(source.render())
    assert metric_samples(source.render())['sqlserver_backup_last_archive_size_stale{model="sales"}'] == 1


def test_a_slow_storage_never_holds_up_the_schedulers_readings(tmp_path: Path) -> None:
    answer = threading.Event()
    sizes = iter([1024, 4096])  # the archive of the success of 1000, then of 2000

    def slow(body) -> int:
        assert answer.wait(30), "the storage was never let answer"
        return next(sizes)

    readings = iter([upstream(success=1000, count=1, total=3.0), upstream(success=2000, count=2, total=7.0)])
    source = metrics.Exporter(DOCUMENT, tmp_path / "state.json", lambda: next(readings), slow)
    source.poll()
    reading = threading.Thread(target=source.refresh_sizes)
    reading.start()  # the listing hangs, as against a MinIO that does not answer
    source.poll()  # GoBackup's next reading still comes in, at once
    values = sales(metric_samples(source.render()))
    assert values["last_success_timestamp_seconds"] == 2000
    assert values["last_archive_size_stale"] == 1
    assert "last_archive_size_bytes" not in values
    answer.set()
    reading.join(30)
    values = sales(metric_samples(source.render()))
    assert (values["last_archive_size_bytes"], values["last_archive_size_stale"]) == (1024, 1), "read for 1000"
    source.refresh_sizes()  # the size of the success of 2000 now
    values = sales(metric_samples(source.render()))
    assert (values["last_archive_size_bytes"], values["last_archive_size_stale"]) == (4096, 0)


def test_an_unreadable_reading_is_reported_once_and_the_rest_still_served(tmp_path: Path, capsys) -> None:
    source = exporter(tmp_path, [upstream(success=1000)] + ["gobackup_last_timestamp{model= 1\n"] * 3)
    for _ in range(4):
        source.poll()
    assert capsys.readouterr().err.count("cannot parse GoBackup's /metrics") == 1
    values = metric_samples(source.render())
    assert values["sqlserver_backup_scheduler_up"] == 1
    assert values['sqlserver_backup_last_success_timestamp_seconds{model="sales"}'] == 1000
    assert values['gobackup_last_timestamp{model="sales",status="success"}'] == 1000, "the last good reading"


PROOF_DOCUMENT = {
    "models": {
        "sales": {
            "schedule": {"cron": "0 2 * * *"},
            "databases": {"sales": {"type": "mssql", "host": "mssql", "database": "SalesDemo"}},
            "storages": {},
        },
        "everything": {
            "schedule": {"cron": "0 3 * * *"},
            "databases": {"all": {"type": "mssql", "host": "other", "all_databases": True}},
            "storages": {},
        },
    }
}
PASSED = {
    "last_drill": 5000.0,
    "result": "pass",
    "reason": "",
    "proven_at": 5000.0,
    "archive": "2026.12.06.02.00.00.tar",
    "archive_time": 4000.0,
    "archive_size": 4096,
    "archive_age_seconds": 1000.0,
    "restore_seconds": 12.5,
}


def test_drills_targets_and_coverage_are_served_from_the_state_files(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(state_files, "STATE_DIR", tmp_path)
    failed = {**PASSED, "last_drill": 9000.0, "result": "fail", "reason": "DBCC CHECKDB failed"}
    state_files.write_state("drills.json", {"models": {"sales": {"SalesDemo": PASSED}, "everything": {"HR": failed}}})
    state_files.write_state(
        "coverage.json",
        {
            "checked_at": 7000.0,
            "ok": False,
            "servers": [{"server": "mssql,1433", "databases": [], "error": ""}],
            "covered": {"sales": ["SalesDemo"], "everything": ["HR", "Payroll"]},
            "uncovered": [{"server": "mssql,1433", "database": "NewDb"}],
            "ignored": [],
        },
    )
    settings = {"models": {"sales": {"rpo_grace_seconds": 600, "proven_within_days": 2}}}
    source = metrics.Exporter(PROOF_DOCUMENT, tmp_path / "state.json", None, restore_settings=settings)
    values = metric_samples(source.render())
    sales, hr, payroll = (
        'database="SalesDemo",model="sales"',
        'database="HR",model="everything"',
        'database="Payroll",model="everything"',
    )
    assert values[f"sqlserver_backup_drill_last_run_timestamp_seconds{{{sales}}}"] == 5000
    assert values[f"sqlserver_backup_drill_success{{{sales}}}"] == 1
    assert values[f"sqlserver_backup_drill_last_success_timestamp_seconds{{{sales}}}"] == 5000
    assert values[f"sqlserver_backup_drill_restore_duration_seconds{{{sales}}}"] == 12.5
    assert values[f"sqlserver_backup_drill_archive_age_seconds{{{sales}}}"] == 1000
    assert values[f"sqlserver_backup_drill_archive_size_bytes{{{sales}}}"] == 4096
    assert values[f"sqlserver_backup_drill_success{{{hr}}}"] == 0
    assert values[f"sqlserver_backup_drill_last_run_timestamp_seconds{{{hr}}}"] == 9000
    assert values[f"sqlserver_backup_drill_last_success_timestamp_seconds{{{hr}}}"] == 5000, "the last proof stays"
    assert values[f"sqlserver_backup_drill_last_success_timestamp_seconds{{{payroll}}}"] == 0, "never proven"
    assert f"sqlserver_backup_drill_success{{{payroll}}}" not in values, "no drill ran"
    assert values['sqlserver_backup_drill_max_age_seconds{model="sales"}'] == 2 * 86400
    assert values['sqlserver_backup_rpo_grace_seconds{model="sales"}'] == 600
    assert values['sqlserver_backup_drill_max_age_seconds{model="everything"}'] == 8 * 86400, "the default"
    assert values['sqlserver_backup_rpo_grace_seconds{model="everything"}'] == 3600, "the default"
    assert values['sqlserver_backup_database_uncovered{database="NewDb",server="mssql,1433"}'] == 1
    assert values["sqlserver_backup_coverage_last_check_timestamp_seconds"] == 7000
    assert values["sqlserver_backup_coverage_check_success"] == 1

    # The health check's measured durations: sales (02:00) queues behind
    # nothing else; everything (03:00) behind a 90-minute sales run.
    state_files.write_state(overdue.DURATIONS_STATE, {"models": {"sales": {"seconds": 5400.0}}})
    values = metric_samples(source.render())
    assert values['sqlserver_backup_rpo_grace_seconds{model="sales"}'] == 600 + 5400
    assert values['sqlserver_backup_rpo_grace_seconds{model="everything"}'] == 3600 + 5400

    state_files.write_state("coverage.json", {"checked_at": 8000.0, "servers": [{"server": "x", "error": "down"}]})
    values = metric_samples(source.render())
    assert values["sqlserver_backup_coverage_check_success"] == 0, "read again at each scrape"
    assert not [name for name in values if name.startswith("sqlserver_backup_database_uncovered")]


def test_before_any_drill_or_check_every_database_is_never_proven(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(state_files, "STATE_DIR", tmp_path)
    values = metric_samples(metrics.Exporter(PROOF_DOCUMENT, tmp_path / "state.json", None).render())
    proofs = {name: value for name, value in values.items() if name.startswith("sqlserver_backup_drill_")}
    assert proofs == {
        'sqlserver_backup_drill_last_success_timestamp_seconds{database="SalesDemo",model="sales"}': 0,
        'sqlserver_backup_drill_max_age_seconds{model="everything"}': 8 * 86400,
        'sqlserver_backup_drill_max_age_seconds{model="sales"}': 8 * 86400,
    }, "an all_databases model's databases appear with the first coverage check"
    assert values["sqlserver_backup_coverage_last_check_timestamp_seconds"] == 0
    assert values["sqlserver_backup_coverage_check_success"] == 0


@pytest.fixture
def served(tmp_path: Path) -> Iterator[int]:
    """The exporter's HTTP handler on a free port of the loopback: the port."""
    source = exporter(tmp_path, [upstream(success=1000, count=1, total=4.5)])
    source.poll()
    web = metrics_web.WebConfig(None, {})
    server = metrics.MetricsServer(("127.0.0.1", 0), metrics.handler_for(source.registry, web), web)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("", "text/plain; version=0.0.4; charset=utf-8"),
        (PROMETHEUS_ACCEPT, "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores"),
    ],
)
def test_get_metrics_answers_in_the_format_asked_for(served: int, accept: str, content_type: str) -> None:
    status, text, served_type = request("127.0.0.1", served, "/metrics", accept=accept)
    assert (status, served_type) == (200, content_type)
    values = metric_samples(text)
    assert values['sqlserver_backup_last_success_timestamp_seconds{model="sales"}'] == 1000
    assert values['sqlserver_backup_last_duration_seconds{model="sales"}'] == 4.5
    assert values['gobackup_total_attempts{model="sales",status="success"}'] == 1, "the same name in both formats"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/"), ("GET", "/api/config"), ("GET", "/metrics/"), ("GET", "/favicon.ico")]
    + [(method, "/metrics") for method in ("HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")],
)
def test_everything_but_get_metrics_is_404(served: int, method: str, path: str) -> None:
    assert request("127.0.0.1", served, path, method)[0] == 404


def test_every_workers_gobackup_is_read_and_served_as_one(tmp_path: Path) -> None:
    """Each worker's GoBackup (workers.py) lists its own models under the same
    families; the exporter serves each family once, with every model."""
    texts = [upstream(success=1000, count=1, total=4.5), upstream(success=2000).replace('model="sales"', 'model="hr"')]
    servers = []
    for text in texts:

        class Answer(http.server.BaseHTTPRequestHandler):
            body = text.encode()

            def do_GET(self) -> None:
                self.send_response(200)
                self.end_headers()
                self.wfile.write(self.body)

            def log_message(self, *_: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    try:
        read = workers.scheduler_reader([("127.0.0.1", server.server_address[1]) for server in servers])
        document = {"models": {"sales": DOCUMENT["models"]["sales"], "hr": DOCUMENT["models"]["sales"]}}
        source = metrics.Exporter(document, tmp_path / "state.json", read, lambda storages: None)
        source.poll()
        served = source.render()
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    values = metric_samples(served)
    assert values['sqlserver_backup_last_success_timestamp_seconds{model="sales"}'] == 1000
    assert values['sqlserver_backup_last_success_timestamp_seconds{model="hr"}'] == 2000
    assert served.count("# HELP gobackup_last_timestamp ") == 1, served


def test_a_worker_that_does_not_answer_leaves_the_others_fresh(tmp_path: Path) -> None:
    def partly() -> str:
        raise workers.PartialReading("http://127.0.0.1:2702/metrics: refused", upstream(success=1000))

    source = metrics.Exporter(DOCUMENT, tmp_path / "state.json", partly, lambda storages: None)
    source.poll()
    values = metric_samples(source.render())
    assert values['sqlserver_backup_last_success_timestamp_seconds{model="sales"}'] == 1000
    assert values["sqlserver_backup_scheduler_up"] == 0
