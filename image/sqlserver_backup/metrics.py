"""Prometheus metrics of the backup container, on a port of their own.

  backup-metrics --port 9850 --config /etc/gobackup/gobackup.yml

Started by the entrypoint in daemon mode when METRICS_PORT is set. Serves
GET /metrics on 0.0.0.0:<port> and answers 404 to everything else: GoBackup's
own web server, whose /api/* can download archives and start runs, stays on
the container's loopback and is never reachable through this port.

Every few seconds it reads GoBackup's /metrics on that loopback (the source
the health check reads) and keeps, per model, the last success and failure
time and the duration of the last run; GoBackup's own gobackup_* families are
served on with their names, labels and values. GoBackup never reports an
archive's size (it removes the temp folder before it looks), so after each
new success the size is read from the model's first S3 storage: a listing
with the model's own key under its own path, the newest archive
(archives.listed_archives: the one backup-restore restores). The sizes are
read in a thread of their own, so a slow MinIO never holds up GoBackup's
readings; until a model's size is read again after its last success it is
served with sqlserver_backup_last_archive_size_stale 1. Scrapes are served
from what the two threads last read, never wait for either. What it knows is
kept in the state volume, so a restart of the container or of GoBackup
forgets no success time.
Manual runs (backup-now, backup_now.yml) are `gobackup perform` processes of
their own that report to no scheduler: they are not counted.

Beside them, at each scrape, the proof of the backups: per database the last
restore drill (drills.json, written by backup-restore --drill), its result,
the last time one proved the database restorable (0 when none ever did, for
every database a model backs up), its import's duration, the archive's age
and size; per model the targets of restore.yml (RPO grace, how old a proof
may be); per uncovered database a series from the last coverage check
(coverage.json, written by backup-coverage). monitoring/alert-rules.yml
alerts on them.

prometheus_client writes them: the Exporter is the collector of a registry
of its own (no process or platform metrics), read at each scrape by
prometheus_client's handler, in the text format or in OpenMetrics when the
scraper asks for it (Prometheus does).
"""

from __future__ import annotations

import argparse
import datetime
import http.server
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, MetricsHandler, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from sqlserver_backup import go_time_location, gobackup_config, overdue, restore_rules, state_files
from sqlserver_backup.archives import newest_archive
from sqlserver_backup.config_errors import ConfigError
from sqlserver_backup.metrics_web import WebConfig, load_web_config, web_config_path
from sqlserver_backup.workers import PartialReading, read_workers, scheduler_reader

POLL_SECONDS = 5.0
# A client that has not finished its TLS handshake by then is dropped.
HANDSHAKE_SECONDS = 10
STATE_FILE = "metrics-state.json"
# GoBackup's counter is gobackup_total_attempts: prometheus_client names a
# counter's samples <family>_total, so read as a counter it would be served as
# gobackup_total_attempts_total. Read untyped it keeps its name, labels and
# values (only Prometheus' metadata says unknown rather than counter).
COUNTER_TYPE = re.compile(r"^# TYPE (\S+) counter[ \t]*$", re.MULTILINE)
# Each model's runs: (name, ModelState field, HELP).
RUN_FAMILIES = (
    (
        "last_success_timestamp_seconds",
        "success",
        "Unix time the last successful backup of the model ended (0: none recorded).",
    ),
    (
        "last_failure_timestamp_seconds",
        "failure",
        "Unix time the last failed backup of the model ended (0: none recorded).",
    ),
    ("last_duration_seconds", "duration", "Duration of the model's last backup run, successful or not."),
    (
        "last_archive_size_bytes",
        "size",
        "Size of the model's newest archive in its storage, read after its last success.",
    ),
)
# Each database's last drill: (name, drills.json field, HELP).
DRILL_FAMILIES = (
    (
        "drill_restore_duration_seconds",
        "restore_seconds",
        "Duration of the import of the database's last passed drill (the measured restore time).",
    ),
    (
        "drill_archive_age_seconds",
        "archive_age_seconds",
        "Age of the archive when the database's last passed drill proved it.",
    ),
    ("drill_archive_size_bytes", "archive_size", "Size of the archive the database's last drill restored."),
)
MODEL, DATABASE = ("model",), ("model", "database")


def log(message: str) -> None:
    print(f"backup-metrics: {message}", file=sys.stderr, flush=True)


@dataclass
class ModelState:
    """What is known of a model's runs; 0 / None: nothing recorded yet."""

    success: float = 0.0
    failure: float = 0.0
    duration: float | None = None
    size: int | None = None
    size_of_success: float = 0.0  # the success time `size` was read for


def gobackup_families(text: str) -> list[Metric]:
    """GoBackup's own gobackup_* families of its /metrics text, to serve on."""
    untyped = COUNTER_TYPE.sub(
        lambda match: match.group(0) if match.group(1).endswith("_total") else f"# TYPE {match.group(1)} untyped",
        text,
    )
    merged: dict[str, Metric] = {}
    # Each worker's GoBackup lists the same families (workers.py): one each.
    for family in text_string_to_metric_families(untyped):
        if not family.name.startswith("gobackup_"):
            continue
        if family.name in merged:
            merged[family.name].samples += family.samples
        else:
            merged[family.name] = family
    return list(merged.values())


def samples(families: Iterable[Metric]) -> dict[tuple[str, str, str], float]:
    """(metric, model, status) -> value of GoBackup's per-model series."""
    return {
        (sample.name, sample.labels.get("model", ""), sample.labels.get("status", "")): sample.value
        for family in families
        for sample in family.samples
    }


def gauge(
    name: str, documentation: str, label_names: Sequence[str], rows: Iterable[tuple[Sequence[str], Any]]
) -> GaugeMetricFamily:
    """The family sqlserver_backup_<name>: a series per row whose value is a
    number (None, or a mistyped value of a state file: no series)."""
    family = GaugeMetricFamily(f"sqlserver_backup_{name}", documentation, labels=label_names)
    for label_values, value in rows:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            family.add_metric([str(label) for label in label_values], value)
    return family


def last_archive_size(body: Mapping[str, Any], timeout: float = 10) -> int | None:
    """Size of the archive a restore takes by default (see
    archives.listed_archives); None when the model has none."""
    newest = newest_archive(body, timeout)
    return newest.size if newest else None


class Exporter(Collector):
    """What is known of the models, served as the collector of its own
    registry: prometheus_client calls collect() at each scrape."""

    def __init__(
        self,
        document: Mapping[str, Any],
        state_file: Path,
        fetch: Callable[[], str] | None,
        size_of: Callable[[Mapping[str, Any]], int | None] = last_archive_size,
        restore_settings: Mapping[str, Any] | None = None,
        workers: list[list[str]] | None = None,
    ) -> None:
        self.document = document
        self.workers = workers  # each worker's models (workers.worker_models), for the grace
        self.restore_settings = restore_settings or {}
        self.models = {str(name).lower(): body or {} for name, body in document["models"].items()}
        self.state_file = state_file
        self.fetch = fetch
        self.size_of = size_of
        self.started = time.time()
        self.lock = threading.Lock()
        self.state = {name: ModelState() for name in self.models}
        self.load()
        self.baseline: dict[str, tuple[float, float]] = {}  # histogram (count, sum) seen last
        self.upstream: list[Metric] = []
        self.scheduler_up = False
        self.said: dict[str, str] = {}  # the last error logged per subject, to log each once
        # A collector without describe(): ?name[]= filters what collect() yields.
        self.registry = CollectorRegistry(support_collectors_without_names=True)
        self.registry.register(self)

    def load(self) -> None:
        try:
            saved = json.loads(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as error:
            log(f"starting afresh: cannot read {self.state_file}: {error}")
            return
        for name, values in saved.items() if isinstance(saved, dict) else ():
            if name in self.state and isinstance(values, dict):
                known = {key: values[key] for key in asdict(ModelState()) if key in values}
                self.state[name] = ModelState(**known)

    def save(self) -> None:
        temporary = self.state_file.with_name(f".{self.state_file.name}.tmp")
        temporary.write_text(json.dumps({name: asdict(state) for name, state in self.state.items()}), "utf-8")
        temporary.replace(self.state_file)

    def tell(self, subject: str, problem: str) -> None:
        if problem and self.said.get(subject) != problem:
            log(problem)
        self.said[subject] = problem

    def observe(self, text: str) -> bool:
        """Takes in a reading of GoBackup's /metrics; True when a model changed."""
        try:
            families = gobackup_families(text)
        except ValueError as error:  # it answered, but not in the text format
            self.tell("parse", f"cannot parse GoBackup's /metrics: {error}")
            return False
        self.tell("parse", "")
        values = samples(families)
        changed = False
        with self.lock:
            self.upstream = families
            for name, state in self.state.items():
                for status in ("success", "failure"):
                    value = values.get(("gobackup_last_timestamp", name, status), 0.0)
                    if value > getattr(state, status):
                        setattr(state, status, value)
                        changed = True
                count = values.get(("gobackup_duration_seconds_count", name, ""))
                total = values.get(("gobackup_duration_seconds_sum", name, ""), 0.0)
                if count is None:
                    continue
                duration, self.baseline[name] = overdue.last_duration(count, total, self.baseline.get(name, (0.0, 0.0)))
                if duration is not None:
                    state.duration = duration
                    changed = True
        return changed

    def refresh_sizes(self) -> bool:
        changed = False
        for name, body in self.models.items():
            state = self.state[name]
            # The success this size is read for: a newer one may come in
            # while the storage answers, and is read next time.
            success = state.success
            if success <= state.size_of_success:
                continue
            try:
                size = self.size_of(body)
            except Exception as error:  # MinIO down, a refused key: try again next time
                self.tell(f"size {name}", f"cannot read the size of model {name}'s last archive: {error}")
                continue
            self.tell(f"size {name}", "")
            with self.lock:
                state.size, state.size_of_success = size, success
            changed = True
        if changed:
            with self.lock:
                self.save()
        return changed

    def poll(self) -> None:
        changed = False
        if self.fetch is not None:
            try:
                text = self.fetch()
            except OSError as error:
                self.scheduler_up = False
                self.tell("scheduler", f"GoBackup's scheduler does not answer: {error}")
                # The workers that answered still count.
                answered = error.text if isinstance(error, PartialReading) else ""
                changed = bool(answered) and self.observe(answered)
            else:
                self.scheduler_up = True
                self.tell("scheduler", "")
                changed = self.observe(text)
        if changed:
            with self.lock:
                self.save()

    def due(self, name: str, zone: datetime.tzinfo) -> float | None:
        """When the model's next success is due: its first scheduled run after
        the last success (or after the exporter started), as the health check
        computes it."""
        return overdue.next_due(self.models[name], self.state[name].success or self.started, zone)

    def collect(self) -> Iterator[Metric]:
        """Every family, as the state is now: the models' runs, the proof of
        the backups, the scheduler's reachability, then GoBackup's own."""
        zone = go_time_location.local_zone()
        with self.lock:
            states = sorted(self.state.items())
            runs = {field: [((name,), getattr(state, field)) for name, state in states] for _, field, _ in RUN_FAMILIES}
            due = [((name,), self.due(name, zone)) for name, _ in states]
            stale = [((name,), int(state.success > state.size_of_success)) for name, state in states]
            upstream, up = self.upstream, self.scheduler_up
        for name, field, documentation in RUN_FAMILIES:
            yield gauge(name, documentation, MODEL, runs[field])
        yield gauge(
            "last_archive_size_stale",
            "1 while the served archive size is older than the model's last success (the storage not read since,"
            " or not answering), else 0.",
            MODEL,
            stale,
        )
        yield gauge(
            "success_due_timestamp_seconds",
            "Unix time of the model's first scheduled run after its last success (overdue after it plus"
            " the run's time).",
            MODEL,
            due,
        )
        yield from self.proof_families()
        yield gauge(
            "scheduler_up", "Whether GoBackup's scheduler answered the last reading (1 or 0).", (), [((), int(up))]
        )
        yield from upstream

    def render(self) -> str:
        """The metrics as a scrape that asks for no format gets them (the text format)."""
        return generate_latest(self.registry).decode()

    def targets(self) -> dict[str, tuple[int, int]]:
        """(grace seconds, proof max age seconds) of each model of the
        config: the grace of its next due run as the health check and
        backup-status apply it (overdue.py), the age from restore.yml."""
        models = self.restore_settings.get("models")
        models = models if isinstance(models, dict) else {}
        zone = go_time_location.local_zone()
        rule = overdue.Grace(
            {"models": self.models}, self.restore_settings, overdue.durations(), zone, workers=self.workers
        )
        with self.lock:
            dues = {name: self.due(name, zone) for name in self.models}
        found = {}
        for name, due in dues.items():
            target = models.get(name) if isinstance(models.get(name), dict) else {}
            grace = overdue.rpo_grace(name, self.restore_settings) if due is None else rule.seconds(name, due)
            days = int(target.get("proven_within_days") or restore_rules.DEFAULT_PROVEN_WITHIN_DAYS)
            found[name] = (grace, days * 86400)
        return found

    def drill_records(self, coverage: Mapping[str, Any]) -> list[tuple[tuple[str, str], Mapping[str, Any]]]:
        """((model, database), last drill record or {}) of every database a
        model is known to back up or a drill restored, as drills.json is now."""
        drills = state_files.read_state(state_files.DRILLS_STATE).get("models")
        drills = drills if isinstance(drills, dict) else {}
        covered = coverage.get("covered") if isinstance(coverage.get("covered"), dict) else {}
        per_database: dict[tuple[str, str], Mapping[str, Any]] = {}
        # Every database a model is known to back up has a series, proven or
        # not: one no drill ever proved shows 0 (never) as its last proof.
        for source in restore_rules.source_servers(self.document):
            model = source["model"].lower()
            names = (covered.get(model) or []) if source["all_databases"] else [source["database"]]
            for name in names:
                per_database.setdefault((model, str(name)), {})
        for model, databases in drills.items():
            if model in self.models and isinstance(databases, dict):
                for name, record in databases.items():
                    known = next(
                        (key for key in per_database if key[0] == model and key[1].casefold() == name.casefold()), None
                    )
                    per_database[known or (model, name)] = record if isinstance(record, dict) else {}
        return sorted(per_database.items())

    def proof_families(self) -> Iterator[GaugeMetricFamily]:
        """The drill, target and coverage families, from drills.json,
        restore.yml and coverage.json (backup-restore --drill and
        backup-coverage write the state files)."""
        coverage = state_files.read_state(state_files.COVERAGE_STATE)
        rows = self.drill_records(coverage)
        drilled = [(key, record) for key, record in rows if record.get("result") in ("pass", "fail")]
        yield gauge(
            "drill_last_run_timestamp_seconds",
            "Unix time the last restore drill of the database ended.",
            DATABASE,
            [(key, record.get("last_drill")) for key, record in drilled],
        )
        yield gauge(
            "drill_success",
            "Whether the last restore drill of the database passed (1) or failed (0).",
            DATABASE,
            [(key, int(record["result"] == "pass")) for key, record in drilled],
        )
        yield gauge(
            "drill_last_success_timestamp_seconds",
            "Unix time a drill last proved the database restorable (0: never).",
            DATABASE,
            [(key, record.get("proven_at") or 0) for key, record in rows],
        )
        for name, field, documentation in DRILL_FAMILIES:
            yield gauge(name, documentation, DATABASE, [(key, record.get(field)) for key, record in rows])
        targets = sorted(self.targets().items())
        yield gauge(
            "drill_max_age_seconds",
            "How old the last proof of a model's databases may be (restore.yml proven_within_days, in seconds).",
            MODEL,
            [((name,), max_age) for name, (_, max_age) in targets],
        )
        yield gauge(
            "rpo_grace_seconds",
            "How late a model's backup may be after its scheduled run: restore.yml rpo_grace_seconds plus the"
            " measured time of the runs queued with it under GoBackup's one lock.",
            MODEL,
            [((name,), grace) for name, (grace, _) in targets],
        )
        yield from coverage_families(coverage)


def coverage_families(coverage: Mapping[str, Any]) -> Iterator[GaugeMetricFamily]:
    """The families of the last coverage check (coverage.json)."""
    uncovered = [entry for entry in coverage.get("uncovered") or [] if isinstance(entry, dict)]
    yield gauge(
        "database_uncovered",
        "1 for each database of a source server that no model backs up (last coverage check).",
        ("server", "database"),
        [((entry.get("server", ""), entry.get("database", "")), 1) for entry in uncovered],
    )
    yield gauge(
        "coverage_last_check_timestamp_seconds",
        "Unix time of the last coverage check (0: none yet).",
        (),
        [((), coverage.get("checked_at") or 0)],
    )
    listed = all(not server.get("error") for server in coverage.get("servers") or [])
    yield gauge(
        "coverage_check_success",
        "Whether the last coverage check listed every source server (1) or not, or none ran yet (0).",
        (),
        [((), int(bool(coverage.get("checked_at")) and listed))],
    )


def handler_for(registry: CollectorRegistry, web: WebConfig) -> type[http.server.BaseHTTPRequestHandler]:
    """prometheus_client's handler of the registry, for GET /metrics only,
    behind the basic authentication of the web configuration."""

    class Handler(MetricsHandler.factory(registry)):  # type: ignore[misc]
        server_version = "backup-metrics"
        sys_version = ""

        def do_GET(self) -> None:
            if not web.authorized(self.headers.get("Authorization")):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="backup-metrics"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path.split("?", 1)[0] != "/metrics":
                self.not_found()
                return
            super().do_GET()

        def not_found(self) -> None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        # Only GET /metrics exists; every other method is 404 too.
        do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = not_found

    return Handler


class MetricsServer(http.server.ThreadingHTTPServer):
    """Serves each connection in a thread of its own; with TLS, the handshake
    happens there too, so a slow or silent client holds up no other."""

    def __init__(self, address: tuple[str, int], handler: type, web: WebConfig) -> None:
        super().__init__(address, handler)
        self.web = web

    def finish_request(self, request, client_address) -> None:
        if self.web.tls is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(HANDSHAKE_SECONDS)
        # The plain socket is detached from here on: socketserver's own
        # shutdown of it does nothing, so the TLS socket is closed here.
        with self.web.tls.wrap_socket(request, server_side=True) as secured:
            super().finish_request(secured, client_address)

    def handle_error(self, request, client_address) -> None:
        # A refused handshake or a client gone mid-answer: one line, no traceback.
        error = sys.exc_info()[1]
        log(f"request from {client_address[0]} failed: {type(error).__name__}: {error}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="port to serve /metrics on (all addresses)")
    parser.add_argument("--config", type=Path, required=True, help="the GoBackup configuration in use")
    arguments = parser.parse_args(argv)
    # SIGTERM from the entrypoint: exit at once, the state file is always whole.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        document = gobackup_config.load_lenient(arguments.config, os.environ)
        processes = read_workers(arguments.config, os.environ)
        fetch = scheduler_reader([process.address for process in processes if process.address is not None])
        if fetch is None:
            log("GoBackup's web server is disabled (web.enabled: false): only the saved state is served")
        try:
            settings = restore_rules.load_restore_settings(arguments.config, os.environ)
        except Exception as error:  # the backup metrics are served all the same
            log(f"restore.yml cannot be read ({type(error).__name__}): no drill or RPO targets are served")
            settings = {}
        exporter = Exporter(
            document,
            state_files.state_dir(os.environ) / STATE_FILE,
            fetch,
            restore_settings=settings,
            workers=[process.models for process in processes],
        )
        web = load_web_config(web_config_path(arguments.config))
        server = MetricsServer(("0.0.0.0", arguments.port), handler_for(exporter.registry, web), web)  # noqa: S104
    except ConfigError as error:
        log(f"error: not serving metrics: {'; '.join(error.reasons)}")
        return 1
    except Exception as error:
        log(f"error: not serving metrics: {type(error).__name__}: {error}")
        return 1

    def forever(read: Callable[[], object], subject: str) -> None:
        while True:
            try:
                read()
            except Exception as error:  # never let one bad reading stop the metrics
                exporter.tell(subject, f"error while reading the metrics: {type(error).__name__}: {error}")
            time.sleep(POLL_SECONDS)

    # Scrapes are served from what these two threads last read. The archive
    # sizes, one listing per model with the storage's timeout each, have a
    # thread of their own: a slow MinIO delays the sizes (served as stale
    # meanwhile), never GoBackup's readings.
    threading.Thread(target=forever, args=(exporter.poll, "poll"), daemon=True).start()
    threading.Thread(target=forever, args=(exporter.refresh_sizes, "sizes"), daemon=True).start()
    protection = ("TLS" if web.tls else "plain HTTP") + (", basic authentication" if web.users else "")
    log(f"serving /metrics on 0.0.0.0:{arguments.port} ({protection})")
    server.serve_forever()
    return 0
