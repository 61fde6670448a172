"""backup-verify [--model sales ...] [--all]: downloads the latest archive of
each model (--all: every kept one), checks the tar, the CRC of every entry of
each .bacpac and its model (model.xml parses and matches the SHA-256
Origin.xml recorded at export, as sqlpackage checks on import), and prints OK,
CORRUPT (damaged) or WRONG-KEY (no known passphrase opens it) per archive with
its key, then VERIFY PASS or VERIFY FAIL. Exit status 0 when all are OK, 1 when
one is not or a model has none, 2 when it could not check."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from sqlserver_backup import config_errors, gobackup_config, gobackup_env
from sqlserver_backup.archives import check_package, decrypt, listed_archives, unpack
from sqlserver_backup.errors import CorruptArchive, RestoreError, WrongKey
from sqlserver_backup.models import active_config, model_archives, work_directory


def verify(arguments: argparse.Namespace) -> int:
    config = active_config(arguments.config)
    document, environment = gobackup_config.load(config, gobackup_env.resolve_file_env(os.environ))
    models = arguments.model or sorted(document["models"])
    checked, failed = 0, 0
    workdir = work_directory(document, "verify")
    try:
        for model in models:
            archives, _ = model_archives(config, document, environment, model, arguments.timeout)
            storage = archives.storage
            listing = listed_archives(storage.objects(), archives.body)
            for name, why in listing.ignored.items():
                print(f"IGNORED model={model} key={storage.key(name)} reason={why}", flush=True)
            names = listing.names
            if not names:
                print(f"MISSING model={model}: no archives in {storage.bucket}/{storage.path}", flush=True)
                failed += 1
            for name in names if arguments.all else names[-1:]:
                checked += 1
                archive = workdir / name
                try:
                    storage.download(name, archive)
                    size = archive.stat().st_size
                    plain = decrypt(archive, model, archives.body, environment, archives.settings)
                    tables = sum(check_package(package) for package in unpack(plain, workdir / "unpacked", model))
                    print(f"OK model={model} key={storage.key(name)} size={size} tables={tables}", flush=True)
                except WrongKey as error:
                    print(f"WRONG-KEY model={model} key={storage.key(name)} reason={error}", flush=True)
                    failed += 1
                except CorruptArchive as error:
                    print(f"CORRUPT model={model} key={storage.key(name)} reason={error}", flush=True)
                    failed += 1
                finally:
                    shutil.rmtree(workdir / "unpacked", ignore_errors=True)
                    archive.unlink(missing_ok=True)
                    archive.with_name(name.removesuffix(".enc")).unlink(missing_ok=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if failed:
        print(f"VERIFY FAIL models={','.join(models)} failed={failed} archives={checked}")
        return 1
    print(f"VERIFY PASS models={','.join(models)} archives={checked}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="backup-verify", description="Check the archives of each model in MinIO.")
    parser.add_argument("--model", action="append", help="model to check (repeatable; default: every model)")
    parser.add_argument("--all", action="store_true", help="check every kept archive, not only the latest")
    parser.add_argument("--config", type=Path, help="GoBackup configuration (default: the active one)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for each MinIO request")
    arguments = parser.parse_args(argv)
    try:
        return verify(arguments)
    except config_errors.ConfigError as error:
        print(f"VERIFY ERROR: {'; '.join(error.reasons)}")
    except (RestoreError, OSError) as error:
        print(f"VERIFY ERROR: {error}")
    return 2
