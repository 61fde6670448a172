"""The Prometheus alert rules of monitoring/: promtool (Debian's prometheus
package, installed by scripts/setup) checks them and runs their unit tests,
and every metric they read is one backup-metrics serves."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml
from sqlserver_backup import metrics
from sqlserver_backup_testing import REPO

RULES = REPO / "monitoring" / "alert-rules.yml"
RULE_TESTS = REPO / "monitoring" / "alert-rules.test.yml"
ALERTS = {
    "BackupOverdue",
    "BackupLastRunFailed",
    "RestoreDrillFailed",
    "DatabaseNotProvenRecently",
    "DatabaseUncovered",
}


def promtool(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *arguments], capture_output=True, text=True, check=False, timeout=120)


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_promtool_accepts_the_rules() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout


def test_the_rules_pass_their_unit_tests() -> None:
    tested = promtool("test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_each_alert_has_a_severity_and_tells_what_to_do() -> None:
    assert {rule["alert"] for rule in rules()} == ALERTS
    for rule in rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert set(rule["annotations"]) == {"summary", "description"}, rule["alert"]
        assert "$labels.instance" in rule["annotations"]["description"], f"{rule['alert']} names the host"


def test_each_alert_is_shown_firing_and_silent_by_the_unit_tests() -> None:
    cases = [case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    firing = {case["alertname"] for case in cases if case["exp_alerts"]}
    silent = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert firing == ALERTS
    assert silent == ALERTS


def test_every_metric_the_rules_read_is_served_by_backup_metrics(tmp_path: Path) -> None:
    # Every family is served (HELP and TYPE) even before it has a series.
    exporter = metrics.Exporter({"models": {"sales": {}}}, tmp_path / "s.json", None)
    served = set(re.findall(r"^# TYPE (\S+) ", exporter.render(), re.M))
    read = {name for rule in rules() for name in re.findall(r"\bsqlserver_backup_[a-z_]+", rule["expr"])}
    assert read, "the rules read the backup metrics"
    assert read <= served, f"read but not served: {sorted(read - served)}"
