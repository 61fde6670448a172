"""The warnings and the closing report of playbooks/deploy.yml, as Ansible filters.

A deploy warns, never fails, about databases that no model backs up: the
lines `backup-coverage` prints for them, or why it could not run. The report
gives each backup host one line: deployed (with its coverage warnings),
failed with the reason its rescue recorded, or not deployed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# backup-coverage's lines for an uncovered database and for a server it could not list.
COVERAGE_LINE = re.compile(r"(UNCOVERED|COVERAGE ERROR) ")
UNCOVERED_LINE = re.compile(r"UNCOVERED ")
NOT_DEPLOYED = "NOT DEPLOYED: unreachable, or stopped by an earlier failure (see above)"


def deploy_coverage_warnings(result: Mapping[str, Any]) -> list[str]:
    """backup-coverage's UNCOVERED and COVERAGE ERROR lines (it exits 1 or 2
    with them), or one line saying why it could not run; empty when every
    database is covered or the check was skipped."""
    if result.get("skipped") or result.get("rc") == 0:
        return []
    stdout = list(result.get("stdout_lines") or [])
    found = [line for line in stdout if COVERAGE_LINE.match(line)]
    if result.get("rc") in (1, 2) and found:
        return found
    output = [line for line in stdout + list(result.get("stderr_lines") or []) if line]
    reason = result.get("msg") or (output[-1] if output else "") or f"exit {result.get('rc', '?')}"
    return [f"backup-coverage: {reason}"]


def _host_line(host: str, facts: Mapping[str, Any]) -> str:
    if "deploy_image" in facts:
        coverage = list(facts["deploy_coverage"]) if "deploy_coverage" in facts else []
        uncovered = len([line for line in coverage if UNCOVERED_LINE.match(line)])
        return (
            f"{host}: deployed {facts['deploy_image']}"
            + (f"; WARNING: {uncovered} database(s) not backed up" if uncovered else "")
            + ("; WARNING: coverage not fully checked" if len(coverage) > uncovered else "")
        )
    if "deploy_failure" in facts:
        return f"{host}: FAILED: {facts['deploy_failure']}"
    return f"{host}: {NOT_DEPLOYED}"


def deploy_report(hosts: Sequence[str], hostvars: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per host, in the order of `hosts`."""
    return [_host_line(host, hostvars[host]) for host in hosts]


class FilterModule:
    """Ansible filters of playbooks/deploy.yml."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"deploy_coverage_warnings": deploy_coverage_warnings, "deploy_report": deploy_report}
