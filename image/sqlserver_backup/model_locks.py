"""One run of a model at a time, across processes. GoBackup's own lock is a
mutex inside one process (its scheduler): a `gobackup perform` started beside
it would run the same model at the same time, two exports of one database and
two writers of its keep state.

So a manual run (backup-now) holds the model's lock file for its whole run,
and starts only while no scheduled run of the model is in progress (a
TempPath of the model in the work dir). A scheduled run's export, in the
sqlpackage wrapper, waits while a manual run holds the lock. Each side waits
up to a limit, then fails naming the run that holds the model."""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from sqlserver_backup import state_files
from sqlserver_backup.errors import RestoreError

# Set in the environment of the `gobackup perform` a manual run starts: its
# own exports pass the lock it holds.
HOLDER_VARIABLE = "BACKUP_NOW_MODEL"
WAIT_SECONDS = 3600
TEMP_PREFIX = "temp "
POLL_SECONDS = 1.0
SAY_EVERY_SECONDS = 60


def lock_path(model: str) -> Path:
    return state_files.STATE_DIR / "locks" / f"{model}.lock"


def holder(model: str) -> str:
    """Who holds the model's lock, as the holder wrote it (its first line)."""
    with contextlib.suppress(OSError):
        return next(iter(lock_path(model).read_text(encoding="utf-8").splitlines()), "").strip()
    return ""


def note_temp_path(model: str, temp_path: Path) -> None:
    """For the manual run's own export: the TempPath its `gobackup perform`
    works in, so that a manual run cut off (Ctrl-C, a dropped docker exec)
    removes it rather than leaving what looks like a run in progress."""
    with lock_path(model).open("a", encoding="utf-8") as file:
        file.write(f"{TEMP_PREFIX}{temp_path}\n")


def noted_temp_paths(model: str) -> list[Path]:
    with contextlib.suppress(OSError):
        lines = lock_path(model).read_text(encoding="utf-8").splitlines()
        return [Path(line[len(TEMP_PREFIX) :]) for line in lines if line.startswith(TEMP_PREFIX)]
    return []


def try_lock(file: IO[str]) -> bool:
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class Patience:
    """Waiting for a model: says who holds it now and then, and gives up
    after `wait` seconds naming the holder."""

    def __init__(self, model: str, wait: float, say: Callable[[str], None], waiting: str) -> None:
        self.model, self.wait, self.say, self.waiting = model, wait, say, waiting
        self.deadline, self.said = time.monotonic() + wait, 0.0

    def another_round(self, busy: str) -> None:
        if time.monotonic() >= self.deadline:
            raise RestoreError(f"model {self.model} is held by {busy}; gave up after {self.wait:.0f} s")
        if time.monotonic() - self.said >= SAY_EVERY_SECONDS:
            self.say(f"model {self.model} is held by {busy}; {self.waiting}")
            self.said = time.monotonic()
        time.sleep(POLL_SECONDS)


@contextlib.contextmanager
def manual_run(model: str, scheduled_run: Callable[[], str], wait: float, say: Callable[[str], None]) -> Iterator[None]:
    """Holds the model for a manual run: once no other manual run holds its
    lock and `scheduled_run()` names no scheduled run in progress (checked
    again with the lock held). RestoreError naming the holder after `wait`
    seconds."""
    path = lock_path(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    patience = Patience(model, wait, say, f"waiting (up to {wait:.0f} s)")
    with path.open("a+", encoding="utf-8") as file:
        while True:
            if try_lock(file):
                busy = scheduled_run()
                if not busy:
                    break
                fcntl.flock(file, fcntl.LOCK_UN)
            else:
                busy = f"a manual run ({holder(model) or 'holder unknown'})"
            patience.another_round(busy)
        started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        file.truncate(0)
        file.write(f"backup-now pid {os.getpid()}, started {started}\n")
        file.flush()
        try:
            yield
        finally:
            file.truncate(0)


def wait_for_manual_run(model: str, say: Callable[[str], None], wait: float = WAIT_SECONDS) -> None:
    """For a scheduled run's export: returns once no manual run holds the
    model (at once for the manual run's own exports); RestoreError after
    `wait` seconds."""
    if os.environ.get(HOLDER_VARIABLE) == model or not lock_path(model).exists():
        return
    patience = Patience(model, wait, say, "this scheduled export waits for it")
    with lock_path(model).open("a+", encoding="utf-8") as file:
        while not try_lock(file):
            patience.another_round(f"a manual run ({holder(model) or 'holder unknown'})")
