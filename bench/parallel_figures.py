"""Section 6 of the benchmark: parallel models. 40 models of 50 MiB each,
all scheduled at the same minute, in the backup image as a host runs it
(docker-entrypoint, backup-supervisor, one `gobackup run` per worker), with
1, 2 and 4 workers. Each cycle is timed from the schedule's minute to the
newest archive in MinIO; the health probe runs every 10 s meanwhile, and the
work volume is sampled for each worker's peak.

The configurations are the backup_config role's own (tests/playbooks/
render_config.yml on the dev inventory, with the split into workers). The
export is a copy of a prepared 50 MiB .bacpac-like file of random data (a
sqlpackage stand-in mounted over the image's), so the cycle times what a
real export writes and everything GoBackup does after it."""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import threading
from pathlib import Path

import yaml
from common import GIB, WORK, Bench, Row, log, playbook_output, quietly, run, verdict
from minio import Minio
from pipeline_figures import start_minio
from sqlserver_backup_testing import REPO, role_defaults, wait_until

MODELS = 40
MODEL_BYTES = 50 * 1024**2
WORKER_COUNTS = (1, 2, 4)
# The 2-worker cycle's target, as a share of the 1-worker cycle.
TWO_WORKER_TARGET = 0.65
SOURCE = "/bench-data/parallel-source.bacpac"
BUCKET = "bench-parallel"
# The export stand-in: GoBackup runs sqlpackage (the image's wrapper, which
# takes the model's lock and checks the work volume's space, then this).
EXPORT_SHIM = f"""#!/bin/sh
for argument; do
  case "$argument" in /TargetFile:*) exec cp -- {SOURCE} "${{argument#/TargetFile:}}" ;; esac
done
echo "bench sqlpackage: no /TargetFile" >&2
exit 1
"""
ARCHIVE = re.compile(r"/(m\d\d)/[^/]+\.tar(\.[a-z]+)?$")
OVERDUE = "has no successful backup since"
RPO_GRACE = 5


def render_config(bench: Bench, workers: int, due: datetime.datetime, minio: tuple[str, str, str, str]) -> Path:
    """The backup_config role's files for MODELS models due at `due` (UTC),
    split into `workers`; returns their folder."""
    _, _, user, password = minio
    out = bench.tmp / f"config-{workers}"
    entry = {"host": "bench-sql", "password": "unused-Passw0rd", "schedule": f"{due.minute} {due.hour} * * *"}
    settings = {
        "dev_secrets_dir": str(bench.tmp / "secrets"),
        "backup_config_dir": str(out),
        "backup_config_databases": [
            {**entry, "name": f"m{number:02d}", "database": f"M{number:02d}"} for number in range(1, MODELS + 1)
        ],
        "backup_config_workers": workers,
        # A grace far below the cycle: a model is overdue unless the health
        # check counts the runs queued before it in its worker.
        "backup_config_rpo_grace_seconds": RPO_GRACE,
        "backup_config_minio_endpoint": "http://minio:9000",
        "backup_config_minio_bucket": BUCKET,
        "backup_config_minio_access_key": user,
        "backup_config_minio_secret_key": password,
    }
    variables = bench.tmp / f"parallel-{workers}.json"
    variables.touch(mode=0o600)
    variables.write_text(json.dumps(settings))
    playbook_output(
        "-i", str(REPO / "inventories" / "dev"), "-e", f"@{variables}", str(REPO / "tests/playbooks/render_config.yml")
    )
    return out


def worker_of(config: Path) -> dict[str, int]:
    """Each model's worker, from the rendered worker files (all 1 without)."""
    found = {}
    for path in sorted(config.glob("gobackup-worker-*.yml")):
        number = int(path.stem.rsplit("-", 1)[1])
        found |= dict.fromkeys(yaml.safe_load(path.read_text())["models"], number)
    return found or dict.fromkeys((f"m{number:02d}" for number in range(1, MODELS + 1)), 1)


class Watch(threading.Thread):
    """Runs the container's health probe every 10 s until stopped, keeping
    every line that calls a model overdue."""

    def __init__(self, container: str) -> None:
        super().__init__(daemon=True)
        self.container, self.stopped, self.overdue = container, threading.Event(), set()

    def run(self) -> None:
        while not self.stopped.wait(10):
            probe = subprocess.run(
                ["docker", "exec", self.container, "docker-healthcheck"], capture_output=True, text=True, check=False
            )
            self.overdue |= {line for line in probe.stdout.splitlines() if OVERDUE in line}


def start_container(bench: Bench, workers: int, config: Path, network: str) -> str:
    """The backup container of one cycle, as a host runs it, with the
    export stand-in mounted over sqlpackage; returns its name."""
    container = volume = f"{bench.name}-workers-{workers}"
    bench.on_exit(quietly, "docker", "rm", "-f", "-v", container)
    bench.on_exit(quietly, "docker", "volume", "rm", volume)
    shim = bench.tmp / "sqlpackage"
    shim.write_text(EXPORT_SHIM)
    shim.chmod(0o755)
    command = ["docker", "run", "-d", "--name", container, "--network", network, "-e", "TZ=UTC"]
    command += ["-e", "SKIP_HEALTH_CHECK=true", "--mount", f"type=bind,src={config},dst=/etc/gobackup,readonly"]
    command += ["--mount", f"type=volume,src={volume},dst={WORK}"]
    command += ["--mount", f"type=volume,src={bench.volume},dst=/bench-data,readonly"]
    command += ["--mount", f"type=bind,src={shim},dst=/usr/local/sqlpackage/sqlpackage,readonly"]
    command += ["--mount", f"type=bind,src={REPO / 'bench' / 'in_image.py'},dst=/bench/in_image.py,readonly"]
    run(*command, bench.image, quiet=True)
    return container


class Sampler(threading.Thread):
    """in_image.py work-peaks in the container until the stop file exists:
    each worker's peak on the work volume (its failure kept, not lost)."""

    def __init__(self, container: str, worker_of_model: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.container, self.stop_file = container, f"{WORK}/bench-stop"
        self.command = ["docker", "exec", container, "python3", "/bench/in_image.py", "work-peaks", WORK]
        self.command += [self.stop_file, json.dumps(worker_of_model)]
        self.result: dict = {}
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            self.result = json.loads(run(*self.command, quiet=True))
        except Exception as error:  # reported by peaks()
            self.error = error

    def peaks(self) -> dict[str, int]:
        quietly("docker", "exec", self.container, "touch", self.stop_file)
        self.join(timeout=60)
        if self.error is not None or not self.result.get("samples"):
            raise RuntimeError(f"the work volume was not sampled: {self.error or self.result}")
        return self.result["peaks"]


def newest_archives(client: Minio) -> dict[str, datetime.datetime]:
    """Each model's newest archive in the bucket, by its upload time."""
    found: dict[str, datetime.datetime] = {}
    for item in client.list_objects(BUCKET, recursive=True):
        match = ARCHIVE.search(item.object_name)
        if match:
            found[match.group(1)] = max(found.get(match.group(1), item.last_modified), item.last_modified)
    return found


def cycle(bench: Bench, workers: int, minio: tuple[str, str, str, str], client: Minio) -> dict:
    """One cycle with `workers` workers: seconds from the schedule's minute
    to the newest archive, the models called overdue and each worker's peak."""
    now = datetime.datetime.now(datetime.timezone.utc)
    # The next minute at least 60 s away: time to render and start.
    due = (now + datetime.timedelta(seconds=119)).replace(second=0, microsecond=0)
    config = render_config(bench, workers, due, minio)
    container = start_container(bench, workers, config, minio[0])
    if datetime.datetime.now(datetime.timezone.utc) > due - datetime.timedelta(seconds=5):
        raise RuntimeError(f"the container started too late for the minute {due:%H:%M}: this machine is too busy")
    log(f"parallel models: {MODELS} x 50 MiB due at {due:%H:%M} UTC, {workers} worker(s)")
    sampler, watch = Sampler(container, worker_of(config)), Watch(container)
    sampler.start()
    watch.start()
    try:

        def every_model_stored() -> dict[str, datetime.datetime] | None:
            if not bench.docker.containers.get(container).status == "running":
                raise RuntimeError(f"{container} stopped: {run('docker', 'logs', container, quiet=True)[-3000:]}")
            found = newest_archives(client)
            return found if len(found) == MODELS else None

        seconds_left = (due - datetime.datetime.now(datetime.timezone.utc)).total_seconds() + 3600
        stored = wait_until(
            every_model_stored, lambda: f"{MODELS} archives ({len(newest_archives(client))} so far)", seconds_left, 1
        )
        peaks = sampler.peaks()
    finally:
        watch.stopped.set()
        quietly("docker", "exec", container, "touch", sampler.stop_file)
        watch.join(timeout=30)
        quietly("docker", "rm", "-f", "-v", container)
        for item in client.list_objects(BUCKET, recursive=True):
            client.remove_object(BUCKET, item.object_name)
    return {"seconds": (max(stored.values()) - due).total_seconds(), "overdue": sorted(watch.overdue), "peaks": peaks}


def peak_text(peaks: dict[str, int]) -> str:
    """ "100, 98 MiB": each worker's peak, worker 1 first."""
    ordered = sorted((int(worker), size) for worker, size in peaks.items())
    return ", ".join(f"{size / 1024**2:.0f}" for _, size in ordered) + " MiB"


def parallel_rows(bench: Bench, minio_image: str) -> list[Row]:
    # Room for one cycle's archives (compressed or not) and the bucket's state.
    minio = start_minio(bench, minio_image, "parallel", MODELS * MODEL_BYTES * 2 + GIB // 2)
    client = Minio(f"127.0.0.1:{minio[1]}", access_key=minio[2], secret_key=minio[3], secure=False)
    client.make_bucket(BUCKET)
    bench.in_image("make-bacpac", f"{WORK}/parallel-source.bacpac", str(MODEL_BYTES))
    results = {workers: cycle(bench, workers, minio, client) for workers in WORKER_COUNTS}
    cores = os.cpu_count() or 1
    alone = results[1]["seconds"]
    compress = role_defaults("backup_config")["backup_config_compress"]
    rows = [
        Row(
            f"6. Cycle of {MODELS} models x 50 MiB due at one minute ({compress}), from the minute to the newest"
            " archive in MinIO: 1 worker",
            f"{alone:.0f} s",
        )
    ]
    for workers in WORKER_COUNTS[1:]:
        seconds, ideal = results[workers]["seconds"], alone / min(workers, cores)
        target = f"<= {TWO_WORKER_TARGET} x 1 worker ({TWO_WORKER_TARGET * alone:.0f} s)" if workers == 2 else "-"
        rows.append(
            Row(
                f"6. ... {workers} workers (ideal: the 1-worker time / min({workers}, {cores} cores))",
                f"{seconds:.0f} s = x{seconds / alone:.2f} of 1 worker; ideal {ideal:.0f} s (x{seconds / ideal:.2f})",
                target,
                verdict(seconds <= TWO_WORKER_TARGET * alone) if workers == 2 else "info",
            )
        )
    overdue = [line for result in results.values() for line in result["overdue"]]
    rows.append(
        Row(
            f"6. Models the health probe called overdue during the cycles (every 10 s; RPO grace {RPO_GRACE} s plus"
            " the measured runs queued in the model's worker)",
            "; ".join(overdue) or "none",
            "none",
            verdict(not overdue),
        )
    )
    rows.append(
        Row(
            "6. Peak work-volume use per worker (temp folders of its models, sampled every 0.5 s)",
            "; ".join(f"{workers} worker(s): {peak_text(results[workers]['peaks'])}" for workers in WORKER_COUNTS),
        )
    )
    return rows
