"""What playbooks/restore.yml refuses, runs and reports, as Ansible filters.

The playbook's settings (restore_model, restore_replace, ...) arrive as one
mapping keyed by those variable names, with their values as given (-e makes
strings of them, so flags are read with Ansible's `bool`). Each refusal names
what to add or remove; nothing reaches a container until there are none.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ansible.plugins.filter.core import to_bool
from jinja2.filters import do_int

# backup-restore's verdict on a drill: one line per database.
DRILL_LINE = re.compile(r"DRILL ")
# Options of backup-restore that take the setting's value, in their order.
VALUE_OPTIONS = (
    ("restore_archive", "--archive"),
    ("restore_version_id", "--version-id"),
    ("restore_database", "--database"),
    ("restore_target_database", "--target-database"),
)
# Options of backup-restore that a true setting adds, in their order.
FLAG_OPTIONS = (("restore_replace", "--replace"), ("restore_drop_replaced", "--drop-replaced"))


def _given(settings: Mapping[str, Any], name: str) -> bool:
    return len(settings[name]) > 0


def _source_refusals(settings: Mapping[str, Any], hosts: int) -> list[str]:
    """A restore into a source server: one host, a target, and the target repeated."""
    if not to_bool(settings["restore_into_source"]):
        if _given(settings, "restore_confirm"):
            return [
                "restore_confirm confirms a restore into a source server only: add -e restore_into_source=true,"
                " or remove restore_confirm to restore into the restore server"
            ]
        return []
    refusals = []
    if hosts != 1:
        refusals.append(
            f"a restore into a source server runs on exactly one host, and this play targets {hosts} hosts:"
            " add --limit <host>"
        )
    target = settings["restore_target_database"]
    if not _given(settings, "restore_target_database"):
        refusals.append(
            "a restore into a source server needs the database to write: add -e restore_target_database=<database>"
        )
    elif str(settings["restore_confirm"]) != str(target):
        refusals.append(
            "a restore into a source server needs restore_confirm repeating restore_target_database:"
            f" add -e restore_confirm={target}"
        )
    return refusals


def restore_refusals(settings: Mapping[str, Any], models: Sequence[Any], hosts: Any) -> list[str]:
    """Why the settings cannot run, for `models` (those the run covers) on
    `hosts` (how many the play targets); empty when they can."""
    hosts = do_int(hosts)
    drill, verify = to_bool(settings["restore_drill"]), to_bool(settings["restore_verify"])
    checks_only = drill or verify
    refusals = []
    if not checks_only and not _given(settings, "restore_model"):
        refusals.append("name the model to restore with restore_model (only a drill or a verify covers all models)")
    if drill and verify:
        refusals.append("choose one of restore_drill and restore_verify")
    if checks_only and (
        _given(settings, "restore_target_database")
        or to_bool(settings["restore_replace"])
        or to_bool(settings["restore_into_source"])
        or _given(settings, "restore_database")
    ):
        refusals.append(
            "a drill imports every database into scratch databases it drops, and a verify imports nothing:"
            " neither takes restore_target_database, restore_replace, restore_into_source or restore_database"
        )
    if verify and _given(settings, "restore_archive"):
        refusals.append(
            "a verify checks the latest archive or, with restore_verify_all, every kept one: remove restore_archive"
        )
    if _given(settings, "restore_version_id") and not _given(settings, "restore_archive"):
        refusals.append("restore_version_id needs restore_archive")
    if to_bool(settings["restore_drop_replaced"]) and not to_bool(settings["restore_replace"]):
        refusals.append(
            "restore_drop_replaced drops the database a replace renamed aside: it needs restore_replace=true"
        )
    if to_bool(settings["restore_replace"]) and hosts != 1:
        refusals.append(
            f"a replace swaps a database on one host only, and this play targets {hosts} hosts: add --limit <host>"
        )
    refusals += _source_refusals(settings, hosts)
    if _given(settings, "restore_target_database") and len(models) != 1:
        refusals.append("restore_target_database names one database: name one model with restore_model")
    return refusals


def restore_argv(settings: Mapping[str, Any], model: str) -> list[Any]:
    """The command the backup container runs for one model: backup-verify
    for a verify, backup-restore (a drill included) otherwise."""
    if to_bool(settings["restore_verify"]):
        return ["backup-verify", "--model", model] + (["--all"] if to_bool(settings["restore_verify_all"]) else [])
    argv = ["backup-restore", "--model", model]
    for name, option in VALUE_OPTIONS:
        argv += [option, settings[name]] if _given(settings, name) else []
    argv += [option for name, option in FLAG_OPTIONS if to_bool(settings[name])]
    if to_bool(settings["restore_into_source"]):
        argv += ["--into-source", "--confirm", settings["restore_confirm"]]
    return argv + (["--drill"] if to_bool(settings["restore_drill"]) else [])


def restore_summary(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """One verdict per model run, from the loop's results: a drill's DRILL
    line per database, the others' last line (RESTORED, VERIFY PASS, ...
    FAIL), or, without output, why the run gave none."""
    summary = []
    for result in results:
        lines = result.get("stdout_lines", [])
        drills = [line for line in lines if DRILL_LINE.match(line)]
        if drills:
            summary += drills
        elif lines:
            summary.append(lines[-1])
        else:
            summary.append(f"{result['item']}: {result.get('msg', 'no output')}")
    return summary


class FilterModule:
    """Ansible filters of playbooks/restore.yml."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"restore_refusals": restore_refusals, "restore_argv": restore_argv, "restore_summary": restore_summary}
