"""Restore a GoBackup archive of this container's configuration into SQL Server.

  backup-restore --model sales --list
  backup-restore --model sales --list-versions
  backup-restore --model sales [--archive 2026.11.23.02.00.00.tar [--version-id ID]] [--database SalesDemo]
                 [--target-database Sales_copy] [--replace [--drop-replaced]]
  backup-restore --model sales --target-database Sales --into-source --confirm Sales [--replace]
  backup-restore --model sales --drill

Where it imports: the model's restore server in restore.yml beside the
configuration (written by the backup_config role; without it RESTORE_MSSQL_*).
That server must be set and must not be any server this host backs up: there
is no fallback to the export's server. Only --into-source imports into the
model's own source server, and only with --target-database and --confirm
repeating its name.

It downloads the latest (or the named) archive from MinIO with the model's own
key, decrypts it when the model has encrypt_with (openssl; the current
passphrase, then each previous one restore.yml names), unpacks it in the work
directory, checks every .bacpac in it (all_databases archives hold several) and
imports each under a temporary name. The import is checked (DBCC CHECKDB, every
table counted) before it takes the target's name: an existing target is
renamed aside to <target>_replaced_<UTC time> (dropped with --drop-replaced)
and only with --replace. Any failure leaves the target as it was and drops the
temporary database. The default target is <database>_restored_<archive time>.
On a versioned bucket (object lock) --list-versions lists every retained
version of each archive and --version-id restores one of them.

--drill proves the archive restores (see drill.py). Secrets are read from the
configuration's .env or *_FILE variables; the SQL password reaches sqlcmd
through SQLCMDPASSWORD, never its command line.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import xml.etree.ElementTree as ElementTree
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlserver_backup import config_errors, gobackup_config, gobackup_env
from sqlserver_backup.archives import archive_time, fetch_packages, listed_archives, package_tables
from sqlserver_backup.database import Database, utc_stamp
from sqlserver_backup.drill import drill, one_drill_at_a_time
from sqlserver_backup.errors import RestoreError
from sqlserver_backup.models import ModelArchives, active_config, model_archives, restore_server, work_directory


class Stopped(BaseException):
    """SIGTERM or SIGINT: unwinds through every finally, so nothing is left behind."""


def stop_on_signals() -> None:
    def stop(number: int, _frame: Any) -> None:
        raise Stopped(f"stopped by signal {signal.Signals(number).name}")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def import_checked(server: Database, package: Path, target: str, replace: bool, drop_replaced: bool) -> str:
    """Imports a package as `target` and never leaves a moment without it:
    the import goes to a temporary name and is checked (DBCC CHECKDB, every
    table counted); only then is an existing target renamed aside
    (<target>_replaced_<UTC time>) and the new one renamed into place. Any
    failure leaves the target as it was and drops the temporary database.
    Returns the name the old database was kept under ('' when none)."""
    stamp = utc_stamp()
    temporary, aside = f"{target}_restoring_{stamp}", f"{target}_replaced_{stamp}"
    replaced = ""
    try:
        print(f"restore: importing {package.name} into {temporary} on {server.server}", flush=True)
        server.import_package(package, temporary)
        server.check(temporary)
        counts = server.row_counts(temporary, package_tables(package))
        print(f"restore: {temporary} is consistent (DBCC CHECKDB) and holds {sum(counts.values())} rows", flush=True)
        if server.exists(target):
            if not replace:
                raise RestoreError(f"database {target} appeared on {server.server} during the import; nothing replaced")
            server.rename(target, aside)
            replaced = aside
            try:
                server.rename(temporary, target)
            except RestoreError:
                server.rename(aside, target)
                replaced = ""
                raise
            print(f"restore: the previous {target} is kept as {aside}", flush=True)
            if drop_replaced:
                server.drop(aside)
                print(f"restore: dropped {aside} (--drop-replaced)", flush=True)
                replaced = ""
        else:
            server.rename(temporary, target)
        return replaced
    except BaseException as error:
        left = server.remove_if_there(temporary)
        if left and isinstance(error, RestoreError):
            raise RestoreError(f"{error}{left}") from None
        raise


def restore(arguments: argparse.Namespace) -> int:
    config = active_config(arguments.config)
    document, environment = gobackup_config.load(config, gobackup_env.resolve_file_env(os.environ))
    model = arguments.model
    archives, source = model_archives(config, document, environment, model, arguments.timeout)
    if arguments.list_versions or arguments.list:
        return list_archives(archives, arguments.list_versions)

    # Every refusal comes before anything is downloaded.
    server = import_server(arguments, config, document, environment, source)
    if arguments.drop_replaced and not arguments.replace:
        raise RestoreError("--drop-replaced only goes with --replace")
    target = arguments.target_database
    if target and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}", target):
        raise RestoreError(f"target database name {target!r} may hold only letters, digits and _.- (100 at most)")
    name = choose_archive(archives, arguments)
    if target and not arguments.drill and server.exists(target) and not arguments.replace:
        raise RestoreError(
            f"database {target} already exists on {server.server}; pass --replace to swap it for the restored one"
            " (the old one is kept as <name>_replaced_<time>)"
        )

    workdir = work_directory(document, "drill" if arguments.drill else "restore")
    try:
        if arguments.drill:
            with one_drill_at_a_time():
                return drill(archives, server, name, workdir)
        packages, _ = fetch_packages(archives, name, arguments.version_id or "", workdir)
        packages = select_packages(packages, arguments.database, bool(target))
        for package in packages:
            database = target or f"{package.stem}_restored_{archive_time(name)}"
            replaced = import_checked(server, package, database, arguments.replace, arguments.drop_replaced)
            kept = f" replaced={replaced}" if replaced else ""
            print(f"RESTORED model={model} archive={name} database={package.stem} target={database}{kept}", flush=True)
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def list_archives(archives: ModelArchives, versions: bool) -> int:
    """--list-versions (every retained version) or --list (the current
    archives, oldest first, then what is ignored and why)."""
    storage = archives.storage
    if versions:
        lines = [f"{name} version={version} {state}" for name, version, state in storage.versions()]
        print("\n".join(lines) if lines else f"no archive versions under {storage.bucket}/{storage.path}")
        return 0
    listing = listed_archives(storage.objects(), archives.body)
    print("\n".join(listing.names) if listing.names else f"no archives under {storage.bucket}/{storage.path}")
    for name, why in listing.ignored.items():
        print(f"IGNORED {name}: {why}")
    return 0


def import_server(
    arguments: argparse.Namespace,
    config: Path,
    document: Mapping[str, Any],
    environment: Mapping[str, str],
    source: Database,
) -> Database:
    """The model's restore server, or with --into-source (confirmed) its source server."""
    if not arguments.into_source:
        return restore_server(config, document, environment, arguments.model, source)
    if arguments.drill:
        raise RestoreError("a drill never imports into a source server: drop --into-source")
    if not arguments.target_database:
        raise RestoreError("--into-source needs --target-database, the database to restore on the source server")
    if arguments.confirm != arguments.target_database:
        raise RestoreError(
            f"--into-source writes to the source server {source.server}: repeat the target's name with"
            f" --confirm {arguments.target_database} (Ansible: -e restore_confirm=<target database>)"
        )
    print(f"restore: into the SOURCE server {source.server}, as confirmed for {arguments.target_database}")
    return source


def choose_archive(archives: ModelArchives, arguments: argparse.Namespace) -> str:
    storage = archives.storage
    if arguments.version_id:
        # A retained version, perhaps behind a delete marker: the listing of
        # current archives does not show it.
        if not arguments.archive:
            raise RestoreError("--version-id needs --archive, the archive's name (see --list-versions)")
        if (arguments.archive, arguments.version_id) not in {(n, v) for n, v, _ in storage.versions()}:
            raise RestoreError(
                f"version {arguments.version_id} of {arguments.archive} is not in {storage.bucket}/{storage.path}"
                " (see --list-versions)"
            )
        return arguments.archive
    listing = listed_archives(storage.objects(), archives.body)
    for ignored, why in listing.ignored.items():
        print(f"restore: ignoring {storage.bucket}/{storage.key(ignored)}: {why}", flush=True)
    names = listing.names
    if arguments.archive in listing.ignored:
        # Named by the operator: restored, with what is odd about it.
        why = listing.ignored[arguments.archive]
        print(f"restore: {arguments.archive} is taken because --archive names it, although {why}", flush=True)
        return arguments.archive
    if not names:
        raise RestoreError(f"no archives of model {arguments.model} in {storage.endpoint} bucket {storage.bucket}")
    name = arguments.archive or names[-1]
    if name not in names:
        raise RestoreError(f"archive {name} is not in {storage.bucket}/{storage.path} (latest: {names[-1]})")
    return name


def select_packages(packages: list[Path], database: str | None, one_target: bool) -> list[Path]:
    """The packages to restore: the one named by --database, else all (an
    all_databases archive holds one per database)."""
    if database:
        chosen = [package for package in packages if package.stem.lower() == database.lower()]
        if not chosen:
            held = ", ".join(package.stem for package in packages)
            raise RestoreError(f"the archive holds no database {database} (it holds {held})")
        return chosen
    if one_target and len(packages) > 1:
        held = ", ".join(package.stem for package in packages)
        raise RestoreError(f"the archive holds several databases ({held}): name one with --database")
    return packages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="GoBackup model to restore")
    parser.add_argument("--archive", help="archive file name (default: the latest)")
    parser.add_argument("--version-id", help="restore this retained version of --archive (see --list-versions)")
    parser.add_argument("--database", help="the database to restore from an archive that holds several")
    parser.add_argument("--target-database", help="database to import into (default: a new name)")
    parser.add_argument("--replace", action="store_true", help="swap an existing target for the restored database")
    parser.add_argument("--drop-replaced", action="store_true", help="with --replace: drop the old database after")
    parser.add_argument(
        "--into-source", action="store_true", help="restore into the model's source server (needs --confirm)"
    )
    parser.add_argument("--confirm", default="", help="with --into-source: the target database's name again")
    parser.add_argument("--drill", action="store_true", help="restore into scratch databases, check them, drop them")
    parser.add_argument("--list", action="store_true", help="list the model's archives and exit")
    parser.add_argument(
        "--list-versions", action="store_true", help="list every retained version of the archives and exit"
    )
    parser.add_argument("--config", type=Path, help="GoBackup configuration (default: the active one)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for each MinIO request")
    arguments = parser.parse_args(argv)
    verdict = "DRILL FAIL" if arguments.drill else "RESTORE FAIL"
    stop_on_signals()
    try:
        return restore(arguments)
    except config_errors.ConfigError as error:
        print(f"{verdict} model={arguments.model}: {'; '.join(error.reasons)}")
    except (RestoreError, OSError, zipfile.BadZipFile, ElementTree.ParseError) as error:
        print(f"{verdict} model={arguments.model}: {error}")
    except Stopped as error:
        print(f"{verdict} model={arguments.model}: {error}; nothing it created is left behind")
        return 143
    return 1
