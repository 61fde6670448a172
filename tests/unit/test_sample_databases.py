"""The development stack's sample databases: roles/backup_stack/files/sample-databases.sql run with sqlcmd -i
against a SQL Server that starts with the system databases only, as the deployment runs it. The first run
creates SalesDemo and InventoryDemo and says so, a second run changes and says nothing, and sqlpackage
exports what it made."""

from __future__ import annotations

import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import pytest
from sqlserver_backup_testing import REPO, standin_sql_server, standins_only

pytestmark = standins_only

SCRIPT = REPO / "roles" / "dev_services" / "files" / "sample-databases.sql"
SA_PASSWORD = "Sample-Databases-1"
DAC = "{http://schemas.microsoft.com/sqlserver/dac/Serialization/2012/02}"
CUSTOMERS = ["1|Contoso|Seattle", "2|Fabrikam|Berlin", "3|Northwind|Oslo", "4|Adventure Works|Lyon", "5|Tailspin|Porto"]
ROWS = {("SalesDemo", "dbo.Customers"): 5, ("SalesDemo", "dbo.Orders"): 40, ("InventoryDemo", "dbo.Products"): 12}


@dataclass
class SqlServer:
    address: str
    binaries: Path

    def sqlcmd(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        """The deployment's command line: sa, its password from SQLCMDPASSWORD, -C and -b."""
        return subprocess.run(
            [str(self.binaries / "sqlcmd"), "-S", self.address, "-U", "sa", "-C", "-b", *arguments],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
            env={"SQLCMDPASSWORD": SA_PASSWORD},
        )

    def rows(self, database: str, query: str) -> list[str]:
        """Rows only, as the real sqlcmd prints them with NOCOUNT, no headers and trimmed columns."""
        result = self.sqlcmd("-d", database, "-h", "-1", "-W", "-s", "|", "-Q", f"SET NOCOUNT ON; {query}")
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout.splitlines()


@pytest.fixture(scope="module")
def server(standin_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlServer]:
    """The SQL Server stand-in on a free port with an empty data directory."""
    with standin_sql_server(standin_bin, SA_PASSWORD, tmp_path_factory.mktemp("mssql")) as standin:
        yield SqlServer(address=standin.address, binaries=standin_bin)


@dataclass
class Run:
    result: subprocess.CompletedProcess[str]
    counts: dict[tuple[str, str], int]


@pytest.fixture(scope="module")
def runs(server: SqlServer) -> list[Run]:
    """The script run twice in a row, with the row counts after each run."""
    assert sorted(server.rows("master", "SELECT name FROM sys.databases")) == ["master", "model", "msdb", "tempdb"]
    outcome = []
    for _ in range(2):
        result = server.sqlcmd("-i", str(SCRIPT))
        counts = {
            (database, table): int(server.rows(database, f"SELECT COUNT(*) FROM {table}")[0])  # noqa: S608
            for database, table in ROWS
        }
        outcome.append(Run(result, counts))
    return outcome


def test_the_first_run_creates_both_databases_and_says_so(runs: list[Run]) -> None:
    first = runs[0].result
    assert first.returncode == 0, first.stdout + first.stderr
    assert [line for line in first.stdout.splitlines() if "created" in line] == [
        "created database SalesDemo",
        "created database InventoryDemo",
    ]


def test_a_second_run_changes_nothing_and_says_nothing(runs: list[Run]) -> None:
    second = runs[1].result
    assert second.returncode == 0, second.stdout + second.stderr
    assert "created" not in second.stdout
    assert runs[1].counts == runs[0].counts


@pytest.mark.parametrize("run", [0, 1], ids=["first run", "second run"])
def test_the_tables_hold_the_sample_rows(runs: list[Run], run: int) -> None:
    assert runs[run].counts == ROWS


@pytest.mark.parametrize(
    ("database", "query", "expected"),
    [
        (
            "SalesDemo",
            "SELECT Id, Name, City FROM dbo.Customers",
            CUSTOMERS,
        ),
        ("SalesDemo", "SELECT CustomerId, Amount FROM dbo.Orders WHERE Id = 10", ["1|100.10"]),
        ("InventoryDemo", "SELECT Sku, Stock FROM dbo.Products WHERE Sku = 'SKU-012'", ["SKU-012|84"]),
    ],
    ids=["customers", "an order", "a product"],
)
def test_the_rows_are_the_sample_values(
    runs: list[Run], server: SqlServer, database: str, query: str, expected: list[str]
) -> None:
    assert sorted(server.rows(database, query)) == expected


def test_sqlpackage_exports_the_created_database(runs: list[Run], server: SqlServer, tmp_path: Path) -> None:
    package = tmp_path / "SalesDemo.bacpac"
    result = subprocess.run(
        [
            str(server.binaries / "sqlpackage"),
            "/Action:Export",
            f"/SourceServerName:{server.address}",
            "/SourceDatabaseName:SalesDemo",
            "/SourceUser:sa",
            f"/SourcePassword:{SA_PASSWORD}",
            "/SourceTrustServerCertificate:True",
            f"/TargetFile:{package}",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with zipfile.ZipFile(package) as bacpac:
        model = ElementTree.fromstring(bacpac.read("model.xml"))  # noqa: S314 - made by the test itself
    tables = sorted(element.get("Name") for element in model.iter(f"{DAC}Element") if element.get("Type") == "SqlTable")
    assert tables == ["[dbo].[Customers]", "[dbo].[Orders]"]
