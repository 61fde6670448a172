"""backup-restore --drill: proves the archive restores. Every database is
imported into the restore server as <database>_drill_<time>, checked (DBCC
CHECKDB), the rows of every table counted, and dropped whatever happens
(SIGTERM included); one DRILL PASS or DRILL FAIL line per database, then one
for the model, and the result per database in drills.json of the state
volume (last proven, the import's duration, the archive's age and size).
Drills never overlap: a second one waits for the first (drill.lock)."""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sqlserver_backup import state_files
from sqlserver_backup.archives import archive_timestamp, fetch_packages, package_tables
from sqlserver_backup.database import Database, utc_stamp
from sqlserver_backup.errors import RestoreError
from sqlserver_backup.models import ModelArchives

DRILL_LOCK = "drill.lock"


def drill(archives: ModelArchives, server: Database, name: str, workdir: Path) -> int:
    """Proves an archive restores: verified, every database imported into the
    restore server, DBCC CHECKDB, every table counted, then dropped. Records
    the result per database in the state volume (drills.json)."""
    model = archives.model
    made = archive_timestamp(name, archives.body)
    results: dict[str, dict[str, Any]] = {}
    size = 0
    try:
        packages, size = fetch_packages(archives, name, "", workdir)
    except RestoreError as error:
        known = [server.name] if server.name else list(previous_drills(model)) or ["*"]
        results = {database: {"result": "fail", "reason": str(error)} for database in known}
        packages = []
    for package in packages:
        results[package.stem] = drill_package(server, package)
    record_drills(model, name, made, size, results)
    return report(model, name, results)


def drill_package(server: Database, package: Path) -> dict[str, Any]:
    """One database's drill: imported as a scratch database, checked, counted
    and dropped; its result (pass with its counts, or fail with the reason)."""
    scratch = f"{package.stem}_drill_{utc_stamp()}"
    result: dict[str, Any] = {}
    try:
        started = time.monotonic()
        print(f"restore: importing {package.name} into {scratch} on {server.server}", flush=True)
        server.import_package(package, scratch)
        seconds = time.monotonic() - started
        server.check(scratch)
        print(f"restore: DBCC CHECKDB of {scratch} found no errors", flush=True)
        counts = server.row_counts(scratch, package_tables(package))
        result = {
            "result": "pass",
            "reason": "",
            "restore_seconds": round(seconds, 3),
            "tables": len(counts),
            "rows": sum(counts.values()),
            "row_counts": counts,
        }
        print(f"restore: drill counted {', '.join(f'{t}={c}' for t, c in counts.items())}", flush=True)
    except RestoreError as error:
        result = {"result": "fail", "reason": str(error)}
    finally:
        left = server.remove_if_there(scratch)
        if left:
            result.update(result="fail", reason=(result.get("reason", "") + left).lstrip("; "))
    return result


def report(model: str, name: str, results: Mapping[str, Mapping[str, Any]]) -> int:
    """The DRILL PASS or DRILL FAIL lines, per database and for the model; the exit status."""
    for database, result in sorted(results.items()):
        if result["result"] == "pass":
            print(
                f"DRILL PASS model={model} database={database} archive={name} tables={result['tables']}"
                f" rows={result['rows']} restore_seconds={result['restore_seconds']:.1f}",
                flush=True,
            )
        else:
            print(f"DRILL FAIL model={model} database={database} reason={result['reason']}", flush=True)
    failed = sorted(database for database, result in results.items() if result["result"] != "pass")
    if failed:
        print(f"DRILL FAIL model={model} archive={name} failed={','.join(failed)} databases={len(results)}")
        return 1
    tables = sum(result["tables"] for result in results.values())
    rows = sum(result["rows"] for result in results.values())
    print(f"DRILL PASS model={model} archive={name} databases={len(results)} tables={tables} rows={rows}")
    return 0


@contextlib.contextmanager
def one_drill_at_a_time() -> Iterator[None]:
    """A drill never overlaps another (the scheduler's and restore.yml's alike):
    a second one waits for the first."""
    state_files.STATE_DIR.mkdir(parents=True, exist_ok=True)
    with (state_files.STATE_DIR / DRILL_LOCK).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("restore: another drill is running; this one waits for it", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def previous_drills(model: str) -> dict[str, Any]:
    return (state_files.read_state(state_files.DRILLS_STATE).get("models") or {}).get(model) or {}


def record_drills(
    model: str, archive: str, made: float | None, size: int, results: Mapping[str, Mapping[str, Any]]
) -> None:
    """drills.json: per model and database, the last drill and the last proof
    (a failed drill keeps when the database was last proven restorable)."""
    state = state_files.read_state(state_files.DRILLS_STATE)
    records = state.setdefault("models", {}).setdefault(model, {})
    now = time.time()
    for database, result in results.items():
        record = records.setdefault(
            database,
            {"proven_at": None, "restore_seconds": None, "archive_age_seconds": None},
        )
        record.update(
            last_drill=now,
            result=result["result"],
            reason=result.get("reason", ""),
            archive=archive,
            archive_time=made,
            archive_size=size,
        )
        if result["result"] == "pass":
            record.update(
                proven_at=now,
                restore_seconds=result["restore_seconds"],
                archive_age_seconds=round(now - made, 3) if made else None,
                tables=result["tables"],
                rows=result["rows"],
                row_counts=result["row_counts"],
            )
    state_files.write_state(state_files.DRILLS_STATE, state)
