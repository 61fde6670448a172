"""A SQL Server as the restore, the drills, the coverage check and the
sqlpackage wrapper reach it: sqlcmd for queries (the password through
SQLCMDPASSWORD, never the command line) and sqlpackage for imports."""

from __future__ import annotations

import datetime
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlserver_backup.errors import RestoreError


@dataclass
class Database:
    host: str
    port: int
    name: str
    username: str
    password: str
    trust: bool
    args: str

    @property
    def server(self) -> str:
        return f"{self.host},{self.port}"

    def sqlcmd(self, query: str, database: str = "master", timeout: float | None = None) -> list[str]:
        # Rows only: no headers, no "(N rows affected)".
        command = ["sqlcmd", "-S", self.server, "-U", self.username, "-d", database, "-b", "-h", "-1", "-W"]
        command += ["-Q", f"SET NOCOUNT ON; {query}"]
        if self.trust:
            command.append("-C")
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                check=False,
                # SQLCMDUSER too: go-sqlcmd would otherwise take both from a ~/.sqlcmd config.
                env={**os.environ, "SQLCMDUSER": self.username, "SQLCMDPASSWORD": self.password},
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise RestoreError(f"sqlcmd on {self.server}: no answer within {timeout:g} s") from None
        if result.returncode != 0:
            raise RestoreError(f"sqlcmd on {self.server}: {' '.join((result.stderr or result.stdout).split())}")
        return [line.strip() for line in result.stdout.splitlines() if line.strip()]

    def table_sizes(self, database: str) -> list[int]:
        """Bytes of data (used pages) of each table of the database."""
        pages: dict[str, int] = {}
        for line in self.sqlcmd("SELECT object_id, used_page_count FROM sys.dm_db_partition_stats", database, 30):
            table, count = line.split()
            pages[table] = pages.get(table, 0) + int(count)
        return [count * 8192 for count in pages.values()]

    def exists(self, name: str) -> bool:
        return name.lower() in (line.lower() for line in self.sqlcmd("SELECT name FROM sys.databases"))

    def drop(self, name: str) -> None:
        self.sqlcmd(f"DROP DATABASE [{name}]")

    def rename(self, name: str, new_name: str) -> None:
        self.sqlcmd(f"ALTER DATABASE [{name}] MODIFY NAME = [{new_name}]")

    def check(self, name: str) -> None:
        """DBCC CHECKDB: any allocation or consistency error fails (sqlcmd -b)."""
        try:
            self.sqlcmd(f"DBCC CHECKDB ([{name}]) WITH NO_INFOMSGS, ALL_ERRORMSGS")
        except RestoreError as error:
            raise RestoreError(f"DBCC CHECKDB of {name} on {self.server} failed: {error}") from None

    def row_counts(self, name: str, tables: list[str]) -> dict[str, int]:
        counts = {}
        for table in tables:
            rows = self.sqlcmd(f"SELECT COUNT(*) FROM {table}", name)  # noqa: S608 - names checked
            try:
                counts[table] = int(rows[0])
            except (IndexError, ValueError):
                raise RestoreError(f"cannot count the rows of {table} in {name}: {rows[:1]}") from None
        return counts

    def import_package(self, package: Path, target: str) -> None:
        command = [
            "sqlpackage",
            "/Action:Import",
            f"/SourceFile:{package}",
            f"/TargetServerName:{self.server}",
            f"/TargetDatabaseName:{target}",
            f"/TargetUser:{self.username}",
            f"/TargetPassword:{self.password}",
        ]
        if self.trust:
            command.append("/TargetTrustServerCertificate:True")
        command += [arg for arg in self.args.split() if arg.lower().startswith("/p:commandtimeout")]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        print(result.stdout, end="", flush=True)
        if result.returncode != 0:
            raise RestoreError(
                f"sqlpackage import into {target} on {self.server} failed: {' '.join(result.stderr.split())}"
            )

    def remove_if_there(self, name: str) -> str:
        """Drops a database this tool created, if it is there; '' or why it could not."""
        try:
            if self.exists(name):
                self.drop(name)
                print(f"restore: dropped {name} on {self.server}", flush=True)
        except RestoreError as error:
            return f"; {name} could not be dropped on {self.server} ({error}): drop it by hand"
        return ""


def utc_stamp() -> str:
    """The time in the names of the databases this tool creates."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d%H%M%S")
