#!/usr/bin/env python3
"""Build the stand-in tools and package them exactly like the upstream releases.

Writes into tests/.artifacts/ (or --out):
  gobackup-linux-amd64.tar.gz + checksums.txt   (as goreleaser publishes GoBackup)
  sqlpackage-linux-x64-en-<version>.zip         (as Microsoft ships sqlpackage)
  sqlcmd-linux-amd64.tar.bz2                     (as go-sqlcmd's releases ship it)
  bin/mssql-standin, bin/sqlcmd                  (for the SQL Server stand-in image)
  bin/artifact-server                            (serves this folder over HTTP)
  SHA256SUMS                                     (sha256 of every artifact)

Archives are byte-for-byte reproducible (fixed timestamps and owners), so the
checksums, and therefore the image build, only change when the code does.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import hashlib
import io
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOBACKUP_VERSION = "3.1.1"
SQLPACKAGE_VERSION = "170.4.83.3"
FIXED_TIME = (2026, 1, 1, 0, 0, 0)


def go_build(command: str, output: Path, version: str = "") -> None:
    flags = "-s -w" + (f" -X main.version={version}" if version else "")
    environment = {**os.environ, "CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": "amd64"}
    subprocess.run(
        ["go", "build", "-trimpath", "-buildvcs=false", f"-ldflags={flags}", "-o", str(output), f"./cmd/{command}"],
        cwd=HERE,
        env=environment,
        check=True,
    )


def write_if_changed(path: Path, content: bytes) -> bool:
    if path.is_file() and path.read_bytes() == content:
        return False
    path.write_bytes(content)
    return True


def tar_of(files: dict[str, bytes], compression: str) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name, content in files.items():
            member = tarfile.TarInfo(name)
            member.size, member.mode, member.mtime = len(content), 0o755, 0
            archive.addfile(member, io.BytesIO(content))
    if compression == "gz":
        return gzip.compress(raw.getvalue(), mtime=0)
    return bz2.compress(raw.getvalue())


def zip_of(files: dict[str, tuple[bytes, int]]) -> bytes:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, (content, mode) in files.items():
            entry = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            entry.external_attr = (0o100000 | mode) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, content)
    return raw.getvalue()


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE.parent / ".artifacts")
    arguments = parser.parse_args()
    out: Path = arguments.out
    binaries = out / "bin"
    binaries.mkdir(parents=True, exist_ok=True)

    go_build("gobackup", binaries / "gobackup", GOBACKUP_VERSION)
    go_build("sqlpackage", binaries / "sqlpackage", SQLPACKAGE_VERSION)
    go_build("sqlcmd", binaries / "sqlcmd")
    go_build("mssql-standin", binaries / "mssql-standin")
    go_build("artifact-server", binaries / "artifact-server")
    go_build("goexpand", binaries / "goexpand")

    gobackup_name = "gobackup-linux-amd64.tar.gz"
    gobackup = tar_of({"gobackup": (binaries / "gobackup").read_bytes()}, "gz")
    sqlcmd_name = "sqlcmd-linux-amd64.tar.bz2"
    sqlcmd = tar_of({"sqlcmd": (binaries / "sqlcmd").read_bytes(), "NOTICE.md": b"Stand-in for go-sqlcmd.\n"}, "bz2")
    sqlpackage_name = f"sqlpackage-linux-x64-en-{SQLPACKAGE_VERSION}.zip"
    sqlpackage = zip_of(
        {
            "sqlpackage": ((binaries / "sqlpackage").read_bytes(), 0o644),  # Microsoft's zip lacks +x too
            "sqlpackage.deps.json": (b'{"runtimeTarget": {"name": "stand-in"}}\n', 0o644),
        }
    )
    checksums = f"{sha256(gobackup)}  {gobackup_name}\n".encode()
    # Microsoft publishes no checksums file; the tests serve one so the URL
    # form of get_url's checksum is exercised for both artifacts.
    sums = f"{sha256(sqlpackage)}  {sqlpackage_name}\n{sha256(sqlcmd)}  {sqlcmd_name}\n".encode() + checksums

    changed = [
        write_if_changed(out / gobackup_name, gobackup),
        write_if_changed(out / "checksums.txt", checksums),
        write_if_changed(out / sqlpackage_name, sqlpackage),
        write_if_changed(out / sqlcmd_name, sqlcmd),
        write_if_changed(out / "SHA256SUMS", sums),
    ]
    print("changed" if any(changed) else "unchanged")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
