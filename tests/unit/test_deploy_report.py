"""deploy.yml's coverage warnings and closing report (the collection's filter
deploy_report). The playbook runs for real in tests/integration and tests/e2e."""

from __future__ import annotations

import pytest
from sqlserver_backup_testing import collection_plugin

deploy_report = collection_plugin("filter", "deploy_report")

UNCOVERED = "UNCOVERED server=mssql,1433 database=Payroll"
COVERAGE_ERROR = "COVERAGE ERROR server=mssql,1433: login failed"


@pytest.mark.parametrize(
    "result",
    [{"skipped": True}, {"rc": 0, "stdout_lines": ["COVERAGE OK count=2"], "stderr_lines": []}],
)
def test_nothing_to_warn_about_when_covered_or_not_checked(result: dict) -> None:
    assert deploy_report.deploy_coverage_warnings(result) == []


def test_the_uncovered_databases_and_the_servers_it_could_not_list_are_the_warnings() -> None:
    result = {"rc": 1, "stdout_lines": ["COVERAGE checked 2 servers", UNCOVERED, COVERAGE_ERROR], "stderr_lines": []}
    assert deploy_report.deploy_coverage_warnings(result) == [UNCOVERED, COVERAGE_ERROR]


@pytest.mark.parametrize(
    ("result", "warning"),
    [
        ({"rc": 126, "msg": "container not running", "stdout_lines": []}, "backup-coverage: container not running"),
        ({"rc": 2, "stdout_lines": ["", "Traceback"], "stderr_lines": ["boom", ""]}, "backup-coverage: boom"),
        ({"rc": 3, "stdout_lines": [], "stderr_lines": []}, "backup-coverage: exit 3"),
    ],
)
def test_a_check_that_could_not_run_says_why(result: dict, warning: str) -> None:
    assert deploy_report.deploy_coverage_warnings(result) == [warning]


def test_the_report_has_a_line_per_host_in_order() -> None:
    hostvars = {
        "a": {"deploy_image": "img@sha256:1", "deploy_coverage": []},
        "b": {"deploy_image": "img@sha256:1", "deploy_coverage": [UNCOVERED, UNCOVERED, COVERAGE_ERROR]},
        "c": {"deploy_failure": "Start the stack: unhealthy"},
        "d": {},
    }
    assert deploy_report.deploy_report(["d", "a", "b", "c"], hostvars) == [
        "d: NOT DEPLOYED: unreachable, or stopped by an earlier failure (see above)",
        "a: deployed img@sha256:1",
        "b: deployed img@sha256:1; WARNING: 2 database(s) not backed up; WARNING: coverage not fully checked",
        "c: FAILED: Start the stack: unhealthy",
    ]
