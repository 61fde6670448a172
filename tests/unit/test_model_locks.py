"""One run of a model at a time (image/sqlserver_backup/model_locks.py): a
manual run waits for a scheduled run of its model and for another manual run;
a scheduled export waits for a manual run; each gives up after its limit
naming the run that holds the model. The same, in a running container:
tests/integration/test_work_volume.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlserver_backup import model_locks, state_files
from sqlserver_backup.errors import RestoreError
from sqlserver_backup.sqlpackage import exported_model

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_files, "STATE_DIR", tmp_path)
    monkeypatch.setattr(model_locks, "POLL_SECONDS", 0.01)
    monkeypatch.delenv(model_locks.HOLDER_VARIABLE, raising=False)


def test_a_manual_run_waits_until_the_scheduled_run_of_its_model_ends() -> None:
    answers = iter(["the run in progress in /tmp/gobackup/1765000000000000000"] * 3)
    said: list[str] = []
    with model_locks.manual_run("sales", lambda: next(answers, ""), 10, said.append):
        assert model_locks.holder("sales").startswith("backup-now pid ")
        model_locks.note_temp_path("sales", Path("/tmp/gobackup/1765000000000000001"))
        assert model_locks.holder("sales").startswith("backup-now pid "), "the first line names the holder"
        assert model_locks.noted_temp_paths("sales") == [Path("/tmp/gobackup/1765000000000000001")]
    assert said == [
        "model sales is held by the run in progress in /tmp/gobackup/1765000000000000000; waiting (up to 10 s)"
    ]
    assert model_locks.holder("sales") == "", "released"


def test_a_manual_run_gives_up_naming_the_scheduled_run() -> None:
    with (
        pytest.raises(RestoreError, match=r"^model sales is held by the run in progress in /w/1; gave up after 0 s$"),
        model_locks.manual_run("sales", lambda: "the run in progress in /w/1", 0, print),
    ):
        pytest.fail("the run went ahead")


def test_a_second_manual_run_of_a_model_waits_for_the_first_and_names_it() -> None:
    with model_locks.manual_run("sales", lambda: "", 1, print):
        with (
            pytest.raises(RestoreError, match=r"^model sales is held by a manual run \(backup-now pid \d+, started "),
            model_locks.manual_run("sales", lambda: "", 0.05, print),
        ):
            pytest.fail("two manual runs of one model")
        with model_locks.manual_run("inventory", lambda: "", 0, print):
            pass  # another model is free


def test_a_scheduled_export_waits_for_a_manual_run_except_the_manual_runs_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model_locks.wait_for_manual_run("sales", print, 0)  # never locked: at once
    with model_locks.manual_run("sales", lambda: "", 1, print):
        with pytest.raises(RestoreError, match=r"^model sales is held by a manual run \(backup-now pid \d+"):
            model_locks.wait_for_manual_run("sales", print, 0.05)
        monkeypatch.setenv(model_locks.HOLDER_VARIABLE, "sales")
        model_locks.wait_for_manual_run("sales", print, 0)
    monkeypatch.delenv(model_locks.HOLDER_VARIABLE)
    model_locks.wait_for_manual_run("sales", print, 0)  # released


def test_the_model_of_an_export_is_read_from_gobackups_dump_path() -> None:
    assert exported_model("/tmp/gobackup/1765000000000000000/sales/mssql/salesdemo/SalesDemo.bacpac") == "sales"
    assert exported_model("/data/SalesDemo.bacpac") == ""
