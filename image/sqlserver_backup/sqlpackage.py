"""backup-sqlpackage, installed as sqlpackage first on the image's PATH, so
GoBackup runs it: it runs the real sqlpackage with the same arguments; when an
export fails for lack of disk space it adds a line naming the work volume, the
space it had and the space the export needs."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from sqlserver_backup import model_locks, work_space
from sqlserver_backup.database import Database
from sqlserver_backup.errors import RestoreError

REAL_SQLPACKAGE = "/usr/local/bin/sqlpackage"
# How .NET (and Go) report ENOSPC.
NO_SPACE = "no space left on device"
SQLPACKAGE_SHORT_NAMES = {
    "a": "action",
    "ssn": "sourceservername",
    "sdn": "sourcedatabasename",
    "su": "sourceuser",
    "sp": "sourcepassword",
    "stsc": "sourcetrustservercertificate",
    "tf": "targetfile",
}


def sqlpackage_options(argv: list[str]) -> dict[str, str]:
    """/Name:value arguments by lower-case long name; /p:Name=value as p:name."""
    options = {}
    for argument in argv:
        name, _, value = argument.lstrip("/-").partition(":")
        name = SQLPACKAGE_SHORT_NAMES.get(name.lower(), name.lower())
        if name == "p":
            name, _, value = value.partition("=")
            name = f"p:{name.lower()}"
        options[name] = value
    return options


def size_text(size: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def mount_point(path: Path) -> Path:
    path = path.resolve()
    while not os.path.ismount(path):
        path = path.parent
    return path


def space_report(options: Mapping[str, str], stderr: str, free_at_start: dict[Path, int]) -> str:
    """What a failed export needed: the volume that filled up, what it had
    free when the export started and, from SQL Server, what the export needs
    (about twice the largest table for sqlpackage's table buffer, plus the
    .bacpac and GoBackup's archive of it, up to the data's size each)."""
    target = Path(options["targetfile"])
    full = re.search(r"No space left on device\s*:\s*'([^']+)'", stderr, re.IGNORECASE)
    volume = mount_point(Path(full.group(1)).parent if full else target.parent)
    name = os.environ.get("WORK_VOLUME", "") if volume == mount_point(target.parent) else ""
    where = f"the work volume {name} (mounted at {volume})" if name else f"the volume mounted at {volume}"
    database = options.get("sourcedatabasename", "?")
    had = size_text(free_at_start[volume]) if volume in free_at_start else "an unmeasured amount"
    host, _, port = options.get("sourceservername", "").partition(",")
    source = Database(
        host=host,
        port=int(port or 1433),
        name=database,
        username=options.get("sourceuser", ""),
        password=options.get("sourcepassword", ""),
        trust=options.get("sourcetrustservercertificate", "").lower() == "true",
        args="",
    )
    try:
        tables = source.table_sizes(database) or [0]
        needs = (
            f"the export needs about {size_text(2 * max(tables) + 2 * sum(tables))} free there: twice its largest"
            f" table ({size_text(max(tables))}) for sqlpackage's table buffer, plus the .bacpac and its archive"
            f" (up to the {size_text(sum(tables))} of data each)"
        )
    except (RestoreError, ValueError, OSError) as error:
        needs = f"the export needs more than that (the database's size could not be read: {error})"
    return (
        f"*** {where} ran out of space during the export of {database}: it had {had} free when the export"
        f" started; {needs}. Free space there, or give the work volume more room"
        " (Ansible: backup_stack_work_volume_driver_opts)."
    )


def exported_model(target: str) -> str:
    """The model of GoBackup's dump path
    <TempPath>/<model>/mssql/<database key>/<database>.bacpac; '' for any other."""
    parts = Path(target).parts
    return parts[-4] if len(parts) >= 5 and parts[-3] == "mssql" else ""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    options = sqlpackage_options(argv)
    if options.get("action", "").lower() != "export" or not options.get("targetfile"):
        os.execv(REAL_SQLPACKAGE, [REAL_SQLPACKAGE, *argv])  # noqa: S606 - the arguments as GoBackup gave them
    # GoBackup logs the stdout of an export that succeeded, the stderr of one
    # that failed: the space warning goes to both.
    warning = ""
    try:
        if model := exported_model(options["targetfile"]):
            if os.environ.get(model_locks.HOLDER_VARIABLE) == model:
                model_locks.note_temp_path(model, Path(options["targetfile"]).parents[3])
            model_locks.wait_for_manual_run(model, lambda line: print(f"backup-sqlpackage: {line}", flush=True))
            if warning := work_space.warning_before_export(model):
                print(warning, flush=True)
    except RestoreError as error:
        sys.stderr.write(f"*** {error}\n")
        return 1
    # .NET's temp directory: TMPDIR, else /tmp.
    buffers = [
        Path(options["targetfile"]).parent,
        Path(options.get("p:tempdirectoryfortabledata") or os.environ.get("TMPDIR") or "/tmp"),  # noqa: S108
    ]
    free_at_start = {}
    for directory in buffers:
        with contextlib.suppress(OSError):
            free_at_start[mount_point(directory)] = shutil.disk_usage(directory).free
    # stdout goes straight to GoBackup; stderr, GoBackup's failure reason, is
    # passed on once sqlpackage has exited, the report after it.
    result = subprocess.run([REAL_SQLPACKAGE, *argv], stderr=subprocess.PIPE, check=False)
    stderr = result.stderr.decode(errors="replace")
    if result.returncode != 0 and warning:
        sys.stderr.write(warning + "\n")
    sys.stderr.write(stderr)
    if result.returncode != 0 and NO_SPACE in stderr.lower():
        try:
            report = space_report(options, stderr, free_at_start)
        except Exception as error:  # sqlpackage's own error and status must still get through
            report = f"*** (the disk space report failed: {type(error).__name__}: {error})"
        sys.stderr.write(report + "\n")
    sys.stderr.flush()
    # Killed by a signal (the memory limit's OOM kill): the shell's 128+N.
    return result.returncode if result.returncode >= 0 else 128 - result.returncode
