"""The fleet's table and breaches of playbooks/status.yml, as Ansible filters.

Each backup host's rows are those its `backup-status --json` printed (times
as Unix seconds, null for none; each reason starting with its status), or
one row of its own when it gave no report. Times print as UTC minutes and
sizes as Ansible's `human_readable` does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ansible.plugins.filter.core import strftime
from ansible.plugins.filter.mathstuff import human_readable
from jinja2.filters import do_float

HEADER = ("HOST", "MODEL", "DATABASE", "LAST BACKUP", "SIZE", "PROVEN RESTORABLE", "RESTORE", "STATUS")
MINUTE_UTC = "%Y-%m-%d %H:%M UTC"
NO_REPORT = "ERROR: no report: the host failed before backup-status ran"


def fleet_status_rows(hosts: Sequence[str], hostvars: Mapping[str, Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Every host's rows (its status_rows), in the order of `hosts`; a host
    that stopped before it had any is a row of its own."""
    rows: list[Mapping[str, Any]] = []
    for host in hosts:
        facts = hostvars[host]
        if "status_rows" in facts:
            rows += facts["status_rows"]
            continue
        rows.append(
            {
                "host": host,
                "model": "",
                "database": "",
                "last_backup": None,
                "last_backup_size": None,
                "proven_at": None,
                "restore_seconds": None,
                "status": "ERROR",
                "reasons": [NO_REPORT],
            }
        )
    return rows


def _moment(row: Mapping[str, Any], key: str) -> str:
    """A time of a model's database, 'never' when it has none; '-' for rows of no model."""
    if row[key]:
        return strftime(MINUTE_UTC, row[key], utc=True)
    return "never" if row["model"] else "-"


def _cells(row: Mapping[str, Any]) -> list[Any]:
    return [
        row["host"],
        row["model"] or "-",
        row["database"] or "-",
        _moment(row, "last_backup"),
        human_readable(row["last_backup_size"]) if row["last_backup_size"] is not None else "-",
        _moment(row, "proven_at"),
        f"{do_float(row['restore_seconds']):.1f} s" if row["restore_seconds"] is not None else "-",
        row["status"],
    ]


def fleet_status_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The lines of one table of every row, its columns padded to their widest cell."""
    cells = [list(HEADER)] + [_cells(row) for row in rows]
    widths = [max(len(str(line[column])) for line in cells) for column in range(len(HEADER))]
    return [
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).strip() for line in cells
    ]


def fleet_status_breaches(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """'<host>: <model>/<database>: <reasons>' for every row that is not OK
    (each reason starts with its status already)."""
    breaches = []
    for row in rows:
        if row["status"] == "OK":
            continue
        where = "/".join(str(part) for part in (row["model"], row["database"]) if part)
        reasons = "; ".join(str(reason) for reason in row.get("reasons", []))
        breaches.append(
            f"{row['host']}{': ' + where if where else ''}: {reasons or str(row['status']) + ': no reason given'}"
        )
    return breaches


class FilterModule:
    """Ansible filters of playbooks/status.yml."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "fleet_status_rows": fleet_status_rows,
            "fleet_status_table": fleet_status_table,
            "fleet_status_breaches": fleet_status_breaches,
        }
