"""The split of a host's models into GoBackup workers: pinned models where
the inventory pins them, the others balanced in the inventory's order, the
same at every deploy; impossible splits refused, naming the variable."""

from __future__ import annotations

import pytest
from sqlserver_backup_testing import collection_plugin

backup_workers = collection_plugin("filter", "backup_workers")


def models(*names: str, **pins: int) -> list[dict]:
    return [{"name": name, **({"worker": pins[name]} if name in pins else {})} for name in names]


def test_one_worker_holds_every_model() -> None:
    assert backup_workers.backup_workers(models("a", "b", "c"), 1) == [["a", "b", "c"]]


def test_models_are_balanced_in_the_inventorys_order() -> None:
    split = backup_workers.backup_workers(models(*(f"db{n}" for n in range(40))), 4)
    assert [len(worker) for worker in split] == [10, 10, 10, 10]
    assert split[0][:3] == ["db0", "db4", "db8"]
    assert backup_workers.backup_workers(models("a", "b", "c"), "2") == [["a", "c"], ["b"]], "a string from -e"


def test_pinned_models_stay_and_the_others_fill_around_them() -> None:
    split = backup_workers.backup_workers(models("big", "a", "b", "c", big=1), 2)
    assert split == [["big", "b"], ["a", "c"]]


def test_a_model_added_at_the_end_moves_no_other() -> None:
    before = backup_workers.backup_workers(models("a", "b", "c", "d"), 2)
    after = backup_workers.backup_workers(models("a", "b", "c", "d", "e"), 2)
    assert [worker[: len(old)] for worker, old in zip(after, before, strict=True)] == before


@pytest.mark.parametrize(
    ("names", "pins", "count", "reason"),
    [
        (("a",), {}, 0, "backup_config_workers must be a whole number of 1 or more, not '0'"),
        (("a",), {}, "two", "backup_config_workers must be a whole number of 1 or more, not 'two'"),
        (("a", "b"), {}, 3, "backup_config_workers (3) is more than the models (2): a worker would have no model"),
        (("a", "b"), {"a": 3}, 2, "model a: worker must be a number from 1 to backup_config_workers (2), not '3'"),
        (("a", "b"), {"b": 0}, 2, "model b: worker must be a number from 1 to backup_config_workers (2), not '0'"),
        (("a", "b"), {"a": 1, "b": 1}, 2, "worker(s) 2 would have no model: pin fewer models (worker:) or lower"),
    ],
)
def test_impossible_splits_are_refused_naming_the_variable(names, pins, count, reason) -> None:
    found = backup_workers.backup_worker_problems(models(*names, **pins), count)
    assert any(problem.startswith(reason) for problem in found), found


def test_worker_ports_count_down_from_the_web_port_away_from_the_relays() -> None:
    assert backup_workers.backup_worker_ports(2703, 3) == [2703, 2702, 2701]
    assert backup_workers.backup_worker_problems(models("a", "b", "c"), 3, 2703, 2704) == []
    assert backup_workers.backup_worker_problems(models("a", "b", "c"), 3, 2703, 2701) == [
        "backup_config_notify_relay_port (2701) is the web port of GoBackup worker 3 (backup_config_web_port 2703"
        " and the 2 below it): set one of them apart"
    ]
    assert backup_workers.backup_worker_problems(models("a", "b"), 2, 1) == [
        "2 workers need the web ports 0 to 1: raise backup_config_web_port"
    ]


def test_a_possible_split_has_no_problem() -> None:
    assert backup_workers.backup_worker_problems(models("a", "b", a=2), 2) == []
    assert backup_workers.backup_worker_problems(models("a"), 1) == []
