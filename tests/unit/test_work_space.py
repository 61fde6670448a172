"""Room on the work volume for a model's next run
(image/sqlserver_backup/work_space.py): 3 times its last archive, 4 times
encrypted; the last archive is the newest local copy, else the size the
metrics last read. In a running container, with the deploy's warning:
tests/integration/test_work_volume.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlserver_backup import state_files, work_space

pytestmark = pytest.mark.unit

MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setattr(state_files, "STATE_DIR", state)
    monkeypatch.setenv("TZ", "UTC")
    return state


def local_copy(folder: Path, name: str, size: int, age_seconds: float = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b"x" * size)
    moment = 1_765_000_000 - age_seconds
    os.utime(folder / name, (moment, moment))


def document(tmp_path: Path, encrypted: bool = False) -> dict:
    body = {"storages": {"local": {"type": "local", "path": str(tmp_path / "local" / "sales"), "keep": 1}}}
    if encrypted:
        body["encrypt_with"] = {"type": "openssl"}
    return {"models": {"sales": body, "inventory": {"storages": {}}}}


def test_a_run_needs_three_times_its_newest_local_copy_four_encrypted(tmp_path: Path) -> None:
    local_copy(tmp_path / "local" / "sales", "2025.12.05.02.00.00.tar", 1 * MIB, age_seconds=86400)
    local_copy(tmp_path / "local" / "sales", "2025.12.06.02.00.00.tar", 2 * MIB)
    assert work_space.needed_bytes("sales", document(tmp_path)["models"]["sales"]) == 6 * MIB
    assert work_space.needed_bytes("sales", document(tmp_path, encrypted=True)["models"]["sales"]) == 8 * MIB


def test_without_a_local_copy_the_size_the_metrics_read_counts(tmp_path: Path, state_dir: Path) -> None:
    assert work_space.needed_bytes("inventory", {}) is None
    (state_dir / work_space.METRICS_STATE).write_text(json.dumps({"inventory": {"size": 5 * MIB}}))
    assert work_space.needed_bytes("inventory", {}) == 15 * MIB


def test_each_model_is_ok_short_or_unknown_naming_the_volume(tmp_path: Path) -> None:
    local_copy(tmp_path / "local" / "sales", "2025.12.06.02.00.00.tar", 2 * MIB)
    lines, short = work_space.space_lines(document(tmp_path), ["sales", "inventory"], 5 * MIB, "the work volume v")
    assert short
    assert lines == [
        "SHORT model=sales: the work volume v has 5.0 MiB free; the next run needs about 6.0 MiB (3x its last"
        " archive, +1x when encrypted). Free space there, or give the work volume more room"
        " (Ansible: backup_stack_work_volume_driver_opts)",
        "UNKNOWN model=inventory: no archive yet, so no measure of what its run needs",
    ]
    lines, short = work_space.space_lines(document(tmp_path), ["sales"], 6 * MIB, "the work volume v")
    assert (lines, short) == (["OK model=sales: 6.0 MiB free, the next run needs about 6.0 MiB"], False)
