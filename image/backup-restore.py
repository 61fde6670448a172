#!/usr/bin/env python3
"""Restore a GoBackup archive of this container's configuration into SQL Server.

  backup-restore --model sales --list
  backup-restore --model sales --list-versions
  backup-restore --model sales [--archive 2026.11.23.02.00.00.tar [--version-id ID]] [--database SalesDemo]
                 [--target-database Sales_copy] [--replace [--drop-replaced]]
  backup-restore --model sales --target-database Sales --into-source --confirm Sales [--replace]
  backup-restore --model sales --drill
  backup-verify [--model sales ...] [--all]

Where it imports: the model's restore server in restore.yml beside the
configuration (written by the backup_config role; without it RESTORE_MSSQL_*).
That server must be set and must not be any server this host backs up: there
is no fallback to the export's server. Only --into-source imports into the
model's own source server, and only with --target-database and --confirm
repeating its name.

It downloads the latest (or the named) archive from MinIO with the model's own
key, decrypts it when the model has encrypt_with (openssl; the current
passphrase, then each previous one restore.yml names), unpacks it in the work
directory, checks every .bacpac in it (all_databases archives hold several) and
imports each under a temporary name. The import is checked (DBCC CHECKDB, every
table counted) before it takes the target's name: an existing target is
renamed aside to <target>_replaced_<UTC time> (dropped with --drop-replaced)
and only with --replace. Any failure leaves the target as it was and drops the
temporary database. The default target is <database>_restored_<archive time>.
On a versioned bucket (object lock) --list-versions lists every retained
version of each archive and --version-id restores one of them.

--drill proves the archive restores: every database imported into the restore
server as <database>_drill_<time>, DBCC CHECKDB, the rows of every table
counted, and dropped whatever happens (SIGTERM included); one DRILL PASS or
DRILL FAIL line per database, then one for the model, and the result per
database in drills.json of the state volume (last proven, the import's
duration, the archive's age and size).

backup-verify (this program under that name) downloads the latest archive of
each model (--all: every kept one), checks the tar, the CRC of every entry of
each .bacpac and its model (model.xml parses and matches the SHA-256
Origin.xml recorded at export, as sqlpackage checks on import), and prints OK,
CORRUPT (damaged) or WRONG-KEY (no known passphrase opens it) per archive with
its key, then VERIFY PASS or VERIFY FAIL. Exit status 0 when all are OK, 1 when
one is not or a model has none, 2 when it could not check.
Secrets are read from the configuration's .env or *_FILE variables; the SQL
password reaches sqlcmd through SQLCMDPASSWORD, never its command line.
Under the name sqlpackage (first on the image's PATH, so GoBackup runs it) this
program runs the real sqlpackage with the same arguments; when an export fails
for lack of disk space it adds a line naming the work volume, the space it had
and the space the export needs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import hashlib
import hmac
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

sys.path.insert(0, "/usr/local/lib/gobackup-image")
import backupcfg

DEFAULT_CONFIG = Path("/etc/gobackup/gobackup.yml")
DAC_NAMESPACE = "{http://schemas.microsoft.com/sqlserver/dac/Serialization/2012/02}"
STATE_FOLDER = ".gobackup-state/"
QUOTED_NAME = re.compile(r"\[[^\[\]]+\](\.\[[^\[\]]+\])*")


class RestoreError(Exception):
    """A reason to stop, printed as one line."""


class CorruptArchive(RestoreError):
    """The archive itself is damaged: its tar, its package or its model."""


class WrongKey(RestoreError):
    """No known passphrase opens the archive: it is not damaged, the key is missing."""


@dataclass
class S3Storage:
    """The little of the S3 API a restore needs, signed with AWS SigV4."""

    endpoint: str
    bucket: str
    path: str
    region: str
    access_key: str
    secret_key: str
    timeout: float

    def _request(self, key: str, query: Mapping[str, str], method: str = "GET") -> http.client.HTTPResponse:
        url = urlsplit(self.endpoint)
        now = datetime.datetime.now(datetime.timezone.utc)
        stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        uri = "/" + quote(self.bucket) + ("/" + quote(key, safe="/~") if key else "/")
        canonical_query = "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(query.items()))
        payload = hashlib.sha256(b"").hexdigest()
        headers = {"host": url.netloc, "x-amz-content-sha256": payload, "x-amz-date": stamp}
        signed = ";".join(sorted(headers))
        canonical = "\n".join(
            [method, uri, canonical_query, "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)), signed, payload]
        )
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        signing_key = ("AWS4" + self.secret_key).encode()
        for part in (day, self.region, "s3", "aws4_request"):
            signing_key = hmac.new(signing_key, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
        )
        connection_class = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        connection = connection_class(url.netloc, timeout=self.timeout)
        try:
            connection.request(method, uri + (f"?{canonical_query}" if canonical_query else ""), headers=headers)
            response = connection.getresponse()
        except OSError as error:
            raise RestoreError(f"cannot reach {self.endpoint} (bucket {self.bucket}): {error}") from None
        if response.status not in (200, 204):
            body = response.read().decode(errors="replace")
            code = re.search(r"<Code>(.*?)</Code>", body)
            raise RestoreError(
                f"{self.endpoint} bucket {self.bucket} answered HTTP {response.status}"
                f" {code.group(1) if code else ''} for {key or 'the listing'}".rstrip()
            )
        return response

    def archives(self) -> list[str]:
        """Archive names under the model's path, oldest first (names are times)."""
        return sorted(self.archive_sizes())

    def archive_sizes(self) -> dict[str, int]:
        """Size in bytes of each archive under the model's path, by name."""
        prefix = self.path.strip("/") + "/" if self.path.strip("/") else ""
        sizes, token = {}, None
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if token:
                query["continuation-token"] = token
            body = self._request("", query).read().decode()
            for entry in re.findall(r"<Contents>(.*?)</Contents>", body, re.DOTALL):
                key, size = re.search(r"<Key>(.*?)</Key>", entry), re.search(r"<Size>(\d+)</Size>", entry)
                name = key.group(1)[len(prefix) :] if key else ""
                if name and size and not name.startswith(STATE_FOLDER) and "/" not in name:
                    sizes[name] = int(size.group(1))
            match = re.search(r"<NextContinuationToken>(.*?)</NextContinuationToken>", body)
            if not match:
                return sizes
            token = match.group(1)

    def versions(self) -> list[tuple[str, str, str]]:
        """(archive name, version ID, state) of every version under the model's
        path, oldest archive first; state is current, deleted (a delete marker
        hides it) or noncurrent (a later version replaced it)."""
        prefix = self.path.strip("/") + "/" if self.path.strip("/") else ""
        found, markers, query = [], set(), {"versions": "", "prefix": prefix}
        while True:
            # The listing is XML this tool asked its own MinIO for.
            root = ElementTree.fromstring(self._request("", query).read())  # noqa: S314
            namespace = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
            for entry in root:
                kind = entry.tag[len(namespace) :]
                if kind not in {"Version", "DeleteMarker"}:
                    continue
                name = (entry.findtext(f"{namespace}Key") or "")[len(prefix) :]
                if not name or name.startswith(STATE_FOLDER) or "/" in name:
                    continue
                latest = entry.findtext(f"{namespace}IsLatest") == "true"
                if kind == "DeleteMarker":
                    if latest:
                        markers.add(name)
                    continue
                found.append((name, entry.findtext(f"{namespace}VersionId") or "", latest))
            if root.findtext(f"{namespace}IsTruncated") != "true":
                break
            query = {
                "versions": "",
                "prefix": prefix,
                "key-marker": root.findtext(f"{namespace}NextKeyMarker") or "",
                "version-id-marker": root.findtext(f"{namespace}NextVersionIdMarker") or "",
            }
        return [
            (name, version, "current" if latest else "deleted" if name in markers else "noncurrent")
            for name, version, latest in sorted(found, key=lambda item: item[0])
        ]

    def key(self, name: str) -> str:
        return "/".join(part for part in (self.path.strip("/"), name) if part)

    def incomplete_uploads(self) -> list[tuple[str, str, str]]:
        """(key, upload ID, initiated) of each multipart upload begun under the
        model's path and neither completed nor aborted."""
        prefix = self.path.strip("/") + "/" if self.path.strip("/") else ""
        # Listed without a prefix, then filtered: MinIO lists a multipart
        # upload only under a prefix that is its whole key.
        found, query = [], {"uploads": ""}
        while True:
            # The listing is XML this tool asked its own MinIO for.
            root = ElementTree.fromstring(self._request("", query).read())  # noqa: S314
            namespace = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
            for upload in root.iter(f"{namespace}Upload"):
                if not (upload.findtext(f"{namespace}Key") or "").startswith(prefix):
                    continue
                found.append(
                    (
                        upload.findtext(f"{namespace}Key") or "",
                        upload.findtext(f"{namespace}UploadId") or "",
                        upload.findtext(f"{namespace}Initiated") or "",
                    )
                )
            if root.findtext(f"{namespace}IsTruncated") != "true":
                return found
            query = {
                "uploads": "",
                "key-marker": root.findtext(f"{namespace}NextKeyMarker") or "",
                "upload-id-marker": root.findtext(f"{namespace}NextUploadIdMarker") or "",
            }

    def abort_upload(self, key: str, upload_id: str) -> None:
        self._request(key, {"uploadId": upload_id}, method="DELETE").read()

    def download(self, name: str, target: Path, version_id: str = "") -> None:
        response = self._request(self.key(name), {"versionId": version_id} if version_id else {})
        with target.open("wb") as file:
            shutil.copyfileobj(response, file, length=1 << 20)


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


def s3_storage(storage: Mapping[str, Any], timeout: float) -> S3Storage:
    """A model's minio or s3 storage, as GoBackup reads its keys."""
    return S3Storage(
        endpoint=str(storage["endpoint"]).rstrip("/"),
        bucket=str(storage["bucket"]),
        path=str(storage.get("path") or ""),
        region=str(storage.get("region") or "us-east-1"),
        access_key=str(storage.get("access_key_id") or ""),
        secret_key=str(storage.get("secret_access_key") or storage.get("access_key_secret") or ""),
        timeout=timeout,
    )


def model_parts(document: Mapping[str, Any], model: str, timeout: float) -> tuple[S3Storage, Database]:
    """The model's S3 storage and its source database (for an all_databases
    model, its server with an empty database name)."""
    models = document["models"]
    if model not in models:
        raise RestoreError(f"model {model} is not in the configuration (models: {', '.join(sorted(models))})")
    body = models[model]
    sources = [source for source in backupcfg.source_servers(document) if source["model"] == model]
    storages = [value for value in (body.get("storages") or {}).values() if value.get("type") in {"minio", "s3"}]
    if len(sources) != 1 or not storages:
        raise RestoreError(f"model {model} needs exactly one mssql database and an S3 storage to restore from")
    source = sources[0]
    return (
        s3_storage(storages[0], timeout),
        Database(
            host=source["host"],
            port=source["port"],
            name="" if source["all_databases"] else source["database"],
            username=source["username"],
            password=source["password"],
            trust=source["trust_server_certificate"],
            args=str((next(iter(body["databases"].values())) or {}).get("args") or ""),
        ),
    )


def restore_settings(config: Path, environment: Mapping[str, str], model: str) -> Mapping[str, Any]:
    settings = backupcfg.load_restore_settings(config, environment).get("models") or {}
    return settings.get(model) or {}


def restore_server(
    config: Path, document: Mapping[str, Any], environment: Mapping[str, str], model: str, source: Database
) -> Database:
    """Where restores and drills of a model import: its restore server, which
    must be set and must not be a server this host backs up (there is no
    fallback to the source: --into-source is the explicit way there)."""
    all_settings = backupcfg.load_restore_settings(config, environment)
    problems = [
        reason
        for reason in backupcfg.restore_problems(document, all_settings)
        if reason.startswith(f"model {model}: ") and "drill_schedule" not in reason
    ]
    if problems:
        raise RestoreError("; ".join(problems))
    settings = (all_settings.get("models") or {})[model]
    return Database(
        host=str(settings["host"]),
        port=int(settings.get("port") or 1433),
        name=source.name,
        username=str(settings.get("username") or source.username),
        password=str(settings.get("password") or source.password),
        trust=str(settings.get("trust_server_certificate", source.trust)).lower() == "true",
        args=source.args,
    )


# The head of what an archive decrypts to, by compress_with type: tar's magic
# at offset 257, or the gzip, zstd and xz magic numbers.
ARCHIVE_MAGIC = ((257, b"ustar"), (0, b"\x1f\x8b"), (0, b"\x28\xb5\x2f\xfd"), (0, b"\xfd7zXZ\x00"))
SALTED = b"Salted__"


def passphrase_variables(
    model: str, body: Mapping[str, Any], settings: Mapping[str, Any], environment: Mapping[str, str]
) -> list[str]:
    """The current passphrase's .env variable, then the previous ones that are set."""
    current = backupcfg.encryption_passphrase_variable(body.get("encrypt_with"))
    previous = [str(name) for name in settings.get("previous_passphrases") or []]
    return [name for name in ([current] if current else []) + previous if environment.get(name)]


def decrypt(
    archive: Path,
    model: str,
    body: Mapping[str, Any],
    environment: Mapping[str, str],
    settings: Mapping[str, Any] | None = None,
) -> Path:
    """GoBackup's encrypt_with (openssl) in reverse, with the model's cipher,
    base64 and args. The current passphrase is tried first, then each previous
    one (restore.yml); each reaches openssl from the environment. An archive
    none of them opens is WrongKey; one that a passphrase opens but that does
    not decrypt whole is CorruptArchive."""
    if not archive.name.endswith(".enc"):
        return archive
    encrypt = body.get("encrypt_with") if isinstance(body.get("encrypt_with"), dict) else {}
    variables = passphrase_variables(model, body, settings or {}, environment)
    if not variables:
        raise WrongKey(
            f"{archive.name} of model {model} is encrypted, but no passphrase for it is set"
            " (backup_config_encryption_passphrase or the entry's encryption_passphrase, and"
            " backup_config_encryption_previous_passphrases for archives made before a rotation)"
        )
    cipher = ["openssl", str(encrypt.get("chiper") or "aes-256-cbc"), "-d"]
    base64 = str(encrypt.get("base64", False)).lower() == "true"
    if base64:
        cipher.append("-base64")
    cipher += str(encrypt.get("args") or "").split()
    plain = archive.with_name(archive.name.removesuffix(".enc"))
    with archive.open("rb") as file:
        # Whole base64 lines (64 characters each) decode on their own.
        head = b"".join(file.readline() for _ in range(72)) if base64 else file.read(16 + 4096)
    try:
        if not base64 and not head.startswith(SALTED):
            raise CorruptArchive(f"{archive.name} of model {model} does not start with openssl's salt header")
        for variable in variables:
            # A wrong passphrase turns the first blocks into noise: each is tried on the head alone.
            if not looks_like_archive(decrypt_head(cipher, variable, head, environment)):
                continue
            result = subprocess.run(
                [*cipher, "-pass", f"env:{variable}", "-in", str(archive), "-out", str(plain)],
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, **environment},
            )
            if result.returncode != 0:
                plain.unlink(missing_ok=True)
                detail = (result.stderr.strip().splitlines() or ["no message"])[0]
                raise CorruptArchive(
                    f"{archive.name} of model {model} opens with the passphrase in {variable} but does not decrypt"
                    f" whole: the archive is damaged (openssl: {detail})"
                )
            if variable != variables[0]:
                print(f"restore: {archive.name} opened with the previous passphrase in {variable}", flush=True)
            return plain
    finally:
        archive.unlink(missing_ok=True)
    raise WrongKey(
        f"no known passphrase opens {archive.name} of model {model} (tried {', '.join(variables)}): it was made"
        " under another passphrase; add that one to backup_config_encryption_previous_passphrases"
    )


def decrypt_head(cipher: list[str], variable: str, head: bytes, environment: Mapping[str, str]) -> bytes:
    result = subprocess.run(
        [*cipher, "-nopad", "-pass", f"env:{variable}"],
        input=head,
        capture_output=True,
        check=False,
        env={**os.environ, **environment},
    )
    return result.stdout


def looks_like_archive(head: bytes) -> bool:
    return any(head[offset : offset + len(magic)] == magic for offset, magic in ARCHIVE_MAGIC)


def unpack(archive: Path, into: Path, model: str) -> list[Path]:
    """The .bacpac files of an archive: one per database, GoBackup's
    <model>/mssql/<database key>/<database>.bacpac (all_databases: several)."""
    # tar, as GoBackup packed it: it also knows the compressed variants.
    into.mkdir()
    result = subprocess.run(["tar", "-xf", str(archive), "-C", str(into)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise CorruptArchive(f"cannot unpack {archive.name}: {' '.join(result.stderr.split())}")
    packages = sorted(into.glob(f"{model}/mssql/*/*.bacpac"))
    if not packages:
        raise CorruptArchive(f"{archive.name} holds no .bacpac file under {model}/mssql/")
    return packages


def check_package(package: Path) -> int:
    """Reads every entry of the .bacpac against its CRC and checks its model as
    sqlpackage does on import; returns the number of tables of the model."""
    try:
        with zipfile.ZipFile(package) as bacpac:
            for entry in bacpac.infolist():
                try:
                    with bacpac.open(entry) as data:
                        while data.read(1 << 20):
                            pass
                except (zipfile.BadZipFile, zlib.error, EOFError) as error:
                    raise CorruptArchive(f"{package.name}: {entry.filename}: {error}") from None
            model_bytes, origin_bytes = bacpac.read("model.xml"), bacpac.read("Origin.xml")
        # Read back from this project's own bucket, as the restore does.
        model = ElementTree.fromstring(model_bytes)  # noqa: S314
        origin = ElementTree.fromstring(origin_bytes)  # noqa: S314
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, ElementTree.ParseError) as error:
        raise CorruptArchive(f"{package.name}: {error}") from None
    if model.tag != f"{DAC_NAMESPACE}DataSchemaModel":
        raise CorruptArchive(f"{package.name}: model.xml is not a DataSchemaModel")
    recorded = [
        (checksum.text or "").strip()
        for checksum in origin.iter(f"{DAC_NAMESPACE}Checksum")
        if checksum.get("Uri") == "/model.xml"
    ]
    if not recorded:
        raise CorruptArchive(f"{package.name}: Origin.xml records no checksum of model.xml")
    if hashlib.sha256(model_bytes).hexdigest().upper() != recorded[0].upper():
        raise CorruptArchive(f"{package.name}: model.xml does not match the checksum in Origin.xml")
    return sum(1 for element in model.iter(f"{DAC_NAMESPACE}Element") if element.get("Type") == "SqlTable")


def package_tables(package: Path) -> list[str]:
    with zipfile.ZipFile(package) as bacpac:
        # The package is one this project exported, read back from its own bucket.
        model = ElementTree.fromstring(bacpac.read("model.xml"))  # noqa: S314
    tables = [
        element.get("Name", "")
        for element in model.iter(f"{DAC_NAMESPACE}Element")
        if element.get("Type") == "SqlTable"
    ]
    # Names go into a query: accept only bracket-quoted identifiers.
    odd = [table for table in tables if not QUOTED_NAME.fullmatch(table)]
    if odd:
        raise RestoreError(f"unexpected table names in the package: {odd}")
    return tables


def archive_time(name: str) -> str:
    digits = re.sub(r"\D", "", name.split(".tar")[0])
    return digits or datetime.datetime.now().strftime("%Y%m%d%H%M%S")


def archive_timestamp(name: str, body: Mapping[str, Any]) -> float | None:
    """When GoBackup made the archive: its name is the local time in the
    model's filename_format (Go's 2006.01.02.15.04.05 by default)."""
    layout = str((body.get("compress_with") or {}).get("filename_format") or "2006.01.02.15.04.05")
    strptime = layout
    for go, python in (("2006", "%Y"), ("01", "%m"), ("02", "%d"), ("15", "%H"), ("04", "%M"), ("05", "%S")):
        strptime = strptime.replace(go, python)
    try:
        moment = datetime.datetime.strptime(name.split(".tar")[0], strptime)
    except ValueError:
        return None
    return moment.replace(tzinfo=backupcfg.local_zone()).timestamp()


def utc_stamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d%H%M%S")


def active_config(named: Path | None) -> Path:
    active = backupcfg.ACTIVE_CONFIG
    return named or (Path(active.read_text().strip()) if active.is_file() else DEFAULT_CONFIG)


def work_directory(document: Mapping[str, Any], purpose: str) -> Path:
    workdir = Path(document.get("workdir") or "/tmp/gobackup") / f"{purpose}-{os.getpid()}"  # noqa: S108
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


class Stopped(BaseException):
    """SIGTERM or SIGINT: unwinds through every finally, so nothing is left behind."""


def stop_on_signals() -> None:
    def stop(number: int, _frame: Any) -> None:
        raise Stopped(f"stopped by signal {signal.Signals(number).name}")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def fetch_packages(
    storage: S3Storage,
    name: str,
    version_id: str,
    workdir: Path,
    model: str,
    body: Mapping[str, Any],
    environment: Mapping[str, str],
    settings: Mapping[str, Any],
) -> tuple[list[Path], int]:
    """Downloads, decrypts, unpacks and checks an archive: its packages and size."""
    version = f" version {version_id}" if version_id else ""
    print(f"restore: downloading {storage.bucket}/{storage.key(name)}{version}", flush=True)
    storage.download(name, workdir / name, version_id)
    size = (workdir / name).stat().st_size
    plain = decrypt(workdir / name, model, body, environment, settings)
    packages = unpack(plain, workdir / "unpacked", model)
    plain.unlink(missing_ok=True)
    for package in packages:
        check_package(package)
    return packages, size


def verify(arguments: argparse.Namespace) -> int:
    config = active_config(arguments.config)
    document, environment = backupcfg.load(config, backupcfg.resolve_file_env(os.environ))
    models = arguments.model or sorted(document["models"])
    checked, failed = 0, 0
    workdir = work_directory(document, "verify")
    try:
        for model in models:
            storage, _ = model_parts(document, model, arguments.timeout)
            settings = restore_settings(config, environment, model)
            names = storage.archives()
            if not names:
                print(f"MISSING model={model}: no archives in {storage.bucket}/{storage.path}", flush=True)
                failed += 1
            for name in names if arguments.all else names[-1:]:
                checked += 1
                archive = workdir / name
                try:
                    storage.download(name, archive)
                    size = archive.stat().st_size
                    plain = decrypt(archive, model, document["models"][model], environment, settings)
                    tables = sum(check_package(package) for package in unpack(plain, workdir / "unpacked", model))
                    print(f"OK model={model} key={storage.key(name)} size={size} tables={tables}", flush=True)
                except WrongKey as error:
                    print(f"WRONG-KEY model={model} key={storage.key(name)} reason={error}", flush=True)
                    failed += 1
                except CorruptArchive as error:
                    print(f"CORRUPT model={model} key={storage.key(name)} reason={error}", flush=True)
                    failed += 1
                finally:
                    shutil.rmtree(workdir / "unpacked", ignore_errors=True)
                    archive.unlink(missing_ok=True)
                    archive.with_name(name.removesuffix(".enc")).unlink(missing_ok=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if failed:
        print(f"VERIFY FAIL models={','.join(models)} failed={failed} archives={checked}")
        return 1
    print(f"VERIFY PASS models={','.join(models)} archives={checked}")
    return 0


def import_checked(server: Database, package: Path, target: str, replace: bool, drop_replaced: bool) -> str:
    """Imports a package as `target` and never leaves a moment without it:
    the import goes to a temporary name and is checked (DBCC CHECKDB, every
    table counted); only then is an existing target renamed aside
    (<target>_replaced_<UTC time>) and the new one renamed into place. Any
    failure leaves the target as it was and drops the temporary database.
    Returns the name the old database was kept under ('' when none)."""
    stamp = utc_stamp()
    temporary, aside = f"{target}_restoring_{stamp}", f"{target}_replaced_{stamp}"
    replaced = ""
    try:
        print(f"restore: importing {package.name} into {temporary} on {server.server}", flush=True)
        server.import_package(package, temporary)
        server.check(temporary)
        counts = server.row_counts(temporary, package_tables(package))
        print(f"restore: {temporary} is consistent (DBCC CHECKDB) and holds {sum(counts.values())} rows", flush=True)
        if server.exists(target):
            if not replace:
                raise RestoreError(f"database {target} appeared on {server.server} during the import; nothing replaced")
            server.rename(target, aside)
            replaced = aside
            try:
                server.rename(temporary, target)
            except RestoreError:
                server.rename(aside, target)
                replaced = ""
                raise
            print(f"restore: the previous {target} is kept as {aside}", flush=True)
            if drop_replaced:
                server.drop(aside)
                print(f"restore: dropped {aside} (--drop-replaced)", flush=True)
                replaced = ""
        else:
            server.rename(temporary, target)
        return replaced
    except BaseException as error:
        left = server.remove_if_there(temporary)
        if left and isinstance(error, RestoreError):
            raise RestoreError(f"{error}{left}") from None
        raise


def restore(arguments: argparse.Namespace) -> int:
    config = active_config(arguments.config)
    document, environment = backupcfg.load(config, backupcfg.resolve_file_env(os.environ))
    model = arguments.model
    storage, source = model_parts(document, model, arguments.timeout)
    settings = restore_settings(config, environment, model)

    if arguments.list_versions:
        versions = storage.versions()
        lines = [f"{name} version={version} {state}" for name, version, state in versions]
        print("\n".join(lines) if lines else f"no archive versions under {storage.bucket}/{storage.path}")
        return 0
    if arguments.list:
        archives = storage.archives()
        print("\n".join(archives) if archives else f"no archives under {storage.bucket}/{storage.path}")
        return 0

    # Every refusal comes before anything is downloaded.
    if arguments.into_source:
        if arguments.drill:
            raise RestoreError("a drill never imports into a source server: drop --into-source")
        if not arguments.target_database:
            raise RestoreError("--into-source needs --target-database, the database to restore on the source server")
        if arguments.confirm != arguments.target_database:
            raise RestoreError(
                f"--into-source writes to the source server {source.server}: repeat the target's name with"
                f" --confirm {arguments.target_database} (Ansible: -e restore_confirm=<target database>)"
            )
        server = source
        print(f"restore: into the SOURCE server {source.server}, as confirmed for {arguments.target_database}")
    else:
        server = restore_server(config, document, environment, model, source)
    if arguments.drop_replaced and not arguments.replace:
        raise RestoreError("--drop-replaced only goes with --replace")
    target = arguments.target_database
    if target and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}", target):
        raise RestoreError(f"target database name {target!r} may hold only letters, digits and _.- (100 at most)")
    name = choose_archive(storage, arguments)
    if target and not arguments.drill and server.exists(target) and not arguments.replace:
        raise RestoreError(
            f"database {target} already exists on {server.server}; pass --replace to swap it for the restored one"
            " (the old one is kept as <name>_replaced_<time>)"
        )

    workdir = work_directory(document, "drill" if arguments.drill else "restore")
    try:
        if arguments.drill:
            with one_drill_at_a_time():
                return drill(arguments, document, storage, server, name, workdir, environment, settings)
        packages, _ = fetch_packages(
            storage, name, arguments.version_id or "", workdir, model, document["models"][model], environment, settings
        )
        packages = select_packages(packages, arguments.database, bool(target))
        for package in packages:
            database = target or f"{package.stem}_restored_{archive_time(name)}"
            replaced = import_checked(server, package, database, arguments.replace, arguments.drop_replaced)
            kept = f" replaced={replaced}" if replaced else ""
            print(f"RESTORED model={model} archive={name} database={package.stem} target={database}{kept}", flush=True)
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def choose_archive(storage: S3Storage, arguments: argparse.Namespace) -> str:
    if arguments.version_id:
        # A retained version, perhaps behind a delete marker: the listing of
        # current archives does not show it.
        if not arguments.archive:
            raise RestoreError("--version-id needs --archive, the archive's name (see --list-versions)")
        if (arguments.archive, arguments.version_id) not in {(n, v) for n, v, _ in storage.versions()}:
            raise RestoreError(
                f"version {arguments.version_id} of {arguments.archive} is not in {storage.bucket}/{storage.path}"
                " (see --list-versions)"
            )
        return arguments.archive
    archives = storage.archives()
    if not archives:
        raise RestoreError(f"no archives of model {arguments.model} in {storage.endpoint} bucket {storage.bucket}")
    name = arguments.archive or archives[-1]
    if name not in archives:
        raise RestoreError(f"archive {name} is not in {storage.bucket}/{storage.path} (latest: {archives[-1]})")
    return name


def select_packages(packages: list[Path], database: str | None, one_target: bool) -> list[Path]:
    """The packages to restore: the one named by --database, else all (an
    all_databases archive holds one per database)."""
    if database:
        chosen = [package for package in packages if package.stem.lower() == database.lower()]
        if not chosen:
            held = ", ".join(package.stem for package in packages)
            raise RestoreError(f"the archive holds no database {database} (it holds {held})")
        return chosen
    if one_target and len(packages) > 1:
        held = ", ".join(package.stem for package in packages)
        raise RestoreError(f"the archive holds several databases ({held}): name one with --database")
    return packages


def drill(
    arguments: argparse.Namespace,
    document: Mapping[str, Any],
    storage: S3Storage,
    server: Database,
    name: str,
    workdir: Path,
    environment: Mapping[str, str],
    settings: Mapping[str, Any],
) -> int:
    """Proves an archive restores: verified, every database imported into the
    restore server, DBCC CHECKDB, every table counted, then dropped. Records
    the result per database in the state volume (drills.json)."""
    model, body = arguments.model, document["models"][arguments.model]
    made = archive_timestamp(name, body)
    results: dict[str, dict[str, Any]] = {}
    size = 0
    try:
        packages, size = fetch_packages(storage, name, "", workdir, model, body, environment, settings)
    except RestoreError as error:
        known = [server.name] if server.name else list(previous_drills(model)) or ["*"]
        results = {database: {"result": "fail", "reason": str(error)} for database in known}
        packages = []
    for package in packages:
        scratch = f"{package.stem}_drill_{utc_stamp()}"
        try:
            started = time.monotonic()
            print(f"restore: importing {package.name} into {scratch} on {server.server}", flush=True)
            server.import_package(package, scratch)
            seconds = time.monotonic() - started
            server.check(scratch)
            print(f"restore: DBCC CHECKDB of {scratch} found no errors", flush=True)
            counts = server.row_counts(scratch, package_tables(package))
            results[package.stem] = {
                "result": "pass",
                "reason": "",
                "restore_seconds": round(seconds, 3),
                "tables": len(counts),
                "rows": sum(counts.values()),
                "row_counts": counts,
            }
            print(f"restore: drill counted {', '.join(f'{t}={c}' for t, c in counts.items())}", flush=True)
        except RestoreError as error:
            results[package.stem] = {"result": "fail", "reason": str(error)}
        finally:
            left = server.remove_if_there(scratch)
            if left:
                result = results.setdefault(package.stem, {"result": "fail", "reason": ""})
                result.update(result="fail", reason=(result["reason"] + left).lstrip("; "))
    record_drills(model, name, made, size, results)
    for database, result in sorted(results.items()):
        if result["result"] == "pass":
            print(
                f"DRILL PASS model={model} database={database} archive={name} tables={result['tables']}"
                f" rows={result['rows']} restore_seconds={result['restore_seconds']:.1f}",
                flush=True,
            )
        else:
            print(f"DRILL FAIL model={model} database={database} reason={result['reason']}", flush=True)
    failed = sorted(database for database, result in results.items() if result["result"] != "pass")
    if failed:
        print(f"DRILL FAIL model={model} archive={name} failed={','.join(failed)} databases={len(results)}")
        return 1
    tables = sum(result["tables"] for result in results.values())
    rows = sum(result["rows"] for result in results.values())
    print(f"DRILL PASS model={model} archive={name} databases={len(results)} tables={tables} rows={rows}")
    return 0


DRILL_LOCK = "drill.lock"


@contextlib.contextmanager
def one_drill_at_a_time() -> Iterator[None]:
    """A drill never overlaps another (the scheduler's and restore.yml's alike):
    a second one waits for the first."""
    backupcfg.STATE_DIR.mkdir(parents=True, exist_ok=True)
    with (backupcfg.STATE_DIR / DRILL_LOCK).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("restore: another drill is running; this one waits for it", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def previous_drills(model: str) -> dict[str, Any]:
    return (backupcfg.read_state(backupcfg.DRILLS_STATE).get("models") or {}).get(model) or {}


def record_drills(
    model: str, archive: str, made: float | None, size: int, results: Mapping[str, Mapping[str, Any]]
) -> None:
    """drills.json: per model and database, the last drill and the last proof
    (a failed drill keeps when the database was last proven restorable)."""
    state = backupcfg.read_state(backupcfg.DRILLS_STATE)
    records = state.setdefault("models", {}).setdefault(model, {})
    now = time.time()
    for database, result in results.items():
        record = records.setdefault(
            database,
            {"proven_at": None, "restore_seconds": None, "archive_age_seconds": None},
        )
        record.update(
            last_drill=now,
            result=result["result"],
            reason=result.get("reason", ""),
            archive=archive,
            archive_time=made,
            archive_size=size,
        )
        if result["result"] == "pass":
            record.update(
                proven_at=now,
                restore_seconds=result["restore_seconds"],
                archive_age_seconds=round(now - made, 3) if made else None,
                tables=result["tables"],
                rows=result["rows"],
                row_counts=result["row_counts"],
            )
    backupcfg.write_state(backupcfg.DRILLS_STATE, state)


def verify_main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="backup-verify", description="Check the archives of each model in MinIO.")
    parser.add_argument("--model", action="append", help="model to check (repeatable; default: every model)")
    parser.add_argument("--all", action="store_true", help="check every kept archive, not only the latest")
    parser.add_argument("--config", type=Path, help="GoBackup configuration (default: the active one)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for each MinIO request")
    arguments = parser.parse_args(argv)
    try:
        return verify(arguments)
    except backupcfg.ConfigError as error:
        print(f"VERIFY ERROR: {'; '.join(error.reasons)}")
    except (RestoreError, OSError, http.client.HTTPException) as error:
        print(f"VERIFY ERROR: {error}")
    return 2


def cleanup_main(argv: list[str] | None) -> int:
    """Aborts the multipart uploads a run cut off (the container killed
    mid-upload) left under each model's path: the entrypoint runs it before
    GoBackup starts, when no upload of this host can be under way."""
    parser = argparse.ArgumentParser(prog="backup-cleanup", description=cleanup_main.__doc__.split(":")[0])
    parser.add_argument("--config", type=Path, help="GoBackup configuration (default: the active one)")
    parser.add_argument("--timeout", type=float, default=60, help="seconds for each MinIO request")
    arguments = parser.parse_args(argv)
    try:
        document, _ = backupcfg.load(active_config(arguments.config), backupcfg.resolve_file_env(os.environ))
        for model, body in sorted(document["models"].items()):
            for storage in (body.get("storages") or {}).values():
                if storage.get("type") not in backupcfg.S3_STORAGE_TYPES:
                    continue
                target = s3_storage(storage, arguments.timeout)
                for key, upload_id, initiated in target.incomplete_uploads():
                    target.abort_upload(key, upload_id)
                    print(f"backup-cleanup: model {model}: aborted the incomplete upload of {key} (begun {initiated})")
    except backupcfg.ConfigError as error:
        print(f"backup-cleanup: {'; '.join(error.reasons)}", file=sys.stderr)
        return 2
    except (RestoreError, OSError, http.client.HTTPException, ElementTree.ParseError) as error:
        print(f"backup-cleanup: {error}", file=sys.stderr)
        return 1
    return 0


# --- sqlpackage as GoBackup runs it --------------------------------------------------

REAL_SQLPACKAGE = "/usr/local/bin/sqlpackage"
# How .NET (and Go) report ENOSPC.
NO_SPACE = "no space left on device"
SQLPACKAGE_SHORT_NAMES = {
    "a": "action",
    "ssn": "sourceservername",
    "sdn": "sourcedatabasename",
    "su": "sourceuser",
    "sp": "sourcepassword",
    "stsc": "sourcetrustservercertificate",
    "tf": "targetfile",
}


def sqlpackage_options(argv: list[str]) -> dict[str, str]:
    """/Name:value arguments by lower-case long name; /p:Name=value as p:name."""
    options = {}
    for argument in argv:
        name, _, value = argument.lstrip("/-").partition(":")
        name = SQLPACKAGE_SHORT_NAMES.get(name.lower(), name.lower())
        if name == "p":
            name, _, value = value.partition("=")
            name = f"p:{name.lower()}"
        options[name] = value
    return options


def size_text(size: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def mount_point(path: Path) -> Path:
    path = path.resolve()
    while not os.path.ismount(path):
        path = path.parent
    return path


def space_report(options: Mapping[str, str], stderr: str, free_at_start: dict[Path, int]) -> str:
    """What a failed export needed: the volume that filled up, what it had
    free when the export started and, from SQL Server, what the export needs
    (about twice the largest table for sqlpackage's table buffer, plus the
    .bacpac and GoBackup's archive of it, up to the data's size each)."""
    target = Path(options["targetfile"])
    full = re.search(r"No space left on device\s*:\s*'([^']+)'", stderr, re.IGNORECASE)
    volume = mount_point(Path(full.group(1)).parent if full else target.parent)
    name = os.environ.get("WORK_VOLUME", "") if volume == mount_point(target.parent) else ""
    where = f"the work volume {name} (mounted at {volume})" if name else f"the volume mounted at {volume}"
    database = options.get("sourcedatabasename", "?")
    had = size_text(free_at_start[volume]) if volume in free_at_start else "an unmeasured amount"
    host, _, port = options.get("sourceservername", "").partition(",")
    source = Database(
        host=host,
        port=int(port or 1433),
        name=database,
        username=options.get("sourceuser", ""),
        password=options.get("sourcepassword", ""),
        trust=options.get("sourcetrustservercertificate", "").lower() == "true",
        args="",
    )
    try:
        tables = source.table_sizes(database) or [0]
        needs = (
            f"the export needs about {size_text(2 * max(tables) + 2 * sum(tables))} free there: twice its largest"
            f" table ({size_text(max(tables))}) for sqlpackage's table buffer, plus the .bacpac and its archive"
            f" (up to the {size_text(sum(tables))} of data each)"
        )
    except (RestoreError, ValueError, OSError) as error:
        needs = f"the export needs more than that (the database's size could not be read: {error})"
    return (
        f"*** {where} ran out of space during the export of {database}: it had {had} free when the export"
        f" started; {needs}. Free space there, or give the work volume more room"
        " (Ansible: backup_stack_work_volume_driver_opts)."
    )


def sqlpackage_main(argv: list[str]) -> int:
    options = sqlpackage_options(argv)
    if options.get("action", "").lower() != "export" or not options.get("targetfile"):
        os.execv(REAL_SQLPACKAGE, [REAL_SQLPACKAGE, *argv])  # noqa: S606 - the arguments as GoBackup gave them
    # .NET's temp directory: TMPDIR, else /tmp.
    buffers = [
        Path(options["targetfile"]).parent,
        Path(options.get("p:tempdirectoryfortabledata") or os.environ.get("TMPDIR") or "/tmp"),  # noqa: S108
    ]
    free_at_start = {}
    for directory in buffers:
        with contextlib.suppress(OSError):
            free_at_start[mount_point(directory)] = shutil.disk_usage(directory).free
    # stdout goes straight to GoBackup; stderr, GoBackup's failure reason, is
    # passed on once sqlpackage has exited, the report after it.
    result = subprocess.run([REAL_SQLPACKAGE, *argv], stderr=subprocess.PIPE, check=False)
    stderr = result.stderr.decode(errors="replace")
    sys.stderr.write(stderr)
    if result.returncode != 0 and NO_SPACE in stderr.lower():
        try:
            report = space_report(options, stderr, free_at_start)
        except Exception as error:  # sqlpackage's own error and status must still get through
            report = f"*** (the disk space report failed: {type(error).__name__}: {error})"
        sys.stderr.write(report + "\n")
    sys.stderr.flush()
    # Killed by a signal (the memory limit's OOM kill): the shell's 128+N.
    return result.returncode if result.returncode >= 0 else 128 - result.returncode


def main(argv: list[str] | None = None) -> int:
    if Path(sys.argv[0]).name == "sqlpackage":
        return sqlpackage_main(sys.argv[1:] if argv is None else argv)
    if Path(sys.argv[0]).name == "backup-verify":
        return verify_main(argv)
    if Path(sys.argv[0]).name == "backup-cleanup":
        return cleanup_main(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="GoBackup model to restore")
    parser.add_argument("--archive", help="archive file name (default: the latest)")
    parser.add_argument("--version-id", help="restore this retained version of --archive (see --list-versions)")
    parser.add_argument("--database", help="the database to restore from an archive that holds several")
    parser.add_argument("--target-database", help="database to import into (default: a new name)")
    parser.add_argument("--replace", action="store_true", help="swap an existing target for the restored database")
    parser.add_argument("--drop-replaced", action="store_true", help="with --replace: drop the old database after")
    parser.add_argument(
        "--into-source", action="store_true", help="restore into the model's source server (needs --confirm)"
    )
    parser.add_argument("--confirm", default="", help="with --into-source: the target database's name again")
    parser.add_argument("--drill", action="store_true", help="restore into scratch databases, check them, drop them")
    parser.add_argument("--list", action="store_true", help="list the model's archives and exit")
    parser.add_argument(
        "--list-versions", action="store_true", help="list every retained version of the archives and exit"
    )
    parser.add_argument("--config", type=Path, help="GoBackup configuration (default: the active one)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for each MinIO request")
    arguments = parser.parse_args(argv)
    verdict = "DRILL FAIL" if arguments.drill else "RESTORE FAIL"
    stop_on_signals()
    try:
        return restore(arguments)
    except backupcfg.ConfigError as error:
        print(f"{verdict} model={arguments.model}: {'; '.join(error.reasons)}")
    except (RestoreError, OSError, zipfile.BadZipFile, ElementTree.ParseError) as error:
        print(f"{verdict} model={arguments.model}: {error}")
    except Stopped as error:
        print(f"{verdict} model={arguments.model}: {error}; nothing it created is left behind")
        return 143
    return 1


if __name__ == "__main__":
    sys.exit(main())
