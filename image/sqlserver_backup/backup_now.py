"""backup-now: runs models once, now, as the scheduler runs them.

`docker exec <container> backup-now [--model sales ...]` first goes through
docker-entrypoint, as the container's main command did: the secrets of
*_FILE, the checked configuration, the CA bundle and TMPDIR on the work
volume (sqlpackage buffers table data there; the container's /tmp is a small
tmpfs). The notification relay and the sqlpackage wrapper are the running
container's. Each model then runs in a `gobackup perform` of its own, holding
the model (model_locks): never beside a scheduled run of it, nor beside
another backup-now. Prints `BACKUP-NOW OK|FAIL model=<name>` per model;
exits 1 when any failed."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from sqlserver_backup import gobackup_config, gobackup_env, model_locks, temp_paths
from sqlserver_backup.config_errors import ConfigError
from sqlserver_backup.errors import RestoreError
from sqlserver_backup.models import active_config, chosen_models

ENTRYPOINT = "/usr/local/bin/docker-entrypoint"
# Given by backup-now to itself through the entrypoint: the environment is ready.
PREPARED = "--prepared-by-entrypoint"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def say(line: str) -> None:
    print(f"backup-now: {line}", flush=True)


def scheduled_run(work: Path, model: str) -> str:
    """The scheduled run of the model in progress, '' when none."""
    for temp_dir in temp_paths.temp_dirs(work):
        with contextlib.suppress(FileNotFoundError):  # the run ended meanwhile
            if model in temp_paths.models_in(temp_dir):
                return (
                    f"the run in progress in {temp_dir} (if docker logs show no run of model {model}, that folder"
                    " was left by a run cut off: remove it)"
                )
    return ""


def perform(config: Path, model: str) -> int:
    """`gobackup perform` of one model; a SIGINT, SIGTERM or SIGHUP stops it
    and removes the TempPath it worked in (the sqlpackage wrapper noted it),
    so a manual run cut off leaves nothing that looks like a run in progress."""
    environment = {**os.environ, model_locks.HOLDER_VARIABLE: model}
    command = ["gobackup", "perform", "-c", str(config), "-m", model]
    child = subprocess.Popen(command, env=environment, start_new_session=True)
    stopped: list[int] = []

    def stop(number: int, _frame: object) -> None:
        stopped.append(number)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)

    previous = {number: signal.signal(number, stop) for number in STOP_SIGNALS}
    try:
        status = child.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if not stopped:
        return status
    for temp_dir in model_locks.noted_temp_paths(model):
        shutil.rmtree(temp_dir, ignore_errors=True)
        say(f"model {model}: stopped; removed {temp_dir}")
    return 128 + stopped[0]


def run_model(config: Path, work: Path, model: str, wait: float) -> bool:
    try:
        with model_locks.manual_run(model, lambda: scheduled_run(work, model), wait, say):
            say(f"model {model}: running gobackup perform")
            status = perform(config, model)
    except RestoreError as error:
        print(f"BACKUP-NOW FAIL model={model}: {error}", flush=True)
        return False
    if status != 0:
        print(f"BACKUP-NOW FAIL model={model}: gobackup perform exited {status} (see above)", flush=True)
        return False
    print(f"BACKUP-NOW OK model={model}", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="backup-now", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", action="append", help="a model to run (repeatable; default: every model)")
    parser.add_argument(
        "--wait",
        type=float,
        default=model_locks.WAIT_SECONDS,
        help=f"seconds to wait for a run that holds a model (default {model_locks.WAIT_SECONDS})",
    )
    parser.add_argument("--config", type=Path, help="GoBackup configuration (default: the active one)")
    parser.add_argument(PREPARED, action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if not arguments.prepared_by_entrypoint:
        os.execv(ENTRYPOINT, [ENTRYPOINT, "backup-now", PREPARED, *argv])  # noqa: S606 - the image's entrypoint
    try:
        config = active_config(arguments.config)
        document, _ = gobackup_config.load(config, gobackup_env.resolve_file_env(os.environ))
        work = temp_paths.workdir(document)
        models = chosen_models(document, arguments.model)
    except ConfigError as error:
        print(f"backup-now: {'; '.join(error.reasons)}", file=sys.stderr)
        return 2
    results = [run_model(config, work, model, arguments.wait) for model in models]
    return 0 if all(results) else 1
