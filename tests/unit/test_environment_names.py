"""The variables the image reads (sqlserver_backup.environment_names): the
README's table against the list, the list against what the code reads, and
the refusal of a name the image would ignore."""

from __future__ import annotations

import re

import pytest
from sqlserver_backup.environment_names import KNOWN, PATTERNS, ignored_variable_problems
from sqlserver_backup_testing import REPO

IMAGE = REPO / "image"


def readme_table_names() -> list[str]:
    """Every variable named in the first column of the table of README
    "The image on its own", in order."""
    section = (REPO / "README.md").read_text().split("### The image on its own", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split(" | ")[0])]


def test_the_readme_table_lists_every_variable_the_image_reads_once() -> None:
    assert readme_table_names() == list(KNOWN)


def names_read_by_the_code() -> set[str]:
    """The names the package looks up in an environment, and those the
    entrypoint and the bundled template expand (less the entrypoint's own)."""
    lookup = re.compile(r"""(?:environ|environment|settings|getenv)(?:\.get\(|\[|\()\s*"([A-Z][A-Z0-9_]+)\"""")
    names = {name for path in (IMAGE / "sqlserver_backup").glob("*.py") for name in lookup.findall(path.read_text())}
    entrypoint = (IMAGE / "docker-entrypoint.sh").read_text()
    own = set(re.findall(r"(?:readonly|local)\s+([A-Z][A-Z0-9_]+)=", entrypoint)) | {"BASH_SOURCE"}
    for text in (entrypoint, (IMAGE / "gobackup.yml.template").read_text()):
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        names |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", code)) - own
    return names


def test_every_variable_the_code_reads_is_known() -> None:
    read = names_read_by_the_code()
    assert {"MSSQL_USER", "RESTORE_MSSQL_HOST", "NOTIFY_SMTP_TO", "BACKUP_LOCAL_KEEP", "CONNECT_TIMEOUT"} <= read
    assert sorted(name for name in read if name not in KNOWN and not any(p.fullmatch(name) for p in PATTERNS)) == []


@pytest.mark.parametrize(
    ("name", "instead"),
    [
        ("MSSQL_USERNAME", "MSSQL_USER"),
        ("MSSQL_TRUST_CERT", "MSSQL_TRUST_SERVER_CERTIFICATE"),
        ("RESTORE_MSSQL_USERNAME", "RESTORE_MSSQL_USER"),
        ("MINIO_ENDPIONT", "MINIO_ENDPOINT"),
        ("MSSQL_DATABSE", "MSSQL_DATABASE"),
        ("NOTIFY_SLACK_ULR", "NOTIFY_SLACK_URL"),
    ],
)
def test_a_name_meant_for_a_known_one_is_refused_naming_it(name: str, instead: str) -> None:
    assert ignored_variable_problems(["PATH", name]) == [f"{name} is not read by this image: set {instead} instead"]


def test_known_model_neighbour_and_unrelated_names_pass() -> None:
    names = [
        *KNOWN,
        "MSSQL_PASSWORD_SALES_EU",
        "MSSQL_RESTORE_PASSWORD_SALES",
        "ENCRYPTION_PASSPHRASE_SALES_PREVIOUS_1",
        "MSSQL_PASSWORD_FILE",
        "MSSQL_SA_PASSWORD",
        "ACCEPT_EULA",
        "MINIO_ROOT_USER",
        "MINIO_ROOT_PASSWORD",
        "PATH",
        "HOSTNAME",
        "DOTNET_CLI_TELEMETRY_OPTOUT",
        "LANG",
    ]
    assert ignored_variable_problems(names) == []


def test_the_entrypoint_refuses_an_ignored_name_before_anything_starts(run_entrypoint) -> None:
    result = run_entrypoint({"MSSQL_USERNAME": "backup_exporter", "MSSQL_TRUST_CERT": "true"}, args=["true"])
    assert result.returncode == 1
    assert "settings error: MSSQL_TRUST_CERT is not read by this image: set MSSQL_TRUST_SERVER_CERTIFICATE instead" in (
        result.stderr
    )
    assert "settings error: MSSQL_USERNAME is not read by this image: set MSSQL_USER instead" in result.stderr
