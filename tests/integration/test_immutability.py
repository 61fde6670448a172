"""Immutable backups: a bucket with object lock set up by the real
playbooks/minio_setup.yml on a MinIO of its own (the project's image, built by
the minio_image role under a tag of its own), GoBackup's keep against it, what
the host's own backup key can and cannot do to a locked archive, and how
backup-restore reaches a version hidden behind a delete marker."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import docker
import pytest
import yaml
from minio import Minio
from minio.error import S3Error
from minio.minioadmin import MinioAdmin
from minio.objectlockconfig import COMPLIANCE, DAYS, GOVERNANCE, ObjectLockConfig
from minio.retention import Retention
from minio.versioningconfig import SUSPENDED, VersioningConfig
from sqlserver_backup import archives, s3
from sqlserver_backup_testing import REPO, TEST_VARS, ansible_playbook, base_image, standins_only, wait_until

ROOT = Path("/tmp/sqlserver-backup-lock")
PORT = 31910
CONTAINER = "sqlserver-backup-lock-minio"
IMAGE_TAG = "lock"
ROOT_USER, ROOT_PASSWORD = "lock-admin", "Lock-Root-Passw0rd-31910"
HOST = "lockhost"
ACCESS_KEY, SECRET_KEY = "lockhost-backup", "Lockhost-Secret-Key-0123"
BUCKET = "locked-backups"
PREFIX = f"sqlserver/{HOST}"
ARCHIVE = f"{PREFIX}/sales/2026.01.01.02.00.00.tar"
SETTINGS = {
    "minio_setup_object_lock": True,
    "minio_setup_object_lock_mode": "GOVERNANCE",
    "minio_setup_object_lock_days": 30,
    "minio_setup_noncurrent_version_days": 10,
    "minio_setup_incomplete_upload_days": 2,
    "minio_setup_bucket_quota_mb": 512,
}
OUTPUTS: list[str] = []


def setup(tmp_path: Path, *arguments: str, bucket: str = BUCKET, **settings) -> subprocess.CompletedProcess[str]:
    """playbooks/minio_setup.yml for one backup host, as an operator runs it."""
    inventory = {
        "backup_hosts": {
            "hosts": {
                HOST: {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": sys.executable,
                    "backup_config_minio_access_key": ACCESS_KEY,
                    "backup_config_minio_secret_key": SECRET_KEY,
                    "backup_config_minio_endpoint": f"http://127.0.0.1:{PORT}",
                    "backup_config_minio_bucket": bucket,
                    "backup_config_databases": [
                        {"name": "sales", "database": "SalesDemo", "host": "sql", "password": "Pw-0123x"}
                    ],
                    "backup_config_restore_host": "sql-restore",
                    "vault_minio_root_user": ROOT_USER,
                    "vault_minio_root_password": ROOT_PASSWORD,
                    **SETTINGS,
                    **settings,
                }
            }
        }
    }
    (tmp_path / "hosts.yml").write_text(json.dumps(inventory))
    playbook = str(REPO / "playbooks" / "minio_setup.yml")
    result = ansible_playbook("-i", str(tmp_path / "hosts.yml"), *arguments, playbook)
    OUTPUTS.append(result.stdout + result.stderr)
    return result


def changed(result: subprocess.CompletedProcess[str]) -> int:
    return int(re.search(r"changed=(\d+)", result.stdout).group(1))


@pytest.fixture(scope="module")
def minio() -> Minio:
    """The project's MinIO image, built by its role, on a port of this module."""
    client = docker.from_env()
    playbook = ROOT / "minio_image.yml"
    ROOT.mkdir(parents=True, exist_ok=True)
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Build the MinIO image",
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "roles": [{"role": "minio_image"}],
                }
            ]
        )
    )
    built = ansible_playbook(
        "-i",
        "localhost,",
        "-e",
        f"@{TEST_VARS}",
        "-e",
        json.dumps(
            {
                "minio_image_tag": IMAGE_TAG,
                "minio_image_build_dir": str(ROOT / "minio-build"),
                "minio_image_base": base_image("minio_image"),
                "ansible_python_interpreter": sys.executable,
            }
        ),
        str(playbook),
    )
    assert built.returncode == 0, built.stdout[-3000:]
    for stale in client.containers.list(all=True, filters={"name": CONTAINER}):
        stale.remove(force=True, v=True)
    container = client.containers.run(
        f"sqlserver-backup/minio:{IMAGE_TAG}",
        detach=True,
        name=CONTAINER,
        environment={"MINIO_ROOT_USER": ROOT_USER, "MINIO_ROOT_PASSWORD": ROOT_PASSWORD},
        ports={"9000/tcp": ("127.0.0.1", PORT)},
    )
    root = Minio(f"127.0.0.1:{PORT}", ROOT_USER, ROOT_PASSWORD, secure=False)
    try:

        def lists_buckets() -> bool:
            try:
                root.list_buckets()
            except Exception:
                return False
            return True

        wait_until(lists_buckets, lambda: container.logs().decode()[-2000:], 60, interval=0.3)
        yield root
    finally:
        container.remove(force=True, v=True)


@pytest.fixture(scope="module")
def locked(minio: Minio, tmp_path_factory) -> Minio:
    """The locked bucket and the host's key, set up once: a dry run first."""
    tmp_path = tmp_path_factory.mktemp("setup")
    dry = setup(tmp_path, "--check")
    assert dry.returncode == 0, dry.stdout[-3000:]
    assert f"create bucket {BUCKET} with object lock" in dry.stdout
    assert not minio.bucket_exists(BUCKET), "check mode created the bucket"
    result = setup(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    return minio


@pytest.fixture(scope="module")
def backup_key(locked: Minio) -> Minio:
    return Minio(f"127.0.0.1:{PORT}", ACCESS_KEY, SECRET_KEY, secure=False)


def archive_bytes() -> bytes:
    """A GoBackup archive as the model 'sales' writes it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        payload = b"PK bacpac stand-in " * 1000
        member = tarfile.TarInfo("sales/mssql/salesdemo/SalesDemo.bacpac")
        member.size = len(payload)
        tar.addfile(member, io.BytesIO(payload))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def archive(backup_key: Minio) -> tuple[str, bytes]:
    """An archive uploaded with the host's own key: (version ID, bytes)."""
    data = archive_bytes()
    result = backup_key.put_object(BUCKET, ARCHIVE, io.BytesIO(data), len(data))
    return result.version_id, data


def test_setup_creates_a_locked_bucket_with_its_lifecycle(locked: Minio) -> None:
    assert locked.get_object_lock_config(BUCKET) == ObjectLockConfig(GOVERNANCE, 30, DAYS)
    assert locked.get_bucket_versioning(BUCKET).status == "Enabled"
    (rule,) = locked.get_bucket_lifecycle(BUCKET).rules
    assert rule.rule_id == "sqlserver-backup-versions"
    assert rule.rule_filter.prefix == ""
    assert rule.noncurrent_version_expiration.noncurrent_days == 10
    assert rule.expiration.expired_object_delete_marker is True
    admin = MinioAdmin(endpoint=f"127.0.0.1:{PORT}", credentials=_root_credentials(), secure=False)
    assert "stale_uploads_expiry=48h " in admin.config_get("api")
    quota = json.loads(admin.bucket_quota_get(BUCKET))
    assert (quota["quota"], quota["quotatype"]) == (512 * 1024 * 1024, "hard")


def _root_credentials():
    from minio.credentials import StaticProvider

    return StaticProvider(ROOT_USER, ROOT_PASSWORD)


def test_a_second_run_changes_nothing(locked: Minio, tmp_path: Path) -> None:
    for arguments in (["--check"], []):
        again = setup(tmp_path, *arguments)
        assert again.returncode == 0, again.stdout[-3000:]
        assert changed(again) == 0, again.stdout[-3000:]


def test_the_backup_key_policy_denies_what_would_defeat_the_lock(locked: Minio) -> None:
    admin = MinioAdmin(endpoint=f"127.0.0.1:{PORT}", credentials=_root_credentials(), secure=False)
    policy = json.loads(admin.policy_info(f"sqlserver-backup-{HOST}"))
    policy = policy.get("Policy", policy)
    allowed = {action for s in policy["Statement"] if s["Effect"] == "Allow" for action in s["Action"]}
    denied = {action for s in policy["Statement"] if s["Effect"] == "Deny" for action in s["Action"]}
    assert {"s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:ListBucket", "s3:AbortMultipartUpload"} <= allowed
    assert {
        "s3:BypassGovernanceRetention",
        "s3:PutObjectRetention",
        "s3:PutObjectLegalHold",
        "s3:PutBucketObjectLockConfiguration",
        "s3:DeleteObjectVersion",
    } <= denied
    assert not allowed & denied


def attacks(key: Minio, version: str) -> dict:
    later = datetime.now(timezone.utc) + timedelta(minutes=1)
    return {
        "remove the version": lambda: key.remove_object(BUCKET, ARCHIVE, version_id=version),
        "remove it bypassing governance": lambda: key._execute(
            "DELETE",
            BUCKET,
            ARCHIVE,
            headers={"x-amz-bypass-governance-retention": "true"},
            query_params={"versionId": version},
        ),
        "shorten its retention": lambda: key.set_object_retention(
            BUCKET, ARCHIVE, Retention(GOVERNANCE, later), version_id=version
        ),
        "set a legal hold": lambda: key.enable_object_legal_hold(BUCKET, ARCHIVE, version_id=version),
        "change the lock configuration": lambda: key.set_object_lock_config(
            BUCKET, ObjectLockConfig(GOVERNANCE, 1, DAYS)
        ),
        "suspend versioning": lambda: key.set_bucket_versioning(BUCKET, VersioningConfig(SUSPENDED)),
        "remove the lifecycle": lambda: key.delete_bucket_lifecycle(BUCKET),
    }


@pytest.mark.parametrize("attack", list(attacks(None, "")))  # type: ignore[arg-type]
def test_the_backup_key_cannot_destroy_a_locked_archive(locked, backup_key, archive, attack: str) -> None:
    version, data = archive
    with pytest.raises(S3Error) as refused:
        attacks(backup_key, version)[attack]()
    assert refused.value.code in {"AccessDenied", "InvalidRequest"}, refused.value
    assert locked.get_object(BUCKET, ARCHIVE, version_id=version).read() == data


def test_overwriting_and_deleting_leave_the_locked_version_intact(locked, backup_key, archive) -> None:
    version, data = archive
    backup_key.put_object(BUCKET, ARCHIVE, io.BytesIO(b"not an archive"), 14)
    backup_key.remove_object(BUCKET, ARCHIVE)  # what keep does: a delete marker
    with pytest.raises(S3Error):
        backup_key.stat_object(BUCKET, ARCHIVE)
    kept = locked.stat_object(BUCKET, ARCHIVE, version_id=version)
    assert kept.metadata["X-Amz-Object-Lock-Mode"] == GOVERNANCE
    retain_until = datetime.fromisoformat(kept.metadata["X-Amz-Object-Lock-Retain-Until-Date"].replace("Z", "+00:00"))
    assert retain_until > datetime.now(timezone.utc) + timedelta(days=29)
    assert hashlib.sha256(backup_key.get_object(BUCKET, ARCHIVE, version_id=version).read()).digest() == (
        hashlib.sha256(data).digest()
    )


def test_backup_restore_finds_and_downloads_the_version_behind_the_delete_marker(
    locked, backup_key, archive, tmp_path: Path
) -> None:
    """What restore.yml -e restore_archive=... -e restore_version_id=... runs,
    with the host's own key, up to the import (that needs SQL Server)."""
    version, data = archive
    storage = s3.S3Storage(
        endpoint=f"http://127.0.0.1:{PORT}",
        bucket=BUCKET,
        path=f"{PREFIX}/sales",
        region="us-east-1",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        timeout=30,
    )
    name = ARCHIVE.rsplit("/", 1)[1]
    assert name not in [stored.name for stored in storage.objects()], "keep's delete hides it from the plain listing"
    versions = storage.versions()
    assert (name, version, "deleted") in versions, versions
    storage.download(name, tmp_path / name, version)
    assert (tmp_path / name).read_bytes() == data
    packages = archives.unpack(tmp_path / name, tmp_path / "unpacked", "sales")
    assert [package.name for package in packages] == ["SalesDemo.bacpac"]


@standins_only
def test_gobackup_uploads_and_keep_leaves_delete_markers(locked, standin_bin: Path, tmp_path: Path) -> None:
    """The stand-in, as upstream v3.1.1 was observed doing on a locked bucket:
    single and multipart uploads succeed without Content-MD5, and keep's
    delete leaves a delete marker over a retained version."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "sqlpackage").write_text(
        '#!/bin/sh\nfor a in "$@"; do case "$a" in /TargetFile:*)'
        ' head -c "$BACPAC_BYTES" /dev/urandom > "${a#/TargetFile:}";; esac; done\n'
    )
    (fake / "sqlpackage").chmod(0o755)
    config = tmp_path / "gobackup.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "workdir": str(tmp_path / "work"),
                "web": {"enabled": False},
                "models": {
                    "sales": {
                        "compress_with": {"type": "tar", "filename_format": "2006.01.02.15.04.05.000"},
                        "databases": {"salesdemo": {"type": "mssql", "database": "SalesDemo", "password": "x"}},
                        "storages": {
                            "minio": {
                                "type": "minio",
                                "bucket": BUCKET,
                                "endpoint": f"http://127.0.0.1:{PORT}",
                                "path": f"{PREFIX}/gobackup",
                                "access_key_id": ACCESS_KEY,
                                "secret_access_key": SECRET_KEY,
                                "keep": 1,
                            }
                        },
                    }
                },
            }
        )
    )
    (tmp_path / "home").mkdir()
    # The first archive is larger than one 64 MiB part: a multipart upload.
    for size in (70_000_000, 1000):
        run = subprocess.run(
            [str(standin_bin / "gobackup"), "perform", "-c", str(config), "-m", "sales"],
            env={"PATH": f"{fake}:/usr/bin:/bin", "HOME": str(tmp_path / "home"), "BACPAC_BYTES": str(size)},
            capture_output=True,
            text=True,
            check=False,
        )
        assert run.returncode == 0, run.stdout[-3000:]
    assert "[Cycler] Removed " in run.stdout
    entries = [
        entry
        for entry in locked.list_objects(BUCKET, prefix=f"{PREFIX}/gobackup/", recursive=True, include_version=True)
        if entry.object_name.endswith(".tar")
    ]
    markers = [entry for entry in entries if entry.is_delete_marker]
    versions = [entry for entry in entries if not entry.is_delete_marker]
    assert len(versions) == 2, entries
    assert len(markers) == 1, entries
    pruned = next(entry for entry in versions if entry.object_name == markers[0].object_name)
    assert pruned.size > 64 * 2**20
    assert (
        locked.stat_object(BUCKET, pruned.object_name, version_id=pruned.version_id).metadata["X-Amz-Object-Lock-Mode"]
        == GOVERNANCE
    )


def test_changing_mode_and_days_updates_the_default_retention(locked: Minio, tmp_path: Path) -> None:
    result = setup(tmp_path, minio_setup_object_lock_mode="COMPLIANCE", minio_setup_object_lock_days=2)
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"set the default retention of {BUCKET} to COMPLIANCE 2 days" in result.stdout
    assert locked.get_object_lock_config(BUCKET) == ObjectLockConfig(COMPLIANCE, 2, DAYS)


def test_an_existing_bucket_without_lock_fails_clearly(minio: Minio, tmp_path: Path) -> None:
    minio.make_bucket("plain-backups")
    for arguments in (["--check"], []):
        result = setup(tmp_path, *arguments, bucket="plain-backups")
        assert result.returncode != 0
        assert "bucket plain-backups exists without object lock" in result.stdout, result.stdout[-3000:]
        assert "minio_setup_object_lock" in result.stdout
        assert "new bucket" in result.stdout
    assert minio.get_bucket_versioning("plain-backups").status != "Enabled", "nothing was half done"


def test_no_secret_reached_the_output() -> None:
    assert OUTPUTS
    for output in OUTPUTS:
        assert SECRET_KEY not in output
        assert ROOT_PASSWORD not in output
