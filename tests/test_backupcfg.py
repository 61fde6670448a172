"""image/backupcfg.py: its reading of a config must match GoBackup's (Go's
os.Expand, checked against the real Go function), and its rules must stop the
mistakes GoBackup makes silently."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "image"))
import backupcfg

EXPANSION_CASES = [
    "plain text",
    "${A} and $A",
    "${A:-fallback}",
    "$",
    "trailing $",
    "$$ and $1 and $@x",
    "${} eaten",
    "${unterminated",
    "$A_B-c",
    "${A}${B}",
    "p@ss:w0rd#1",
    "a$Bc d",
]


@pytest.mark.parametrize("text", EXPANSION_CASES)
def test_expansion_matches_go(standin_bin: Path, text: str) -> None:
    environment = {"A": "alpha", "B": "beta", "A_B": "ab", "Bc": "bc"}
    result = subprocess.run(
        [str(standin_bin / "goexpand"), text], env=environment, capture_output=True, text=True, check=True
    )
    assert backupcfg.go_expand(text, lambda name: environment.get(name, "")) == json.loads(result.stdout)[0]


def write_config(tmp_path: Path, text: str, dotenv: str = "") -> Path:
    config = tmp_path / "gobackup.yml"
    config.write_text(text)
    if dotenv:
        (tmp_path / ".env").write_text(dotenv)
    return config


VALID = """
web:
  host: 127.0.0.1
models:
  sales:
    schedule:
      cron: "0 2 * * *"
    databases:
      Sales:
        type: mssql
        host: sql1
        database: Sales
        password: ${SALES_PASSWORD}
        trust_server_certificate: true
    storages:
      minio:
        type: minio
        endpoint: http://minio:9000
        bucket: backups
        path: prod/host-a/sales
"""


def reasons_for(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    try:
        backupcfg.load(write_config(tmp_path, text), environ if environ is not None else {"SALES_PASSWORD": "S3cret"})
    except backupcfg.ConfigError as error:
        return error.reasons
    return []


def test_a_valid_config_passes(tmp_path: Path) -> None:
    assert reasons_for(tmp_path, VALID) == []


def test_dotenv_beside_the_config_supplies_secrets(tmp_path: Path) -> None:
    config = write_config(tmp_path, VALID, dotenv="SALES_PASSWORD='Fr0mDotenv'\n")
    document, _ = backupcfg.load(config, {})
    assert document["models"]["sales"]["databases"]["Sales"]["password"] == "Fr0mDotenv"


def test_the_environment_wins_over_dotenv(tmp_path: Path) -> None:
    config = write_config(tmp_path, VALID, dotenv="SALES_PASSWORD=fromfile\n")
    document, _ = backupcfg.load(config, {"SALES_PASSWORD": "fromenv"})
    assert document["models"]["sales"]["databases"]["Sales"]["password"] == "fromenv"


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("cron:", "corn:", "schedule key 'corn' is unknown to GoBackup"),
        ('"0 2 * * *"', '"0 2 * * * *"', "needs 5 fields"),
        ('cron: "0 2 * * *"', "every: 1day", "is not a Go duration"),
        ('cron: "0 2 * * *"', "every: 24h\n      at: '04:00'", "schedule.at fails in GoBackup v3.1.1"),
        ("trust_server_certificate:", "trustServerCertificate:", "use 'trust_server_certificate'"),
        ("host: sql1", "host: sql1\n        all_databases: true", "all_databases needs sqlcmd"),
        ("host: 127.0.0.1", "host: 0.0.0.0", "web.host must be 127.0.0.1"),
        ("endpoint: http://minio:9000", "endpoint: minio:9000", "endpoint must be a full URL"),
        ("bucket: backups", "bucket: ''", "'bucket' is empty"),
        ("${SALES_PASSWORD}", "${SALES_PASSWORD:-x}", "GoBackup does not support defaults"),
        ("${SALES_PASSWORD}", "p$ss", "ss is not set"),
        ("database: Sales", "database: Sales Archive", "database contains whitespace"),
        ("databases:", "databses:", "key 'databses' is unknown to GoBackup"),
    ],
)
def test_silent_upstream_mistakes_are_refused(tmp_path: Path, old: str, new: str, reason: str) -> None:
    assert old in VALID
    reasons = reasons_for(tmp_path, VALID.replace(old, new))
    assert any(reason in line for line in reasons), reasons


def test_two_models_writing_one_path_are_refused(tmp_path: Path) -> None:
    second = VALID.split("models:\n", 1)[1].replace("  sales:", "  sales_copy:")
    reasons = reasons_for(tmp_path, VALID + second)
    assert any("models sales and sales_copy upload to the same bucket path 'prod/host-a/sales'" in r for r in reasons)


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    reasons = reasons_for(tmp_path, "models: [unclosed\n")
    assert reasons
    assert "is not valid YAML" in reasons[0]


def test_endpoints_lists_sql_servers_and_storages(tmp_path: Path) -> None:
    document, _ = backupcfg.load(write_config(tmp_path, VALID), {"SALES_PASSWORD": "x"})
    assert list(backupcfg.endpoints(document)) == [
        ("SQL Server Sales", "sales", "sql1", 1433),
        ("storage minio (backups)", "sales", "minio", 9000),
    ]
