"""The benchmark's measurements inside the backup image (bench/bench.py runs
it there), so they use the image's own tar, gzip, zstd and GoBackup on the
work-dir volume. Standard library only (Python 3.10 of ubuntu:22.04 too).
Each command prints one JSON document on stdout.

  sizes                       bytes of the tools and of every installed package
  make-bacpac PATH BYTES      a .bacpac-like file: a zip of random (incompressible) data
  archive DIR MODEL TYPE...   GoBackup's tar command per compress type: time and size
  floor DIR BYTES             one sequential write (fsync) and one uncached read
  pipeline                    a GoBackup run of the post-export pipeline (settings on stdin)
  work-peaks WORKDIR STOP MAP each worker's peak bytes in GoBackup's temp folders, until STOP exists
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

CHUNK = 8 * 1024 * 1024
DPKG_INFO = Path("/var/lib/dpkg/info")
TOOLS = {
    "sqlpackage": Path("/usr/local/sqlpackage"),
    "gobackup": Path("/usr/local/bin/gobackup"),
    "sqlcmd": Path("/usr/local/bin/sqlcmd"),
}
# GoBackup v3.1.1's archive extensions (compressor/base.go).
EXTENSIONS = {"tar": ".tar", "tgz": ".tar.gz", "zst": ".tar.zst", "xz": ".tar.xz"}


def emit(document: Any) -> None:
    json.dump(document, sys.stdout)
    sys.stdout.write("\n")


def tree_bytes(path: Path) -> int:
    """Apparent size of the regular files under path (what an image layer stores)."""
    if path.is_file():
        return path.lstat().st_size
    return sum(entry.lstat().st_size for entry in path.rglob("*") if entry.is_file() and not entry.is_symlink())


def sizes() -> None:
    packages: dict[str, dict[str, int]] = {}
    installed_size: dict[str, int] = {}
    status = Path("/var/lib/dpkg/status").read_text(encoding="utf-8")
    for stanza in status.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line[0].isspace())
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            installed_size[fields["Package"]] = int(fields.get("Installed-Size", "0")) * 1024
    seen: set[tuple[int, int]] = set()
    for listing in DPKG_INFO.glob("*.list"):
        name = listing.name[: -len(".list")].split(":", 1)[0]
        total = 0
        for line in listing.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                status_of = os.lstat(line)
            except OSError:
                continue  # excluded by dpkg's path-exclude, or removed
            if not os.path.isfile(line) or os.path.islink(line) or (status_of.st_dev, status_of.st_ino) in seen:
                continue
            seen.add((status_of.st_dev, status_of.st_ino))
            total += status_of.st_size
        packages[name] = {"files": total, "installed_size": installed_size.get(name, 0)}
    bytecode = sum(path.stat().st_size for path in Path("/usr").rglob("__pycache__/*.pyc"))
    tools = {name: tree_bytes(path) for name, path in TOOLS.items()}
    emit({"tools": tools, "packages": packages, "bytecode": bytecode})


def drop_from_cache(path: Path) -> None:
    """Evicts the file's pages from the page cache, so the next read is a disk read."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(descriptor)
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(descriptor)


def make_bacpac(path: Path, size: int) -> None:
    """A zip shaped like a bacpac whose table data is random: as incompressible
    as the deflated BCP files of a real one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    chunks_per_entry = 8
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as package:
        package.writestr("model.xml", '<?xml version="1.0"?><DataSchemaModel/>')
        package.writestr("Origin.xml", '<?xml version="1.0"?><DacOrigin/>')
        written, entry_number = 0, 0
        while written < size:
            name = f"Data/dbo.Sales/TableData-{entry_number:03d}-00000.BCP"
            with package.open(name, "w", force_zip64=True) as entry:
                for _ in range(chunks_per_entry):
                    block = os.urandom(min(CHUNK, size - written))
                    entry.write(block)
                    written += len(block)
                    if written >= size:
                        break
            entry_number += 1
    drop_from_cache(path)
    emit({"path": str(path), "bytes": path.stat().st_size, "seconds": time.monotonic() - started})


def archive(directory: Path, model: str, kinds: list[str], rounds: int = 3) -> None:
    """Runs, in GoBackup's temp dir, the command GoBackup v3.1.1 runs for each
    compress type: `tar --ignore-failed-read -a -cf <dir>/<time><ext> <model>`
    (-a: tar picks gzip or zstd by the extension; no pigz in the image). Each
    type runs once per round, in a rotated order, and reads the .bacpac from
    disk each time."""
    results: dict[str, dict[str, Any]] = {kind: {"type": kind, "runs": [], "cpu": []} for kind in kinds}
    for round_number in range(rounds):
        for kind in kinds[round_number % len(kinds) :] + kinds[: round_number % len(kinds)]:
            for source in (directory / model).rglob("*"):
                if source.is_file():
                    drop_from_cache(source)
            target = directory / ("bench" + EXTENSIONS[kind])
            before = os.times()
            started = time.monotonic()
            command = ["tar", "--ignore-failed-read", "-a", "-cf", str(target), model]
            subprocess.run(command, cwd=directory, check=True)
            results[kind]["runs"].append(time.monotonic() - started)
            after = os.times()
            results[kind]["cpu"].append(
                (after.children_user - before.children_user) + (after.children_system - before.children_system)
            )
            results[kind]["bytes"] = target.stat().st_size
            target.unlink()
    for result in results.values():
        result["seconds"] = statistics.median(result["runs"])
        result["cpu_seconds"] = statistics.median(result.pop("cpu"))
    emit(list(results.values()))


def floor(directory: Path, size: int, rounds: int = 3) -> None:
    """The physical floor on this volume: one sequential write of size bytes,
    made durable (fdatasync), and one read of it from disk (its pages dropped
    from the cache first). The median of a few rounds."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "floor.bin"
    block = os.urandom(CHUNK)
    writes, reads = [], []
    for _ in range(rounds):
        started = time.monotonic()
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            written = 0
            while written < size:
                written += os.write(descriptor, block[: min(CHUNK, size - written)])
            os.fdatasync(descriptor)
        finally:
            os.close(descriptor)
        writes.append(time.monotonic() - started)
        drop_from_cache(path)
        started = time.monotonic()
        with path.open("rb", buffering=0) as source:
            buffer = bytearray(CHUNK)
            while source.readinto(buffer):
                pass
        reads.append(time.monotonic() - started)
        path.unlink()
    emit(
        {
            "bytes": size,
            "write_seconds": statistics.median(writes),
            "read_seconds": statistics.median(reads),
            "writes": writes,
            "reads": reads,
        }
    )


class DiskSampler(threading.Thread):
    """Samples the bytes allocated under a directory (each inode once, as du
    does) every interval seconds and keeps the peak."""

    def __init__(self, root: Path, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak, self.samples = 0, 0
        self.stopped = threading.Event()

    def used(self) -> int:
        seen: set[int] = set()
        total = 0
        for directory, _, files in os.walk(self.root):
            for name in files:
                try:
                    status = os.lstat(os.path.join(directory, name))
                except OSError:
                    continue  # removed while walking
                if status.st_ino not in seen:
                    seen.add(status.st_ino)
                    total += status.st_blocks * 512
        return total

    def run(self) -> None:
        while not self.stopped.is_set():
            self.peak = max(self.peak, self.used())
            self.samples += 1
            self.stopped.wait(self.interval)


# The export stand-in of the benchmark: GoBackup runs it as `sqlpackage
# /Action:Export ... /TargetFile:<dump path>/<db>.bacpac`; it hard-links the
# prepared .bacpac there, so the export itself costs nothing and the run
# measures what follows it.
EXPORT_SHIM = """#!/bin/sh
for argument; do
  case "$argument" in /TargetFile:*) exec ln -- "$BENCH_BACPAC" "${argument#/TargetFile:}" ;; esac
done
echo "bench sqlpackage: no /TargetFile" >&2
exit 1
"""


def write_config(settings: dict[str, Any], root: Path) -> Path:
    """gobackup.yml of the project's model shape: one mssql database, the
    project's compress type, a MinIO storage (keep 7) and a local storage
    (keep 1, as the image's bundled configuration)."""
    config_dir = root / "config"
    config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Secrets go to the .env GoBackup loads beside its configuration.
    environment_file = config_dir / ".env"
    environment_file.touch(mode=0o600)
    environment_file.write_text(
        f"BENCH_MINIO_ACCESS_KEY={settings['access_key']}\nBENCH_MINIO_SECRET_KEY={settings['secret_key']}\n",
        encoding="utf-8",
    )
    model = settings["model"]
    database = {"type": "mssql", "host": "127.0.0.1", "database": settings["database"], "password": "unused"}
    minio = {
        "type": "minio",
        "endpoint": settings["endpoint"],
        "bucket": settings["bucket"],
        "path": settings["path"],
        "access_key_id": "${BENCH_MINIO_ACCESS_KEY}",
        "secret_access_key": "${BENCH_MINIO_SECRET_KEY}",
        "timeout": 3600,
        "keep": 7,
    }
    config = {
        "workdir": str(root / "work"),
        "models": {
            model: {
                "compress_with": {"type": settings["compress"]},
                "databases": {model: database},
                "storages": {"minio": minio, "local": {"type": "local", "path": str(root / "local"), "keep": 1}},
            }
        },
    }
    config_file = config_dir / "gobackup.yml"
    config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is YAML
    return config_file


# GoBackup's upload progress, redrawn with carriage returns: noise in an error report.
PROGRESS_BAR = re.compile(r"\r?\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[MinIO\] \[[=-]*\] [\d.]+% \([^)]*\)")


# "[MinIO] Uploaded: <url> (Duration 5 seconds 234 milliseconds)": GoBackup's own timing.
UPLOADED = re.compile(r"\[MinIO\] Uploaded: \S+ \(Duration ([^)]*)\)")
DURATION_UNITS = {"minute": 60.0, "second": 1.0, "millisecond": 1e-3, "microsecond": 1e-6}


def upload_seconds(output: str) -> float | None:
    found = UPLOADED.search(output)
    if not found:
        return None
    parts = re.findall(r"([\d.]+) (minute|second|millisecond|microsecond)s?\b", found.group(1))
    return sum(float(number) * DURATION_UNITS[unit] for number, unit in parts)


def pipeline() -> None:
    """`gobackup perform` of that model, as many times as asked (settings on
    stdin), with the export replaced by a hard link of the prepared .bacpac.
    The second run starts where a scheduled run would: with the previous
    local copy, which keep: 1 prunes once the new one is stored."""
    settings = json.load(sys.stdin)
    root = Path(settings["root"])
    config_file = write_config(settings, root)
    shim_dir = root / "bin"
    shim_dir.mkdir(exist_ok=True)
    (shim_dir / "sqlpackage").write_text(EXPORT_SHIM, encoding="utf-8")
    (shim_dir / "sqlpackage").chmod(0o755)
    environment = {**os.environ, "PATH": f"{shim_dir}:{os.environ['PATH']}", "BENCH_BACPAC": settings["bacpac"]}
    runs = []
    for number in range(settings["runs"]):
        if number:
            time.sleep(1.1)  # archive names have a resolution of one second
        sampler = DiskSampler(root)
        baseline = sampler.used()
        sampler.start()
        started = time.monotonic()
        run = subprocess.run(
            ["gobackup", "perform", "-c", str(config_file), "-m", settings["model"]],
            env=environment,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.monotonic() - started
        sampler.stopped.set()
        sampler.join()
        if run.returncode != 0:
            emit({"error": PROGRESS_BAR.sub("", run.stdout + run.stderr)[-4000:]})
            return
        # GoBackup does not flush what it wrote: the time until the volume's
        # file system has written it back is part of the cost.
        started = time.monotonic()
        subprocess.run(["sync", "-f", str(root)], check=True)
        runs.append(
            {
                "seconds": seconds,
                "upload_seconds": upload_seconds(run.stdout + run.stderr),
                "sync_seconds": time.monotonic() - started,
                "baseline_bytes": baseline,
                "peak_bytes": max(sampler.peak, baseline),
                "after_bytes": sampler.used(),
                "samples": sampler.samples,
                "local_copies": {path.name: path.stat().st_size for path in sorted((root / "local").glob("*.tar*"))},
            }
        )
    emit({"runs": runs})
    shutil.rmtree(root / "local", ignore_errors=True)


def work_peaks(workdir: Path, stop: Path, worker_of: dict[str, int]) -> None:
    """Samples GoBackup's temp folders (<workdir>/<unix-nanos>/<model>/, one
    per running model) every 0.5 s until `stop` exists; each worker's peak of
    the bytes its models hold at once."""
    peaks: dict[int, int] = {}
    samples = 0
    while not stop.exists():
        held: dict[int, int] = {}
        for run_dir in list(workdir.iterdir()) if workdir.is_dir() else ():
            if not run_dir.name.isdigit():
                continue
            try:
                model_dirs = list(run_dir.iterdir())
            except OSError:
                continue  # the run ended
            for model_dir in model_dirs:
                worker = worker_of.get(model_dir.name)
                if worker is None:
                    continue
                with contextlib.suppress(OSError):  # the run ended while it was read
                    held[worker] = held.get(worker, 0) + tree_bytes(run_dir)
                break
        for worker, size in held.items():
            peaks[worker] = max(peaks.get(worker, 0), size)
        samples += 1
        time.sleep(0.5)
    emit({"peaks": peaks, "samples": samples})


def main(argv: list[str]) -> int:
    command, arguments = argv[0], argv[1:]
    if command == "sizes":
        sizes()
    elif command == "make-bacpac":
        make_bacpac(Path(arguments[0]), int(arguments[1]))
    elif command == "archive":
        archive(Path(arguments[0]), arguments[1], arguments[2:])
    elif command == "floor":
        floor(Path(arguments[0]), int(arguments[1]))
    elif command == "pipeline":
        pipeline()
    elif command == "work-peaks":
        work_peaks(Path(arguments[0]), Path(arguments[1]), json.loads(arguments[2]))
    else:
        print(f"unknown command {command}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
