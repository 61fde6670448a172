#!/usr/bin/env python3
"""Restore a GoBackup archive of this container's configuration into SQL Server.

  backup-restore --model sales --list
  backup-restore --model sales --list-versions
  backup-restore --model sales [--archive 2026.11.23.02.00.00.tar [--version-id ID]] [--target-database Sales_copy]
                 [--replace]
  backup-restore --model sales --drill
  backup-verify [--model sales ...] [--all]

Reads the model's storage and database from the active GoBackup configuration
and where to import from restore.yml beside it (or RESTORE_MSSQL_HOST, _PORT,
_USER, _PASSWORD, _TRUST_SERVER_CERTIFICATE; else the export's server),
downloads the latest (or the named) archive from MinIO with the model's own key,
decrypts it when the model has encrypt_with (openssl, the passphrase from the
.env variable its password names), unpacks it in the work directory and imports
the .bacpac with sqlpackage into a new database
(<database>_restored_<archive time> unless named). On a versioned bucket
(object lock) --list-versions lists every retained version of each archive,
those that keep deleted (behind a delete marker) or a run overwrote included,
and --version-id restores one of them. An existing
target database is replaced only with --replace. --drill restores into a
scratch database, counts the rows of every table of the package, drops the
scratch database and prints one PASS or FAIL line. Exit status 0 on success.
backup-verify (this program under that name) downloads the latest archive of
each model (--all: every kept one), checks the tar, the CRC of every entry of
the .bacpac and its model (model.xml parses and matches the SHA-256 Origin.xml
recorded at export, as sqlpackage checks on import), and prints OK or CORRUPT
per archive with its key, then VERIFY PASS or VERIFY FAIL. Exit status 0 when
all are OK, 1 when one is corrupt or a model has none, 2 when it could not
check (MinIO unreachable, bad configuration).
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
import hashlib
import hmac
import http.client
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

sys.path.insert(0, "/usr/local/lib/gobackup-image")
import backupcfg

DEFAULT_CONFIG = Path("/etc/gobackup/gobackup.yml")
DAC_NAMESPACE = "{http://schemas.microsoft.com/sqlserver/dac/Serialization/2012/02}"
STATE_FOLDER = ".gobackup-state/"
RESTORE_SETTINGS = "restore.yml"
QUOTED_NAME = re.compile(r"\[[^\[\]]+\](\.\[[^\[\]]+\])*")


class RestoreError(Exception):
    """A reason to stop, printed as one line."""


class CorruptArchive(RestoreError):
    """The archive itself is damaged: its tar, its package or its model."""


class DecryptError(CorruptArchive):
    """openssl could not decrypt the archive: a wrong passphrase or damage."""


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
            raise RestoreError(f"sqlcmd on {self.server}: {(result.stderr or result.stdout).strip()}")
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
            raise RestoreError(f"sqlpackage import into {target} on {self.server} failed: {result.stderr.strip()}")


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
    models = document["models"]
    if model not in models:
        raise RestoreError(f"model {model} is not in the configuration (models: {', '.join(sorted(models))})")
    body = models[model]
    databases = [value for value in (body.get("databases") or {}).values() if value.get("type") == "mssql"]
    storages = [value for value in (body.get("storages") or {}).values() if value.get("type") in {"minio", "s3"}]
    if len(databases) != 1 or not storages:
        raise RestoreError(f"model {model} needs exactly one mssql database and an S3 storage to restore from")
    source = databases[0]
    return (
        s3_storage(storages[0], timeout),
        Database(
            host=str(source.get("host", "127.0.0.1")),
            port=int(source.get("port", 1433)),
            name=str(source["database"]),
            username=str(source.get("username", "sa")),
            password=str(source.get("password", "")),
            trust=bool(source.get("trust_server_certificate", False)),
            args=str(source.get("args") or ""),
        ),
    )


def restore_target(config: Path, environment: Mapping[str, str], model: str, source: Database) -> Database:
    """Where restores and drills of a model import: restore.yml beside the
    configuration (written by the backup_config role), else the RESTORE_MSSQL_*
    variables, else the export's own server and login."""
    settings_file = config.parent / RESTORE_SETTINGS
    settings: Mapping[str, Any] = {}
    if settings_file.is_file():
        settings = (backupcfg.load_lenient(settings_file, environment) or {}).get("models", {}).get(model) or {}
    elif environment.get("RESTORE_MSSQL_HOST"):
        settings = {
            "host": environment["RESTORE_MSSQL_HOST"],
            "port": environment.get("RESTORE_MSSQL_PORT") or 1433,
            "username": environment.get("RESTORE_MSSQL_USER") or source.username,
            "password": environment.get("RESTORE_MSSQL_PASSWORD") or source.password,
            "trust_server_certificate": environment.get("RESTORE_MSSQL_TRUST_SERVER_CERTIFICATE", "false") == "true",
        }
    if not settings:
        print(
            f"restore: no restore server or login set for model {model}; using the export's "
            "(backup_config_restore_* or RESTORE_MSSQL_* give restores their own)",
            flush=True,
        )
        return source
    return Database(
        host=str(settings.get("host") or source.host),
        port=int(settings.get("port") or source.port),
        name=source.name,
        username=str(settings.get("username") or source.username),
        password=str(settings.get("password") or source.password),
        trust=bool(settings.get("trust_server_certificate", source.trust)),
        args=source.args,
    )


def decrypt(archive: Path, model: str, body: Mapping[str, Any], environment: Mapping[str, str]) -> Path:
    """GoBackup's encrypt_with (openssl) in reverse, with the model's cipher,
    base64 and args; the passphrase reaches openssl from the environment."""
    if not archive.name.endswith(".enc"):
        return archive
    encrypt = body.get("encrypt_with")
    variable = backupcfg.encryption_passphrase_variable(encrypt)
    if variable is None:
        raise RestoreError(
            f"{archive.name} of model {model} is encrypted, but the model has no encrypt_with passphrase in the"
            " configuration (backup_config_encryption_passphrase, or the database entry's encryption_passphrase)"
        )
    plain = archive.with_name(archive.name.removesuffix(".enc"))
    command = ["openssl", str(encrypt.get("chiper") or "aes-256-cbc"), "-d"]
    if str(encrypt.get("base64", False)).lower() == "true":
        command.append("-base64")
    command += str(encrypt.get("args") or "").split()
    command += ["-pass", f"env:{variable}", "-in", str(archive), "-out", str(plain)]
    result = subprocess.run(command, capture_output=True, text=True, check=False, env={**os.environ, **environment})
    archive.unlink()
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no message"])[0]
        raise DecryptError(
            f"cannot decrypt {archive.name} of model {model} with the passphrase in {variable}:"
            f" wrong passphrase or damaged archive (openssl: {detail})"
        )
    return plain


def unpack(archive: Path, into: Path, model: str) -> Path:
    # tar, as GoBackup packed it: it also knows the compressed variants.
    into.mkdir()
    result = subprocess.run(["tar", "-xf", str(archive), "-C", str(into)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise CorruptArchive(f"cannot unpack {archive.name}: {' '.join(result.stderr.split())}")
    packages = sorted(into.glob(f"{model}/mssql/*/*.bacpac"))
    if len(packages) != 1:
        raise CorruptArchive(f"{archive.name} holds {len(packages)} .bacpac files under {model}/mssql/, expected 1")
    return packages[0]


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


def active_config(named: Path | None) -> Path:
    active = backupcfg.ACTIVE_CONFIG
    return named or (Path(active.read_text().strip()) if active.is_file() else DEFAULT_CONFIG)


def work_directory(document: Mapping[str, Any], purpose: str) -> Path:
    workdir = Path(document.get("workdir") or "/tmp/gobackup") / f"{purpose}-{os.getpid()}"  # noqa: S108
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


def verify(arguments: argparse.Namespace) -> int:
    document, environment = backupcfg.load(active_config(arguments.config), backupcfg.resolve_file_env(os.environ))
    models = arguments.model or sorted(document["models"])
    checked, failed = 0, 0
    workdir = work_directory(document, "verify")
    try:
        for model in models:
            storage, _ = model_parts(document, model, arguments.timeout)
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
                    plain = decrypt(archive, model, document["models"][model], environment)
                    tables = check_package(unpack(plain, workdir / "unpacked", model))
                    print(f"OK model={model} key={storage.key(name)} size={size} tables={tables}", flush=True)
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


def restore(arguments: argparse.Namespace) -> int:
    config = active_config(arguments.config)
    document, environment = backupcfg.load(config, backupcfg.resolve_file_env(os.environ))
    storage, source = model_parts(document, arguments.model, arguments.timeout)
    database = restore_target(config, environment, arguments.model, source)

    if arguments.list_versions:
        versions = storage.versions()
        lines = [f"{name} version={version} {state}" for name, version, state in versions]
        print("\n".join(lines) if lines else f"no archive versions under {storage.bucket}/{storage.path}")
        return 0
    archives = storage.archives()
    if arguments.list:
        print("\n".join(archives) if archives else f"no archives under {storage.bucket}/{storage.path}")
        return 0
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
        name = arguments.archive
    else:
        if not archives:
            raise RestoreError(f"no archives of model {arguments.model} in {storage.endpoint} bucket {storage.bucket}")
        name = arguments.archive or archives[-1]
        if name not in archives:
            raise RestoreError(f"archive {name} is not in {storage.bucket}/{storage.path} (latest: {archives[-1]})")
    kind = "drill" if arguments.drill else "restored"
    target = arguments.target_database or f"{database.name}_{kind}_{archive_time(name)}"
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", target):
        raise RestoreError(f"target database name {target!r} may hold only letters, digits and _.-")

    workdir = work_directory(document, "restore")
    try:
        version = f" version {arguments.version_id}" if arguments.version_id else ""
        print(f"restore: downloading {storage.bucket}/{storage.path}/{name}{version}", flush=True)
        storage.download(name, workdir / name, arguments.version_id or "")
        plain = decrypt(workdir / name, arguments.model, document["models"][arguments.model], environment)
        package = unpack(plain, workdir / "unpacked", arguments.model)
        check_package(package)
        if database.exists(target):
            if not arguments.replace or arguments.drill:
                raise RestoreError(
                    f"database {target} already exists on {database.server}; pass --replace to overwrite it"
                )
            print(f"restore: dropping the existing database {target} (--replace)", flush=True)
            database.drop(target)
        print(f"restore: importing {package.name} into {target} on {database.server}", flush=True)
        database.import_package(package, target)
        if not arguments.drill:
            print(f"RESTORED model={arguments.model} archive={name} database={target}")
            return 0
        try:
            counts = {
                table: database.sqlcmd(f"SELECT COUNT(*) FROM {table}", target)[0]  # noqa: S608 - names checked
                for table in package_tables(package)
            }
        finally:
            database.drop(target)
        rows = sum(int(count) for count in counts.values())
        print(f"restore: drill counted {', '.join(f'{t}={c}' for t, c in counts.items())}; dropped {target}")
        print(
            f"DRILL PASS model={arguments.model} archive={name} database={database.name}"
            f" tables={len(counts)} rows={rows}"
        )
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


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
    parser.add_argument("--target-database", help="database to import into (default: a new name)")
    parser.add_argument("--replace", action="store_true", help="drop an existing target database first")
    parser.add_argument("--drill", action="store_true", help="restore into a scratch database, check it, drop it")
    parser.add_argument("--list", action="store_true", help="list the model's archives and exit")
    parser.add_argument(
        "--list-versions", action="store_true", help="list every retained version of the archives and exit"
    )
    parser.add_argument("--config", type=Path, help="GoBackup configuration (default: the active one)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for each MinIO request")
    arguments = parser.parse_args(argv)
    try:
        return restore(arguments)
    except backupcfg.ConfigError as error:
        reasons = "; ".join(error.reasons)
        print(f"{'DRILL FAIL' if arguments.drill else 'RESTORE FAIL'} model={arguments.model}: {reasons}")
    except (RestoreError, OSError, zipfile.BadZipFile, ElementTree.ParseError) as error:
        print(f"{'DRILL FAIL' if arguments.drill else 'RESTORE FAIL'} model={arguments.model}: {error}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
