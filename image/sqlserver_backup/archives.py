"""GoBackup's archives of a model: names and times, decryption with the
current passphrase and then each previous one (restore.yml), unpacking, and
the checks of each .bacpac in them (the CRC of every entry, and model.xml
against the checksum Origin.xml recorded at export, as sqlpackage checks on
import)."""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import subprocess
import xml.etree.ElementTree as ElementTree
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlserver_backup import go_time_location, gobackup_rules
from sqlserver_backup.errors import CorruptArchive, RestoreError, WrongKey
from sqlserver_backup.models import ModelArchives
from sqlserver_backup.s3 import StoredObject, s3_storage

DAC_NAMESPACE = "{http://schemas.microsoft.com/sqlserver/dac/Serialization/2012/02}"
QUOTED_NAME = re.compile(r"\[[^\[\]]+\](\.\[[^\[\]]+\])*")

# The head of what an archive decrypts to, by compress_with type: tar's magic
# at offset 257, or the gzip, zstd and xz magic numbers.
ARCHIVE_MAGIC = ((257, b"ustar"), (0, b"\x1f\x8b"), (0, b"\x28\xb5\x2f\xfd"), (0, b"\xfd7zXZ\x00"))
SALTED = b"Salted__"
# GoBackup's archive name: the time, .tar, the compressor's extension (.gz,
# .zst, .xz, ...) and .enc when encrypted.
ARCHIVE_NAME = re.compile(r"(?P<time>.+?)\.tar(\.[A-Za-z0-9]+)?(\.enc)?")
# How much later than its upload an archive's name may say it was made: the
# 15 minutes of clock skew S3 accepts (it refuses a request signed further
# from the server's clock), plus the widest UTC offset, 14 hours, as names are
# local times and the zone they are read in can differ from the one they were
# written in (a changed backup_stack_timezone).
CLOCK_SKEW_SECONDS = (14 * 60 + 15) * 60


def passphrase_variables(
    model: str, body: Mapping[str, Any], settings: Mapping[str, Any], environment: Mapping[str, str]
) -> list[str]:
    """The current passphrase's .env variable, then the previous ones that are set."""
    current = gobackup_rules.encryption_passphrase_variable(body.get("encrypt_with"))
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
    variables = passphrase_variables(model, body, settings or {}, environment)
    if not variables:
        raise WrongKey(
            f"{archive.name} of model {model} is encrypted, but no passphrase for it is set"
            " (backup_config_encryption_passphrase or the entry's encryption_passphrase, and"
            " backup_config_encryption_previous_passphrases for archives made before a rotation)"
        )
    try:
        return decrypt_with(archive, model, *openssl_command(body), variables, environment)
    finally:
        archive.unlink(missing_ok=True)


def openssl_command(body: Mapping[str, Any]) -> tuple[list[str], bool]:
    """openssl's decryption with the model's cipher, base64 and args; whether it is base64."""
    encrypt = body.get("encrypt_with") if isinstance(body.get("encrypt_with"), dict) else {}
    cipher = ["openssl", str(encrypt.get("chiper") or "aes-256-cbc"), "-d"]
    base64 = str(encrypt.get("base64", False)).lower() == "true"
    if base64:
        cipher.append("-base64")
    return cipher + str(encrypt.get("args") or "").split(), base64


def decrypt_with(
    archive: Path,
    model: str,
    cipher: list[str],
    base64: bool,
    variables: list[str],
    environment: Mapping[str, str],
) -> Path:
    """The archive decrypted with the first passphrase whose head looks like an archive."""
    plain = archive.with_name(archive.name.removesuffix(".enc"))
    with archive.open("rb") as file:
        # Whole base64 lines (64 characters each) decode on their own.
        head = b"".join(file.readline() for _ in range(72)) if base64 else file.read(16 + 4096)
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
    model's filename_format (Go's 2006.01.02.15.04.05 by default), then .tar,
    the compressor's extension and .enc when encrypted. None for a name that
    is not such a name."""
    named = ARCHIVE_NAME.fullmatch(name)
    if not named:
        return None
    strptime = filename_format(body)
    for go, python in (("2006", "%Y"), ("01", "%m"), ("02", "%d"), ("15", "%H"), ("04", "%M"), ("05", "%S")):
        strptime = strptime.replace(go, python)
    try:
        moment = datetime.datetime.strptime(named["time"], strptime)
    except ValueError:
        return None
    return moment.replace(tzinfo=go_time_location.local_zone()).timestamp()


def filename_format(body: Mapping[str, Any]) -> str:
    return str((body.get("compress_with") or {}).get("filename_format") or "2006.01.02.15.04.05")


@dataclass(frozen=True)
class Listing:
    """A model's archives by the time in their names, oldest first, and each
    other object under its path with why it is not one of them."""

    archives: list[StoredObject]
    ignored: dict[str, str]

    @property
    def names(self) -> list[str]:
        return [archive.name for archive in self.archives]


def listed_archives(objects: Iterable[StoredObject], body: Mapping[str, Any]) -> Listing:
    """GoBackup names an archive when it makes it, before the upload: an
    object whose name is not a time in filename_format, or is a time later
    than its upload (beyond the clock skew S3 itself accepts), was put there
    by something else. It is ignored, and named, rather than taken for the
    latest archive by a restore, a drill, backup-verify or the metrics."""
    timed, ignored = [], {}
    for stored in objects:
        made = archive_timestamp(stored.name, body)
        if made is None:
            ignored[stored.name] = f"not an archive name (filename_format {filename_format(body)})"
        elif made > stored.modified + CLOCK_SKEW_SECONDS:
            ignored[stored.name] = f"its name is a time later than its upload at {utc_text(stored.modified)}"
        else:
            timed.append((made, stored.name, stored))
    return Listing([stored for _, _, stored in sorted(timed)], dict(sorted(ignored.items())))


def utc_text(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def storage_listing(body: Mapping[str, Any], timeout: float) -> Listing | None:
    """The listing of the model's first S3 storage, else of its local
    storage's folder; None when it has neither."""
    storages = [storage for storage in (body.get("storages") or {}).values() if isinstance(storage, dict)]
    for storage in storages:
        if storage.get("type") in gobackup_rules.S3_STORAGE_TYPES:
            return listed_archives(s3_storage(storage, timeout).objects(), body)
    for storage in storages:
        if storage.get("type") == "local" and storage.get("path") and Path(str(storage["path"])).is_dir():
            return local_listing(Path(str(storage["path"])), body)
    return None


def local_listing(folder: Path, body: Mapping[str, Any]) -> Listing:
    """The listing of a local storage's folder (a file's mtime is its upload)."""
    files = [(entry.name, entry.stat()) for entry in folder.iterdir() if entry.is_file()]
    return listed_archives((StoredObject(name, found.st_size, found.st_mtime) for name, found in files), body)


def newest_archive(body: Mapping[str, Any], timeout: float) -> StoredObject | None:
    """The archive a restore takes by default, with its size; None when the
    model has none."""
    listing = storage_listing(body, timeout)
    return listing.archives[-1] if listing and listing.archives else None


def fetch_packages(archives: ModelArchives, name: str, version_id: str, workdir: Path) -> tuple[list[Path], int]:
    """Downloads, decrypts, unpacks and checks an archive: its packages and size."""
    storage, model = archives.storage, archives.model
    version = f" version {version_id}" if version_id else ""
    print(f"restore: downloading {storage.bucket}/{storage.key(name)}{version}", flush=True)
    storage.download(name, workdir / name, version_id)
    size = (workdir / name).stat().st_size
    plain = decrypt(workdir / name, model, archives.body, archives.environment, archives.settings)
    packages = unpack(plain, workdir / "unpacked", model)
    plain.unlink(missing_ok=True)
    for package in packages:
        check_package(package)
    return packages, size
