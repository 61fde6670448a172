"""Sections 3 and 4 of the benchmark, in the backup image on the work
volume: GoBackup's archive command per compress type, and the pipeline after
the export (archive, upload to a MinIO of the stack's image, local copy) next
to the disk's own speed."""

from __future__ import annotations

import json
import re
import secrets
import socket
import statistics
import subprocess
from pathlib import Path
from typing import Any

from common import BACPAC, BENCH_ROOT, DATABASE, GIB, MODEL, SOURCE_DIR, Bench, Row, gibibytes, log, quietly, run
from minio import Minio
from sqlserver_backup_testing import REPO, answers, role_defaults, wait_until

ARCHIVE_TYPES = ("tar", "tgz", "zst")
PIPELINE_RUNS = 3
MINIO_PORTS = range(29500, 29511)
WINNER_RULE = "smallest (1 % = equal), then fastest (10 % = equal), then least CPU"


def archive_winner(results: list[dict[str, Any]]) -> str:
    """The compress type that wins: the smallest archive; among archives
    within 1 % of it, the shortest time; among times within 10 % of that
    (noise on a shared machine), the least CPU."""
    smallest = min(result["bytes"] for result in results)
    small = [result for result in results if result["bytes"] <= smallest * 1.01]
    fastest = min(result["seconds"] for result in small)
    fast = [result for result in small if result["seconds"] <= fastest * 1.10]
    return min(fast, key=lambda result: result["cpu_seconds"])["type"]


def archive_rows(bench: Bench) -> list[Row]:
    results = bench.in_image("archive", SOURCE_DIR, MODEL, *ARCHIVE_TYPES)
    winner = archive_winner(results)
    compress_defaults = {
        "roles/backup_config (backup_config_compress)": role_defaults("backup_config")["backup_config_compress"],
        "image/gobackup.yml.template (BACKUP_COMPRESS)": re.search(
            r"type: \$\{BACKUP_COMPRESS:-([^}]+)\}", (REPO / "image" / "gobackup.yml.template").read_text()
        ).group(1),
    }
    per_gib = bench.size / GIB
    rows = [
        Row(
            f"3. Archive a {gibibytes(bench.size)} bacpac, compress type {result['type']}",
            f"{result['seconds']:.1f} s ({result['seconds'] / per_gib:.1f} s/GiB,"
            f" CPU {result['cpu_seconds']:.1f} s),"
            f" {gibibytes(result['bytes'])} ({(result['bytes'] / bench.size - 1) * 100:+.2f} %)",
            WINNER_RULE,
            "winner" if result["type"] == winner else "-",
        )
        for result in results
    ]
    defaults = sorted(set(compress_defaults.values()))
    rows.append(
        Row(
            "3. Project default compress type",
            ", ".join(f"{value} ({where})" for where, value in compress_defaults.items()),
            f"= winner ({winner})",
            "PASS" if defaults == [winner] else "FAIL",
        )
    )
    return rows


def minio_port() -> int:
    """A free port of MINIO_PORTS, where the benchmark publishes its MinIO."""
    for port in MINIO_PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {MINIO_PORTS.start}-{MINIO_PORTS.stop - 1}")


def available_memory() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def start_minio(
    bench: Bench, minio_image: str, name: str = "minio", size: int | None = None
) -> tuple[str, str, str, str]:
    """A MinIO of the stack's image on a network of its own (both named
    after `name`), with room for `size` bytes (default: every run of section
    4); returns the network, the host port and the root credentials."""
    network = f"{bench.name}-{name}-net"
    run("docker", "network", "create", network, quiet=True)
    bench.on_exit(quietly, "docker", "network", "rm", network)
    user, password = "bench-root", secrets.token_hex(20)
    environment = bench.tmp / "minio.env"
    environment.touch(mode=0o600)
    environment.write_text(f"MINIO_ROOT_USER={user}\nMINIO_ROOT_PASSWORD={password}\n")
    port = minio_port()
    container = f"{bench.name}-{name}"
    bench.on_exit(quietly, "docker", "rm", "-f", "-v", container)
    command = ["docker", "run", "-d", "--name", container, "--network", network, "--network-alias", "minio"]
    command += ["-p", f"127.0.0.1:{port}:9000", "--env-file", str(environment)]
    # MinIO keeps the object in memory when it fits, so that its writes do
    # not compete with the backup host's own for the same disk.
    # Room for every run's archive (keep: 7) and one more part.
    size = size or (PIPELINE_RUNS + 1) * bench.size + 512 * 1024**2
    if available_memory() > 2 * size:
        bench.minio_storage = "tmpfs"
        uid, _, gid = str(bench.docker.images.get(minio_image).attrs["Config"]["User"]).partition(":")
        command += ["--tmpfs", f"/data:rw,size={size},uid={uid},gid={gid or uid},mode=0750"]
    else:
        bench.minio_storage = "a Docker volume on the same disk"
        command += ["--mount", f"type=volume,src={container},dst=/data"]
        bench.on_exit(quietly, "docker", "volume", "rm", container)
    run(*command, minio_image, quiet=True)

    def its_log() -> str:
        logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True, check=False)
        return f"MinIO to start; its log:\n{logs.stdout}{logs.stderr}"

    wait_until(lambda: answers(f"http://127.0.0.1:{port}/minio/health/live"), its_log, 60, interval=0.5)
    return network, str(port), user, password


def pipeline_runs(bench: Bench, minio_image: str, compress: str) -> tuple[list[dict[str, Any]], int]:
    """GoBackup's runs of the pipeline in the image, and the archive's size;
    stops unless each run uploaded the archive it copied locally."""
    network, port, user, password = start_minio(bench, minio_image)
    client = Minio(f"127.0.0.1:{port}", access_key=user, secret_key=password, secure=False)
    client.make_bucket("bench")
    settings = {
        "root": BENCH_ROOT,
        "runs": PIPELINE_RUNS,
        "model": MODEL,
        "database": DATABASE,
        "bacpac": BACPAC,
        "compress": compress,
        "endpoint": "http://minio:9000",
        "bucket": "bench",
        "path": f"bench/{MODEL}",
        "access_key": user,
        "secret_key": password,
    }
    log(f"backup pipeline: gobackup perform, 3 runs ({compress}; MinIO and local storages)")
    result = bench.in_image("pipeline", stdin=json.dumps(settings), network=network)
    if "error" in result:
        raise RuntimeError(f"gobackup perform failed:\n{result['error']}")
    runs = result["runs"]
    uploaded = {
        item.object_name.rsplit("/", 1)[-1]: item.size
        for item in client.list_objects("bench", prefix=f"bench/{MODEL}/", recursive=True)
        if ".gobackup-state" not in item.object_name
    }
    copies = {name: size for each in runs for name, size in each["local_copies"].items()}
    if len(uploaded) != len(runs) or any(uploaded.get(name) != size for name, size in copies.items()):
        raise RuntimeError(f"unexpected result: uploaded {uploaded}, local copies {copies}")
    return runs, max(copies.values())


def pipeline_rows(bench: Bench, minio_image: str) -> list[Row]:
    compress = role_defaults("backup_config")["backup_config_compress"]
    runs, archive_bytes = pipeline_runs(bench, minio_image, compress)
    log("physical floor: sequential write and read of the same size on the same volume")
    floor = bench.in_image("floor", f"{BENCH_ROOT}/floor", str(bench.size))
    gib = bench.size / GIB
    floor_seconds = floor["write_seconds"] + floor["read_seconds"]
    seconds = statistics.median(each["seconds"] for each in runs)
    durable = statistics.median(each["seconds"] + each["sync_seconds"] for each in runs)
    steady = max(runs[1:], key=lambda each: each["peak_bytes"])
    # The moment before GoBackup removes its temp dir: the bacpac, the
    # archive, the new local copy and the previous one (pruned just after).
    needed = bench.size + 3 * archive_bytes
    run_times = ", ".join(f"{each['seconds']:.1f}" for each in runs)
    uploads = [each["upload_seconds"] for each in runs if each["upload_seconds"] is not None]
    upload = statistics.median(uploads) if uploads else None
    return [
        Row(
            f"4. Pipeline after the export, per GiB: archive ({compress}) + upload to MinIO + local copy"
            " (median of 3 runs; runs 2 and 3 prune the previous local copy)",
            f"{seconds / gib:.1f} s/GiB (runs: {run_times} s for {gibibytes(bench.size)})",
        ),
        Row(
            "4. ... of which the upload to MinIO (GoBackup's log: Uploaded ... Duration)",
            f"{upload / gib:.1f} s/GiB" if upload is not None else "not in GoBackup's log",
        ),
        Row(
            "4. ... until written to disk (GoBackup does not flush: sync -f of the volume after each run)",
            f"{durable / gib:.1f} s/GiB",
        ),
        Row(
            "4. Floor on the same volume, per GiB: 1 sequential write (fdatasync) + 1 read (page cache dropped),"
            " median of 3",
            f"{floor_seconds / gib:.1f} s/GiB (write {floor['write_seconds'] / gib:.1f}"
            f" + read {floor['read_seconds'] / gib:.1f})",
        ),
        Row(
            "4. Pipeline beyond the floor: as GoBackup returns / until on disk",
            f"x{seconds / floor_seconds:.2f}, {(seconds - floor_seconds) / gib:+.1f} s/GiB"
            f" / x{durable / floor_seconds:.2f}, {(durable - floor_seconds) / gib:+.1f} s/GiB",
        ),
        Row(
            "4. Peak work-volume use per GiB of bacpac, sampled every 100 ms (runs 2 and 3)",
            f"{steady['peak_bytes'] / bench.size:.2f} GiB/GiB ({steady['samples']} samples; before the run"
            f" {steady['baseline_bytes'] / bench.size:.2f}: the bacpac and the previous local copy)",
        ),
        Row(
            "4. Work volume needed per GiB of bacpac: bacpac + archive + new and previous local copy",
            f"{needed / bench.size:.2f} GiB/GiB (exists for a moment at the end of each run)",
        ),
    ]
