"""End to end: the development stack deployed by playbooks/deploy.yml (SQL
Server stand-in, MinIO built from source, the backup container), backups taken
by backup_now.yml and by the scheduler, restores by restore.yml, and every
failure path with its observable result.

One stack serves the module; each test asks fixtures for what it needs (the
stack as E2E_VARS deploy it or on the one-minute schedule, an archive of each
model, a restored copy, an encrypting stack), and they make it only when an
earlier test has not left it already: any test passes alone, in any order."""

from __future__ import annotations

import datetime
import io
import ipaddress
import json
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from minio import Minio
from minio.error import S3Error
from minio.versioningconfig import ENABLED, SUSPENDED, VersioningConfig
from sqlserver_backup_testing import (
    REPO,
    ansible_playbook,
    dev_playbook,
    dev_stack_vars,
    scratch_stack,
    stack_names,
    wait_until,
)

IMAGE = "sqlserver-backup:1.0.0"
SQLCMD = ["/opt/mssql-tools18/bin/sqlcmd", "-S", "localhost", "-U", "sa", "-C", "-b", "-h", "-1", "-W", "-s", "|"]
MINIO_PORT = 29000
SA_PASSWORD = "#&*!%@[{Sa0123x"
RESTORE_PASSWORD = "Restore-Only-Passw0rd"
PASSPHRASE, WRONG_PASSPHRASE = "Vaulted encryption passphrase #1", "Not-the-passphrase-2"
BUCKET = "sqlserver-backups"
BACKUP_ACCESS_KEY = "sqlserver-backup"  # the dev inventory's backup_config_minio_access_key
E2E_VARS = {
    **dev_stack_vars("e2e", mssql_port=21433, minio_port=MINIO_PORT),
    # Starts with '#' and holds characters YAML would take apart unquoted: it
    # must reach sqlpackage unchanged through .env and gobackup.yml.
    "dev_mssql_sa_password": SA_PASSWORD,
    "dev_mssql_restore_sa_password": RESTORE_PASSWORD,
    # Drills run when the tests start them (test_restore_proof has scheduled ones).
    "backup_config_drill_schedule": "",
    # The dev inventory's models on a schedule that does not come round while
    # the suite runs: only the tests start runs (the scheduler's own tests
    # deploy a schedule of theirs).
    "backup_config_databases": [
        {
            "name": name,
            "database": database,
            "host": "mssql",
            "password": "{{ dev_mssql_sa_password }}",
            "trust_server_certificate": True,
            "schedule": "0 3 1 1 *",
        }
        for name, database in (("sales", "SalesDemo"), ("inventory", "InventoryDemo"))
    ],
}
PROJECT = E2E_VARS["backup_stack_project"]
# Its containers and network; restores and drills import into NAMES.restore_server
# (the dev stack's scratch SQL Server), never into NAMES.mssql.
NAMES = stack_names(E2E_VARS)
SECRETS = Path(str(E2E_VARS["dev_secrets_dir"]))
PREFIX = f"{E2E_VARS['backup_config_minio_path_prefix']}/localhost"
MODELS = [model["name"] for model in E2E_VARS["backup_config_databases"]]
# Each playbook run with what Ansible printed, checked for secrets at the end.
OUTPUTS: list[tuple[str, str]] = []


def playbook(name: str, *arguments: str | dict, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = dev_playbook(name, E2E_VARS, *arguments, verbose=True)
    OUTPUTS.append((name, result.stdout + result.stderr))
    if check:
        assert result.returncode == 0, result.stdout[-4000:]
    return result


def secret(name: str) -> str:
    return (SECRETS / name).read_text().split()[0]


def secrets() -> list[str]:
    return [path.read_text().split()[0] for path in SECRETS.iterdir()] + [
        SA_PASSWORD,
        RESTORE_PASSWORD,
        PASSPHRASE,
        WRONG_PASSPHRASE,
    ]


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    return docker.from_env()


class Deployment:
    """The module's stack and the extra vars (over E2E_VARS) it was last
    deployed with: a test asks for the vars it needs, and deploy.yml runs only
    when they differ from what the test before left."""

    def __init__(self, first: subprocess.CompletedProcess[str]) -> None:
        self.first = first  # the deploy that created the stack
        self.overrides: dict | None = {}  # None: unknown, the next use deploys

    def deploy(self, overrides: dict | None = None) -> subprocess.CompletedProcess[str]:
        """deploy.yml with these extra vars, whatever the stack was deployed with."""
        self.overrides = None
        result = playbook("deploy.yml", *([overrides] if overrides else []))
        self.overrides = overrides or {}
        return result

    def use(self, overrides: dict | None = None) -> None:
        """The stack deployed with these extra vars (E2E_VARS alone without)."""
        if (overrides or {}) != self.overrides:
            self.deploy(overrides)


@pytest.fixture(scope="module")
def deployment(client: docker.DockerClient) -> Iterator[Deployment]:
    """The stack, deployed once for the module, as any test before left it."""
    with scratch_stack(E2E_VARS):
        yield Deployment(playbook("deploy.yml"))


@pytest.fixture
def stack(deployment: Deployment, client: docker.DockerClient) -> docker.DockerClient:
    """The stack as E2E_VARS deploy it: deployed again when a test before
    left it with other vars."""
    deployment.use()
    return client


@pytest.fixture(scope="module")
def bucket(deployment: Deployment) -> Minio:
    return Minio(f"127.0.0.1:{MINIO_PORT}", "minio-admin", secret("minio_root_password"), secure=False)


def archives(bucket: Minio, model: str) -> list[str]:
    names = [obj.object_name for obj in bucket.list_objects(BUCKET, prefix=f"{PREFIX}/{model}/")]
    return sorted(name.rsplit("/", 1)[1] for name in names if name.endswith(".tar"))


@pytest.fixture
def archive(stack, bucket: Minio) -> dict[str, str]:
    """The newest plain archive of each model, made by backup_now.yml for the
    models that have none."""
    missing = [model for model in MODELS if not archives(bucket, model)]
    if missing:
        playbook("backup_now.yml", "-e", f"backup_now_models={','.join(missing)}")
    return {model: archives(bucket, model)[-1] for model in MODELS}


def sql(client: docker.DockerClient, query: str, database: str = "master", server: str = NAMES.mssql) -> list[str]:
    result = client.containers.get(server).exec_run(
        # Rows only, as the real sqlcmd prints them with these options.
        [*SQLCMD, "-d", database, "-Q", f"SET NOCOUNT ON; {query}"],
        environment={"SQLCMDPASSWORD": RESTORE_PASSWORD if server == NAMES.restore_server else SA_PASSWORD},
    )
    assert result.exit_code == 0, result.output.decode()
    return result.output.decode().splitlines()


def once_environment(**overrides: str) -> dict[str, str]:
    """The backup image in once mode, configured by environment."""
    return {
        "RUN_MODE": "once",
        "MSSQL_HOST": "mssql",
        "MSSQL_DATABASE": "SalesDemo",
        "MSSQL_PASSWORD": SA_PASSWORD,
        "MSSQL_TRUST_SERVER_CERTIFICATE": "true",
        "MINIO_ENDPOINT": "http://minio:9000",
        "MINIO_BUCKET": BUCKET,
        "MINIO_ACCESS_KEY": BACKUP_ACCESS_KEY,
        "MINIO_SECRET_KEY": secret("minio_backup_secret_key"),
        "MINIO_PATH": f"{PREFIX}/once",
        "BACKUP_MODEL": "failcase",
        **overrides,
    }


def start_once(client: docker.DockerClient, workdir: Path, volumes: dict | None = None, **overrides: str):
    """Starts the backup image in once mode on the stack's network, with the
    work directory on the host."""
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o777)
    return client.containers.run(
        IMAGE,
        detach=True,
        environment=once_environment(**overrides),
        network=NAMES.network,
        volumes={str(workdir): {"bind": "/tmp/gobackup", "mode": "rw"}, **(volumes or {})},
    )


def run_once(client: docker.DockerClient, workdir: Path, volumes: dict | None = None, **overrides: str):
    container = start_once(client, workdir, volumes, **overrides)
    try:
        status = container.wait(timeout=120)["StatusCode"]
        return status, container.logs().decode()
    finally:
        container.remove(force=True)


def running_jobs(workdir: Path) -> list[Path]:
    """GoBackup's TempPath of each running job: <workdir>/<unix-nanos>/<model>."""
    return [path for path in workdir.glob("*/*") if path.parent.name.isdigit()]


def test_the_deploy_created_the_sample_databases_once(stack, deployment: Deployment) -> None:
    first = deployment.first.stdout
    assert "created database SalesDemo" in first
    assert "created database InventoryDemo" in first
    again = deployment.deploy()
    assert "created database" not in again.stdout
    changed = re.findall(r"^TASK \[(.+?)\].*\n(?:(?!TASK \[).*\n)*?changed: ", again.stdout, re.M)
    assert re.search(r"changed=0\s", again.stdout), changed


def test_the_backup_container_is_hardened(stack, client) -> None:
    """Read-only root, a small tmpfs, no capabilities, no new privileges, the
    role's memory and pids limits, no port; the backups of the next tests run in it."""
    backup = client.containers.get(NAMES.backup)
    host = backup.attrs["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["Tmpfs"] == {"/tmp": "size=64m,mode=1777"}
    assert host["CapDrop"] == ["ALL"]
    assert not host["CapAdd"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["Memory"] == 4 * 1024**3
    assert host["PidsLimit"] == 1024
    assert not host["PortBindings"]
    assert not backup.attrs["Config"].get("ExposedPorts")
    assert not backup.attrs["NetworkSettings"]["Ports"]
    refused = backup.exec_run(["touch", "/usr/local/bin/intruder"])
    assert refused.exit_code != 0
    assert "Read-only file system" in refused.output.decode()
    for writable in ("/tmp", "/tmp/gobackup", "/var/lib/gobackup"):
        probe = backup.exec_run(["sh", "-c", f"touch {writable}/.probe && rm {writable}/.probe"])
        assert probe.exit_code == 0, (writable, probe.output.decode())
    assert backup.exec_run(["id", "-u"]).output.decode().strip() == "10001"


def test_backup_now_uploads_each_model_under_its_own_path(stack, bucket: Minio) -> None:
    before = {model: archives(bucket, model) for model in MODELS}
    result = playbook("backup_now.yml")
    assert "Backup on localhost succeeded." in result.stdout
    stamp = r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} "
    for model, database in (("sales", "SalesDemo"), ("inventory", "InventoryDemo")):
        # What GoBackup v3.1.1 logs: the start of each model and database, the
        # size it uploads and where the object went, each line time-stamped.
        assert re.search(stamp + rf"\[Model: {model}\] WorkDir: ", result.stdout)
        assert re.search(stamp + rf"\[Database\] => database \| mssql: {model}\b", result.stdout)
        assert re.search(
            stamp + rf"\[MSSQL\] Connecting to database '{database}' on server 'mssql,1433'", result.stdout
        )
        uploaded = re.search(
            stamp + rf"\[MinIO\] Uploaded: http://minio:9000/{BUCKET}/{PREFIX}/{model}/(\S+) \(Duration ", result.stdout
        )
        assert uploaded, result.stdout[-3000:]
        names = sorted(set(archives(bucket, model)) - set(before[model]))
        assert names == [uploaded.group(1)]
        assert re.fullmatch(r"\d{4}(\.\d{2}){5}\.tar", names[0])
        data = bucket.get_object(BUCKET, f"{PREFIX}/{model}/{names[0]}").read()
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            members = archive.getnames()
        # Viper lower-cases keys: the database key is the model name.
        assert f"{model}/mssql/{model}/{database}.bacpac" in members
    assert re.search(stamp + r"\[MinIO\] -> Uploading \(\d+(\.\d+)? [kMG]?B\)\.\.\.", result.stdout)


@pytest.fixture
def local_copy(stack, archive: dict[str, str], bucket: Minio) -> str:
    """The newest archive of sales with GoBackup's local copy of it beside, made
    by backup_now.yml when the copy is gone (local keep 1: any later run of
    sales, an encrypted or failed one too, replaced it)."""
    backup = stack.containers.get(NAMES.backup)
    if backup.exec_run(["test", "-f", f"/tmp/gobackup/local/sales/{archive['sales']}"]).exit_code != 0:
        playbook("backup_now.yml", "-e", "backup_now_models=sales")
    return archives(bucket, "sales")[-1]


def test_the_uploaded_object_is_the_whole_archive(stack, bucket: Minio, local_copy: str) -> None:
    backup = stack.containers.get(NAMES.backup)
    # The local storage holds a byte-for-byte copy of the archive GoBackup made.
    local = backup.exec_run(["stat", "-c", "%s", f"/tmp/gobackup/local/sales/{local_copy}"])
    assert local.exit_code == 0, local.output.decode()
    assert bucket.stat_object(BUCKET, f"{PREFIX}/sales/{local_copy}").size == int(local.output.decode())


def databases(client: docker.DockerClient, server: str = NAMES.mssql) -> list[str]:
    return sorted(sql(client, "SELECT name FROM sys.databases", server=server))


@pytest.fixture
def no_sales_copy(stack, archive: dict[str, str]) -> None:
    """An archive of sales, and no SalesCopy on the restore server for a restore
    to refuse (a replace's test leaves one)."""
    sql(stack, "IF DB_ID('SalesCopy') IS NOT NULL DROP DATABASE SalesCopy", server=NAMES.restore_server)


@pytest.fixture
def sales_copy(stack, archive: dict[str, str]) -> str:
    """SalesCopy restored on the restore server from the newest archive of sales
    (the restore's test leaves one), and no copy that an earlier replace set aside."""
    for name in databases(stack, NAMES.restore_server):
        if name.startswith("SalesCopy_replaced_"):
            sql(stack, f"DROP DATABASE [{name}]", server=NAMES.restore_server)
    if "SalesCopy" not in databases(stack, NAMES.restore_server):
        playbook("restore.yml", "-e", "restore_model=sales", "-e", "restore_target_database=SalesCopy")
    return "SalesCopy"


def test_restore_brings_back_the_same_data_on_the_restore_server(stack, client, no_sales_copy) -> None:
    """With the dev defaults a restore imports into the scratch server: the
    source server's list of databases is the same before and after."""
    source_before = databases(client)
    playbook("restore.yml", "-e", "restore_model=sales", "-e", "restore_target_database=SalesCopy")
    for query in ("SELECT * FROM dbo.Customers", "SELECT * FROM dbo.Orders"):
        assert sql(client, query, "SalesCopy", NAMES.restore_server) == sql(client, query, "SalesDemo")
    assert databases(client) == source_before


def test_a_replace_swaps_and_keeps_the_old_database_aside(stack, client, sales_copy: str) -> None:
    copy = ("-e", "restore_model=sales", "-e", "restore_target_database=SalesCopy")
    refused = playbook("restore.yml", *copy, check=False)
    assert refused.returncode != 0
    assert "database SalesCopy already exists" in refused.stdout
    assert "downloading" not in refused.stdout, "refused before anything was downloaded"
    sql(client, "INSERT INTO dbo.Customers VALUES (99, 'Changed', 'Nowhere')", "SalesCopy", NAMES.restore_server)
    replaced = playbook("restore.yml", *copy, "-e", "restore_replace=true")
    aside = re.search(r"replaced=(SalesCopy_replaced_\d{14})", replaced.stdout)
    assert aside, replaced.stdout[-3000:]
    assert sql(client, "SELECT COUNT(*) FROM dbo.Customers", "SalesCopy", NAMES.restore_server) == ["5"]
    assert sql(client, "SELECT COUNT(*) FROM dbo.Customers", aside.group(1), NAMES.restore_server) == ["6"]
    assert not [name for name in databases(client, NAMES.restore_server) if "_restoring_" in name]
    playbook("restore.yml", *copy, "-e", "restore_replace=true", "-e", "restore_drop_replaced=true")
    assert [name for name in databases(client, NAMES.restore_server) if name.startswith("SalesCopy_replaced_")] == [
        aside.group(1)
    ], "the drop takes only the copy this replace set aside"


def test_drill_reports_each_database_and_leaves_nothing_behind(stack, client, archive) -> None:
    source_before = databases(client)
    result = playbook("restore.yml", "-e", "restore_drill=true")
    assert "DRILL PASS model=sales" in result.stdout
    assert "DRILL PASS model=inventory" in result.stdout
    assert "DBCC CHECKDB" in result.stdout
    assert not [name for name in databases(client, NAMES.restore_server) if "_drill_" in name]
    assert databases(client) == source_before


def test_restore_yml_restores_a_version_overwritten_and_deleted_by_the_backup_key(stack, client, bucket) -> None:
    """restore_version_id end to end: the archive a stolen backup key (or keep)
    overwrote and then deleted comes back into SQL Server from its version.
    The lock itself is tested in test_immutability.py; versioning, which
    object lock implies, is enough to keep the version here."""
    bucket.set_bucket_versioning(BUCKET, VersioningConfig(ENABLED))
    try:
        before = archives(bucket, "sales")
        playbook("backup_now.yml", "-e", "backup_now_models=sales")
        [name] = sorted(set(archives(bucket, "sales")) - set(before))
        key = f"{PREFIX}/sales/{name}"
        version = bucket.stat_object(BUCKET, key).version_id
        host_key = Minio(f"127.0.0.1:{MINIO_PORT}", BACKUP_ACCESS_KEY, secret("minio_backup_secret_key"), secure=False)
        host_key.put_object(BUCKET, key, io.BytesIO(b"not an archive"), 14)
        host_key.remove_object(BUCKET, key)
        assert name not in archives(bucket, "sales")

        listed = client.containers.get(NAMES.backup).exec_run(["backup-restore", "--model", "sales", "--list-versions"])
        assert listed.exit_code == 0, listed.output.decode()
        assert re.search(rf"^{re.escape(name)} version={version} \w+$", listed.output.decode(), re.M), listed.output
        copy = ("-e", "restore_model=sales", "-e", f"restore_archive={name}")
        copy += ("-e", "restore_target_database=SalesFromVersion")
        result = playbook("restore.yml", *copy, "-e", f"restore_version_id={version}")
        assert f"RESTORED model=sales archive={name} database=SalesDemo target=SalesFromVersion" in result.stdout
        for query in ("SELECT * FROM dbo.Customers", "SELECT * FROM dbo.Orders"):
            assert sql(client, query, "SalesFromVersion", NAMES.restore_server) == sql(client, query, "SalesDemo")
        unknown = playbook("restore.yml", *copy, "-e", "restore_version_id=0", check=False)
        assert unknown.returncode != 0
        assert f"version 0 of {name} is not in {BUCKET}/{PREFIX}/sales" in unknown.stdout
    finally:
        # Back to what an unversioned bucket would hold: a deleted key has no
        # version left, a present one only its latest.
        versions = list(bucket.list_objects(BUCKET, prefix=f"{PREFIX}/", recursive=True, include_version=True))
        present = {obj.object_name: not obj.is_delete_marker for obj in versions if obj.is_latest == "true"}
        for obj in versions:
            if not present[obj.object_name] or obj.is_latest != "true":
                bucket.remove_object(BUCKET, obj.object_name, version_id=obj.version_id)
        bucket.set_bucket_versioning(BUCKET, VersioningConfig(SUSPENDED))
        sql(
            client,
            "IF DB_ID('SalesFromVersion') IS NOT NULL DROP DATABASE SalesFromVersion",
            server=NAMES.restore_server,
        )


def test_verify_passes_every_kept_archive(stack, archive) -> None:
    result = playbook("restore.yml", "-e", "restore_verify=true", "-e", "restore_verify_all=true")
    for model in ("sales", "inventory"):
        assert re.search(rf"OK model={model} key={PREFIX}/{model}/\S+\.tar size=\d+ tables=[1-9]", result.stdout)
        assert re.search(rf"VERIFY PASS models={model} archives=[1-9]", result.stdout)
    assert "CORRUPT" not in result.stdout


def test_verify_names_a_flipped_byte_and_a_truncated_archive(stack, bucket: Minio, archive) -> None:
    latest = archive["sales"]
    data = bucket.get_object(BUCKET, f"{PREFIX}/sales/{latest}").read()
    # One byte flipped in the middle of model.xml's compressed data, inside the package inside the tar.
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        member = next(member for member in archive.getmembers() if member.name.endswith(".bacpac"))
    package = data[member.offset_data : member.offset_data + member.size]
    with zipfile.ZipFile(io.BytesIO(package)) as bacpac:
        entry = bacpac.getinfo("model.xml")
    name_length, extra_length = struct.unpack("<HH", package[entry.header_offset + 26 : entry.header_offset + 30])
    offset = member.offset_data + entry.header_offset + 30 + name_length + extra_length + entry.compress_size // 2
    flipped = bytearray(data)
    flipped[offset] ^= 0xFF
    # Cut in the middle of the package (the tar's zero padding after it is no loss).
    truncated = data[: member.offset_data + member.size // 2]
    # Named older than any real archive: the latest stays the good one.
    damaged = {"2000.01.01.00.00.01.tar": bytes(flipped), "2000.01.01.00.00.02.tar": truncated}
    for name, body in damaged.items():
        bucket.put_object(BUCKET, f"{PREFIX}/sales/{name}", io.BytesIO(body), len(body))
    try:
        latest_only = playbook("restore.yml", "-e", "restore_verify=true", "-e", "restore_model=sales")
        assert f"OK model=sales key={PREFIX}/sales/{latest}" in latest_only.stdout
        every = playbook("restore.yml", "-e", "restore_verify=true", "-e", "restore_verify_all=true", check=False)
    finally:
        for name in damaged:
            bucket.remove_object(BUCKET, f"{PREFIX}/sales/{name}")
    assert every.returncode != 0
    assert re.search(
        rf"CORRUPT model=sales key={PREFIX}/sales/2000\.01\.01\.00\.00\.01\.tar reason=\S+\.bacpac: model\.xml: ",
        every.stdout,
    ), every.stdout[-4000:]
    assert re.search(
        rf"CORRUPT model=sales key={PREFIX}/sales/2000\.01\.01\.00\.00\.02\.tar reason=cannot unpack .*Unexpected EOF",
        every.stdout,
    ), every.stdout[-4000:]
    assert f"OK model=sales key={PREFIX}/sales/{latest}" in every.stdout
    assert re.search(r"VERIFY FAIL models=sales failed=2 archives=\d+", every.stdout)
    assert re.search(r"VERIFY PASS models=inventory", every.stdout), "the other model is still checked"


def encrypted_objects(bucket: Minio, model: str) -> list[str]:
    return sorted(
        obj.object_name
        for obj in bucket.list_objects(BUCKET, prefix=f"{PREFIX}/{model}/")
        if obj.object_name.endswith(".tar.enc")
    )


@pytest.fixture
def encrypting(deployment: Deployment, bucket: Minio) -> Iterator[Deployment]:
    """The stack deployed with PASSPHRASE; on leaving, deployed without again
    and with none of the encrypted archives left (without a passphrase, a
    verify or a drill of them fails)."""
    deployment.deploy({"backup_config_encryption_passphrase": PASSPHRASE})
    try:
        yield deployment
    finally:
        deployment.use()
        for model in MODELS:
            for name in encrypted_objects(bucket, model):
                bucket.remove_object(BUCKET, name)


def test_encrypted_archives_are_unreadable_in_minio_and_drill_with_their_passphrase(
    encrypting: Deployment, bucket: Minio
) -> None:
    # Each step names the archive it means: a run of another model or test
    # must not be taken for this one's.
    playbook("backup_now.yml")
    encrypted = {}
    for model in ("sales", "inventory"):
        names = encrypted_objects(bucket, model)
        assert names, f"no encrypted archive of {model}"
        encrypted[model] = names[-1]
        data = bucket.get_object(BUCKET, names[-1]).read()
        # openssl's salted format; no tar header anywhere a reader could use.
        assert data.startswith(b"Salted__")
        with pytest.raises(tarfile.ReadError):
            tarfile.open(fileobj=io.BytesIO(data)).close()
        assert b"bacpac" not in data
        assert PASSPHRASE.encode() not in data
    # One drill of every model: each takes its latest archive, the one just made.
    drill = playbook("restore.yml", "-e", "restore_drill=true")
    for model in ("sales", "inventory"):
        name = encrypted[model].rsplit("/", 1)[1]
        assert re.search(rf"DRILL PASS model={model} archive={re.escape(name)} ", drill.stdout), drill.stdout[-3000:]
    verify = playbook("restore.yml", "-e", "restore_verify=true", "-e", "restore_verify_all=true")
    assert f"OK model=sales key={encrypted['sales']}" in verify.stdout

    sales_archive = ("-e", "restore_model=sales", "-e", f"restore_archive={encrypted['sales'].rsplit('/', 1)[1]}")
    # A rotation: the archives made before it still drill with the previous passphrase.
    encrypting.deploy(
        {
            "backup_config_encryption_passphrase": WRONG_PASSPHRASE,
            "backup_config_encryption_previous_passphrases": [PASSPHRASE],
        }
    )
    after_rotation = playbook("restore.yml", "-e", "restore_drill=true", *sales_archive)
    assert "opened with the previous passphrase in ENCRYPTION_PASSPHRASE_SALES_PREVIOUS_1" in after_rotation.stdout
    encrypting.deploy({"backup_config_encryption_passphrase": WRONG_PASSPHRASE})
    wrong = playbook("restore.yml", "-e", "restore_drill=true", *sales_archive, check=False)
    assert wrong.returncode != 0
    assert re.search(
        r"DRILL FAIL model=sales database=SalesDemo reason=no known passphrase opens \S+\.tar\.enc of model"
        r" sales \(tried ENCRYPTION_PASSPHRASE_SALES\)",
        wrong.stdout,
    ), wrong.stdout[-3000:]
    wrong_key = playbook("restore.yml", "-e", "restore_verify=true", "-e", "restore_model=sales", check=False)
    assert f"WRONG-KEY model=sales key={encrypted['sales']}" in wrong_key.stdout, wrong_key.stdout[-3000:]
    assert "CORRUPT" not in wrong_key.stdout

    encrypting.use()  # no passphrase at all
    missing = playbook("restore.yml", "-e", "restore_drill=true", *sales_archive, check=False)
    assert missing.returncode != 0
    assert re.search(
        r"DRILL FAIL model=sales database=SalesDemo reason=\S+\.tar\.enc of model sales is encrypted, but no"
        r" passphrase for it is set \(backup_config_encryption_passphrase",
        missing.stdout,
    ), missing.stdout[-3000:]


def test_the_deploy_refuses_a_restore_server_that_is_a_source_server(stack, client) -> None:
    """No silent fallback to production: the deploy names the variable to set,
    and changes nothing."""
    config_before = client.containers.get(NAMES.backup).exec_run(["cat", "/etc/gobackup/restore.yml"]).output
    refused = playbook("deploy.yml", "-e", json.dumps({"backup_config_restore_host": "mssql"}), check=False)
    assert refused.returncode != 0
    assert "the restore server mssql,1433 is a server this host backs up" in refused.stdout
    assert "backup_config_restore_host" in refused.stdout
    assert client.containers.get(NAMES.backup).exec_run(["cat", "/etc/gobackup/restore.yml"]).output == config_before


@pytest.mark.parametrize(("kind", "extension"), [("tgz", ".tar.gz"), ("zst", ".tar.zst"), ("xz", ".tar.xz")])
def test_every_offered_compression_backs_up_and_restores(
    deployment: Deployment, bucket: Minio, kind: str, extension: str
) -> None:
    # From whatever the test before left: the next test that needs plain tar
    # deploys it again (the stack fixture).
    deployment.deploy({"backup_config_compress": kind})
    playbook("backup_now.yml", "-e", "backup_now_models=inventory")
    names = [o.object_name for o in bucket.list_objects(BUCKET, prefix=f"{PREFIX}/inventory/")]
    assert [name for name in names if name.endswith(extension)], names
    drill = playbook("restore.yml", "-e", "restore_model=inventory", "-e", "restore_drill=true")
    assert re.search(rf"DRILL PASS model=inventory archive=\S+{re.escape(extension)} ", drill.stdout), drill.stdout


def test_once_mode_exits_0_with_the_archive_in_minio(stack, client, bucket, tmp_path) -> None:
    status, log = run_once(client, tmp_path / "work", BACKUP_MODEL="oncecase")
    assert status == 0, log
    assert archives(bucket, "once/oncecase"), log
    rendered = playbook("deploy.yml", "--check", "--diff", "-e", "backup_stack_run_mode=once")
    assert '+    restart: "no"' in rendered.stdout, "a one-shot container is not restarted"


def test_a_stop_waits_for_the_running_export_and_loses_nothing(stack, client, bucket) -> None:
    backup, mssql = client.containers.get(NAMES.backup), client.containers.get(NAMES.mssql)
    before = archives(bucket, "inventory")
    since = int(time.time())
    # A paused SQL Server keeps the export running for as long as the test wants.
    mssql.pause()
    try:
        perform = client.api.exec_create(
            NAMES.backup, ["gobackup", "perform", "-c", "/etc/gobackup/gobackup.yml", "-m", "inventory"]
        )
        client.api.exec_start(perform, detach=True)
        wait_until(
            lambda: "inventory" in backup.exec_run(["sh", "-c", "ls /tmp/gobackup/[0-9]*/"]).output.decode(),
            "the export started",
            interval=0.5,
        )
        stopper = threading.Thread(target=backup.stop, kwargs={"timeout": 600})
        stopper.start()
        wait_until(
            lambda: "waiting for model inventory" in backup.logs(since=since).decode(), "the stop waits", interval=0.5
        )
        time.sleep(2)
        backup.reload()
        assert backup.status == "running", "the stop did not cut the export off"
    finally:
        mssql.unpause()
    stopper.join(timeout=300)
    backup.reload()
    assert backup.status == "exited"
    assert backup.attrs["State"]["ExitCode"] == 0, backup.logs(since=since).decode()[-2000:]
    # Compared by name: keep may prune an older one meanwhile.
    assert len(set(archives(bucket, "inventory")) - set(before)) == 1, "the export finished and was uploaded"
    backup.start()
    wait_until(
        lambda: client.containers.get(NAMES.backup).attrs["State"]["Health"]["Status"] == "healthy",
        "healthy",
        120,
        interval=0.5,
    )


def test_an_idle_stop_exits_0(stack, client) -> None:
    backup = client.containers.get(NAMES.backup)
    backup.stop(timeout=60)
    backup.reload()
    assert backup.attrs["State"]["ExitCode"] == 0
    backup.start()
    wait_until(
        lambda: client.containers.get(NAMES.backup).attrs["State"]["Health"]["Status"] == "healthy",
        "healthy",
        120,
        interval=0.5,
    )


def test_a_grace_that_runs_out_names_the_model_and_the_next_start_cleans_up(stack, client, tmp_path) -> None:
    workdir = tmp_path / "work"
    mssql = client.containers.get(NAMES.mssql)
    mssql.pause()
    try:
        container = start_once(
            client, workdir, STOP_GRACE_PERIOD="3", SKIP_HEALTH_CHECK="true", BACKUP_MODEL="gracecase"
        )
        try:
            wait_until(lambda: running_jobs(workdir), "the export started", interval=0.5)
            container.stop(timeout=60)
            log = container.logs().decode()
            assert container.wait(timeout=10)["StatusCode"] != 0
        finally:
            container.remove(force=True)
    finally:
        mssql.unpause()
    assert "cutting off model gracecase" in log, log
    left = running_jobs(workdir)
    assert left, "the killed run left its temp folder"
    status, log = run_once(client, workdir, BACKUP_MODEL="gracecase")
    assert status == 0, log
    assert left[0].parent.name in log, "the start names the leftover it removed"
    assert not left[0].parent.exists()


def test_each_hosts_key_reaches_only_its_own_prefix(stack, tmp_path) -> None:
    hosts = ("alpha", "beta")
    keys = {host: (f"{host}-backup", f"{host}-Secret-Key-0123") for host in hosts}
    inventory = {
        "backup_hosts": {
            "hosts": {
                host: {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": sys.executable,
                    "backup_config_minio_access_key": keys[host][0],
                    "backup_config_minio_secret_key": keys[host][1],
                }
                for host in hosts
            },
            "vars": {
                "backup_config_minio_endpoint": f"http://127.0.0.1:{MINIO_PORT}",
                # A bucket that does not exist yet: both hosts race to create it.
                "backup_config_minio_bucket": "isolation-test",
                "backup_config_minio_path_prefix": "fleet",
                "backup_config_databases": [{"name": "db", "database": "Db", "host": "sql", "password": "Pw-0123x"}],
                "backup_config_restore_host": "sql-restore",
                "vault_minio_root_user": "minio-admin",
                "vault_minio_root_password": secret("minio_root_password"),
            },
        }
    }
    (tmp_path / "hosts.yml").write_text(json.dumps(inventory))
    result = ansible_playbook("-i", str(tmp_path / "hosts.yml"), str(REPO / "playbooks" / "minio_setup.yml"))
    assert result.returncode == 0, result.stdout[-3000:]

    def client_of(host: str) -> Minio:
        return Minio(f"127.0.0.1:{MINIO_PORT}", *keys[host], secure=False)

    alpha, beta = client_of("alpha"), client_of("beta")
    beta.put_object("isolation-test", "fleet/beta/db/archive.tar", io.BytesIO(b"beta"), 4)
    alpha.put_object("isolation-test", "fleet/alpha/db/archive.tar", io.BytesIO(b"alpha"), 5)
    assert [o.object_name for o in alpha.list_objects("isolation-test", "fleet/alpha/", recursive=True)]
    attempts = {
        "list": lambda: list(alpha.list_objects("isolation-test", "fleet/beta/", recursive=True)),
        "read": lambda: alpha.get_object("isolation-test", "fleet/beta/db/archive.tar").read(),
        "write": lambda: alpha.put_object("isolation-test", "fleet/beta/db/evil.tar", io.BytesIO(b"x"), 1),
        "delete": lambda: alpha.remove_object("isolation-test", "fleet/beta/db/archive.tar"),
    }
    for what, attempt in attempts.items():
        with pytest.raises(S3Error) as denied:
            attempt()
        assert denied.value.code == "AccessDenied", what
    assert beta.get_object("isolation-test", "fleet/beta/db/archive.tar").read() == b"beta"


def test_minio_over_https_with_an_internal_ca(stack, client, tmp_path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    make_tls_files(certs, "minio-tls")
    for path in certs.iterdir():
        path.chmod(0o644)
    root_password = secret("minio_root_password")
    minio_tls = client.containers.run(
        "sqlserver-backup/minio:2026-02-12",
        ["server", "/data", "--address", ":9000", "--certs-dir", "/certs"],
        detach=True,
        environment={"MINIO_ROOT_USER": "minio-admin", "MINIO_ROOT_PASSWORD": root_password},
        volumes={str(certs): {"bind": "/certs", "mode": "ro"}},
        network=NAMES.network,
        name=f"{PROJECT}-minio-tls",
        hostname="minio-tls",
        ports={"9000/tcp": ("127.0.0.1", None)},
    )
    try:
        minio_tls.reload()
        port = minio_tls.attrs["NetworkSettings"]["Ports"]["9000/tcp"][0]["HostPort"]
        admin = Minio(
            f"127.0.0.1:{port}",
            "minio-admin",
            root_password,
            secure=True,
            http_client=urllib3.PoolManager(ca_certs=str(certs / "ca.pem")),
        )

        def ready() -> bool:
            try:
                return admin.bucket_exists("tls-backups") or (admin.make_bucket("tls-backups") is None)
            except (urllib3.exceptions.HTTPError, S3Error, OSError):
                return False

        wait_until(ready, "MinIO over HTTPS answers", interval=0.5)
        trusted = {
            "MINIO_ENDPOINT": "https://minio-tls:9000",
            "MINIO_BUCKET": "tls-backups",
            "MINIO_ACCESS_KEY": "minio-admin",
            "MINIO_SECRET_KEY": root_password,
        }
        status, log = run_once(client, tmp_path / "untrusted", **trusted)
        assert status != 0
        assert "certificate signed by unknown authority" in log
        ca_mount = {str(certs / "ca.pem"): {"bind": "/etc/sqlserver-backup/ca-certificates.pem", "mode": "ro"}}
        status, log = run_once(
            client,
            tmp_path / "trusted",
            ca_mount,
            EXTRA_CA_CERTS="/etc/sqlserver-backup/ca-certificates.pem",
            **trusted,
        )
        assert status == 0, log
        assert list(admin.list_objects("tls-backups", prefix=f"{PREFIX}/once/failcase/"))
    finally:
        minio_tls.remove(force=True)


def test_the_role_installs_extra_cas_for_the_backup_container(deployment: Deployment, client, tmp_path) -> None:
    make_tls_files(tmp_path, "minio-tls")
    ca = (tmp_path / "ca.pem").read_text()
    deployment.deploy({"backup_stack_ca_certificates": [str(tmp_path / "ca.pem")]})
    backup = client.containers.get(NAMES.backup)
    bundle = backup.exec_run(["sh", "-c", 'cat "$SSL_CERT_FILE"']).output.decode()
    assert ca.strip() in bundle, "the extra CA is trusted"
    assert bundle.count("BEGIN CERTIFICATE") > 1, "beside the image's own CAs"
    assert "trusting the CA certificates of EXTRA_CA_CERTS" in backup.logs().decode()


def make_tls_files(directory: Path, host: str) -> None:
    """A CA made for this test, and MinIO's certificate for host signed by it."""
    now = datetime.datetime.now(datetime.timezone.utc)

    def certificate(subject: str, key, issuer: str, issuer_key, ca: bool, names: list[x509.GeneralName]):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("sqlserver-backup test CA", ca_key, "sqlserver-backup test CA", ca_key, True, [])
    server_key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName(host), x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server = certificate(host, server_key, "sqlserver-backup test CA", ca_key, False, names)
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "public.crt").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (directory / "private.key").write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


FRESH_VARS = {
    **dev_stack_vars("fresh", mssql_port=21434, minio_port=29001),
    # An image tag no deploy built: check mode must not build it.
    "backup_image_tag": "fresh-check",
    "backup_stack_image": "sqlserver-backup:fresh-check",
}


@pytest.fixture
def fresh_host() -> Iterator[dict[str, object]]:
    """The vars of a stack never deployed on this machine, and none of its
    files before or after (the dev inventory's password lookups write the
    secrets even in check mode)."""
    root = Path(str(FRESH_VARS["backup_stack_dir"])).parent
    shutil.rmtree(root, ignore_errors=True)
    try:
        yield FRESH_VARS
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_check_mode_on_a_fresh_host_reports_what_would_change(deployment, fresh_host: dict[str, object]) -> None:
    result = playbook("deploy.yml", "--check", fresh_host)
    assert re.search(r"changed=[1-9]\d*\s.*failed=0", result.stdout), result.stdout[-3000:]
    assert not Path(str(fresh_host["backup_stack_dir"])).exists(), "check mode wrote nothing"
    assert client_images(str(fresh_host["backup_stack_image"])) == []


def client_images(reference: str) -> list:
    return docker.from_env().images.list(name=reference)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"MSSQL_PASSWORD": "WrongPassw0rd"}, "Login failed for user 'sa'."),
        ({"MSSQL_DATABASE": "NoSuchDb"}, 'Cannot open database "NoSuchDb"'),
        ({"MSSQL_HOST": "nosuchhost", "SKIP_HEALTH_CHECK": "true"}, "Could not connect to database server"),
    ],
)
def test_sql_server_failures_fail_clearly_and_upload_nothing(stack, client, bucket, tmp_path, overrides, reason):
    status, log = run_once(client, tmp_path / "work", **overrides)
    assert status == 1
    assert reason in log
    assert "Uploaded:" not in log
    assert archives(bucket, "once/failcase") == []


def test_sql_server_going_away_mid_export_fails_clearly_and_uploads_nothing(stack, client, bucket) -> None:
    backup, mssql = client.containers.get(NAMES.backup), client.containers.get(NAMES.mssql)
    before = archives(bucket, "inventory")
    # Paused, SQL Server holds the export open; killed, it goes away under it.
    mssql.pause()
    results: list = []
    try:
        perform = threading.Thread(
            target=lambda: results.append(
                backup.exec_run(["gobackup", "perform", "-c", "/etc/gobackup/gobackup.yml", "-m", "inventory"])
            )
        )
        perform.start()
        wait_until(
            lambda: "inventory" in backup.exec_run(["sh", "-c", "ls /tmp/gobackup/[0-9]*/"]).output.decode(),
            "the export started",
            interval=0.5,
        )
        time.sleep(2)
    finally:
        mssql.kill()
    perform.join(timeout=600)
    status, output = results[0].exit_code, results[0].output.decode()
    mssql.start()
    try:
        assert status != 0, output[-3000:]
        # GoBackup's mssql error, with sqlpackage's reason after it.
        assert "-> Dump error: " in output, output[-3000:]
        assert "Uploaded:" not in output
        assert archives(bucket, "inventory") == before, "nothing uploaded"
    finally:
        wait_until(
            lambda: client.containers.get(NAMES.mssql).attrs["State"].get("Health", {}).get("Status") == "healthy",
            "SQL Server is back",
            120,
            interval=0.5,
        )


def test_unreachable_sql_server_stops_the_start(stack, client, tmp_path) -> None:
    status, log = run_once(client, tmp_path / "work", MSSQL_HOST="nosuchhost", CONNECT_TIMEOUT="2")
    assert status == 1
    assert re.search(r"cannot reach SQL Server \S+ of model failcase at nosuchhost:1433", log), log


@pytest.mark.parametrize(
    "overrides",
    [{"MINIO_SECRET_KEY": "NotTheRightSecret1"}, {"MINIO_BUCKET": "no-such-bucket"}],
)
def test_storage_failures_name_the_storage_and_keep_a_local_copy(stack, client, tmp_path, overrides) -> None:
    status, log = run_once(client, tmp_path / "work", **overrides)
    assert status == 1
    bucket_name = overrides.get("MINIO_BUCKET", BUCKET)
    assert f"model failcase uploads to minio: http://minio:9000 bucket {bucket_name}" in log
    assert "local: local /tmp/gobackup/local/failcase" in log
    assert list((tmp_path / "work" / "local" / "failcase").glob("*.tar")), "the archive survives on the work volume"


def test_minio_stopping_mid_upload_fails_the_run_but_not_the_daemon(stack, client, bucket) -> None:
    before = archives(bucket, "sales")
    backup, minio = client.containers.get(NAMES.backup), client.containers.get(NAMES.minio)
    perform = client.api.exec_create(
        NAMES.backup, ["gobackup", "perform", "-c", "/etc/gobackup/gobackup.yml", "-m", "sales"]
    )
    output: list[str] = []
    # A paused MinIO accepts the upload's connection and never answers: the
    # upload is under way when MinIO then dies (killed: a stop would let it
    # finish the request it holds).
    minio.pause()
    try:
        reader = threading.Thread(
            target=lambda: output.extend(
                chunk.decode(errors="replace") for chunk in client.api.exec_start(perform, stream=True)
            )
        )
        reader.start()
        wait_until(lambda: "[MinIO] -> Uploading" in "".join(output), "the upload started", 120, interval=0.5)
        time.sleep(2)
    finally:
        minio.kill()
    reader.join(timeout=600)
    log = "".join(output)
    assert client.api.exec_inspect(perform)["ExitCode"] != 0, log[-3000:]
    # GoBackup's error names the endpoint the upload went to.
    assert "minio:9000" in log.split("[MinIO] -> Uploading", 1)[1], log[-3000:]
    backup.reload()
    assert backup.status == "running", "the daemon keeps running"
    kept = backup.exec_run(["sh", "-c", "ls /tmp/gobackup/local/sales"]).output.decode().split()
    assert kept, "the failed run left its archive on the work volume"
    minio.start()
    wait_until(
        lambda: client.containers.get(NAMES.minio).attrs["State"].get("Health", {}).get("Status") == "healthy",
        "MinIO is back",
        60,
        interval=0.5,
    )
    assert archives(bucket, "sales") == before, "no object, whole or partial, at the archive's key"
    playbook("backup_now.yml", "-e", "backup_now_models=sales")
    assert len(set(archives(bucket, "sales")) - set(before)) == 1


def test_a_container_killed_mid_upload_leaves_no_object_and_the_next_run_cleans_up(stack, client, bucket, tmp_path):
    prefix = f"{PREFIX}/once/cutoff/"
    # An export of a size GoBackup uploads in several 64 MiB parts; the size
    # comes from the environment, so the next run can be quick.
    export = tmp_path / "sqlpackage"
    export.write_text(
        "#!/bin/sh\n"
        'for argument in "$@"; do case "$argument" in /TargetFile:*) target="${argument#/TargetFile:}";; esac; done\n'
        'head -c "${FAKE_EXPORT_SIZE}" /dev/urandom > "$target"\n'
    )
    export.chmod(0o755)
    volumes = {str(export): {"bind": "/usr/local/sqlpackage/sqlpackage", "mode": "ro"}}

    def uploads() -> list:
        # MinIO lists an upload only under its whole key, or with no prefix.
        return [up for up in bucket._list_multipart_uploads(BUCKET).uploads if up.object_name.startswith(prefix)]

    cut = start_once(client, tmp_path / "work", volumes, BACKUP_MODEL="cutoff", FAKE_EXPORT_SIZE="300M")
    try:
        # Killed once the first part is in MinIO and the rest is not.
        wait_until(
            lambda: any(bucket._list_parts(BUCKET, up.object_name, up.upload_id).parts for up in uploads()),
            "a part of the upload reached MinIO",
            300,
            interval=0.5,
        )
        cut.kill()
    finally:
        cut.remove(force=True)
    left = uploads()
    assert len(left) == 1, "the cut-off upload is still open in MinIO"
    assert not list(bucket.list_objects(BUCKET, prefix=prefix)), "no object, whole or partial, at the archive's key"

    status, log = run_once(client, tmp_path / "work", volumes, BACKUP_MODEL="cutoff", FAKE_EXPORT_SIZE="1M")
    try:
        assert status == 0, log[-3000:]
        assert f"backup-cleanup: model cutoff: aborted the incomplete upload of {left[0].object_name}" in log
        assert uploads() == [], "the upload left behind is gone"
        assert len(archives(bucket, "once/cutoff")) == 1, "the next run uploaded its archive"
    finally:
        for obj in bucket.list_objects(BUCKET, prefix=prefix, recursive=True):
            bucket.remove_object(BUCKET, obj.object_name)


def test_a_paused_scheduler_makes_the_container_unhealthy(stack, client) -> None:
    backup = client.containers.get(NAMES.backup)
    assert backup.exec_run(["docker-healthcheck"]).exit_code == 0
    pid = backup.exec_run(["sh", "-c", "for p in /proc/[0-9]*; do grep -qx gobackup $p/comm && basename $p; done"])
    scheduler = pid.output.decode().split()[0]
    backup.exec_run(["sh", "-c", f"kill -STOP {scheduler}"])
    try:
        probe = backup.exec_run(["docker-healthcheck"])
        assert probe.exit_code == 1
        assert "the scheduler does not answer" in probe.output.decode()
    finally:
        backup.exec_run(["sh", "-c", f"kill -CONT {scheduler}"])


FREQUENT_SCHEDULE = [
    {
        "name": "sales",
        "database": "SalesDemo",
        "host": "mssql",
        "password": "{{ dev_mssql_sa_password }}",
        "trust_server_certificate": True,
        # robfig/cron's @every, which GoBackup accepts (the health probe too):
        # runs every 20 s keep the scheduled tests short.
        "schedule": "@every 20s",
        "keep": 2,
    },
    {
        "name": "inventory",
        "database": "InventoryDemo",
        "host": "mssql",
        "password": "{{ dev_mssql_sa_password }}",
        "trust_server_certificate": True,
        "schedule": "* * * * *",
        "keep": 100,
    },
]


# Both models on FREQUENT_SCHEDULE, each in a GoBackup worker of its own:
# the scheduled tests run through the workers' path (one `gobackup run` per
# gobackup-worker-<i>.yml), the other tests through gobackup.yml alone.
FREQUENT_VARS = {"backup_config_databases": FREQUENT_SCHEDULE, "backup_config_workers": 2}


@pytest.fixture
def frequent_schedule(deployment: Deployment, client: docker.DockerClient) -> Deployment:
    """The stack deployed with FREQUENT_VARS."""
    deployment.use(FREQUENT_VARS)
    return deployment


def sales_state(bucket: Minio) -> list[str] | None:
    """The archives of sales in keep's record in the bucket (None: no record)."""
    try:
        state = json.loads(bucket.get_object(BUCKET, f"{PREFIX}/sales/.gobackup-state/sales_minio.json").read())
    except S3Error:
        return None
    return [entry["file_key"] for entry in state]


@pytest.fixture
def recorded_sales_archives(frequent_schedule: Deployment, bucket: Minio) -> list[str]:
    """Two archives of sales or more, each in keep's record in the bucket: the
    scheduled runs make them (the scheduled test leaves them)."""
    wait_until(
        lambda: len(archives(bucket, "sales")) >= 2 and sales_state(bucket) == archives(bucket, "sales"),
        "two scheduled archives of sales in keep's record",
        240,
        interval=2,
    )
    return archives(bucket, "sales")


@pytest.fixture
def scheduled_run(frequent_schedule: Deployment, client: docker.DockerClient) -> None:
    """A scheduled run of sales in the backup container's log."""
    backup = client.containers.get(NAMES.backup)
    wait_until(lambda: "[Scheduler: sales]" in backup.logs().decode(), "a scheduled run of sales", 150, interval=2)


def test_scheduled_backups_keep_n_per_model_across_restarts(stack, deployment: Deployment, client, bucket) -> None:
    started = client.containers.get(NAMES.backup).attrs["State"]["StartedAt"]
    deployment.deploy(FREQUENT_VARS)
    backup = client.containers.get(NAMES.backup)
    assert backup.attrs["State"]["StartedAt"] != started, "a configuration change restarts the container"
    inventory_before = archives(bucket, "inventory")

    def runs() -> int:
        return backup.logs().decode().count("[Model: sales] WorkDir")

    def wait_for_runs(count: int) -> None:
        wait_until(
            lambda: runs() >= count, lambda: backup.logs().decode()[-3000:], 30 * (count - runs() + 2), interval=2
        )
        time.sleep(3)  # let the upload and pruning of the last run finish

    wait_for_runs(runs() + 3)
    assert len(archives(bucket, "sales")) == 2, "keep: 2 pruned the older archives"
    assert "[Cycler] Removed" in backup.logs().decode()
    wait_until(
        lambda: len(archives(bucket, "inventory")) > len(inventory_before),
        "the minute's cron ran inventory on its own schedule",
        90,
        interval=2,
    )
    assert set(inventory_before) <= set(archives(bucket, "inventory")), "keep on sales never touched inventory"
    survivors = archives(bucket, "sales")

    before_restart = runs()
    backup.restart()
    backup = client.containers.get(NAMES.backup)
    wait_for_runs(before_restart + 1)
    after = archives(bucket, "sales")
    assert len(after) == 2
    assert survivors[-1] in after, "the state survived the restart"
    assert survivors[0] not in after, "the state survived the restart"
    assert sales_state(bucket) == after
    backup.reload()
    assert backup.attrs["RestartCount"] == 0, "the daemon stayed up across the scheduled runs"
    assert backup.exec_run(["docker-healthcheck"]).exit_code == 0
    # The probe kept each model's last run time from GoBackup's metrics: the
    # queue the overdue rule allows for.
    recorded = json.loads(backup.exec_run(["cat", "/var/lib/gobackup/run-durations.json"]).output)
    assert recorded["models"]["sales"]["seconds"] > 0, recorded


def test_a_lost_state_volume_is_recovered_from_the_bucket(
    frequent_schedule: Deployment, client, bucket, recorded_sales_archives: list[str]
) -> None:
    """keep's record of what it wrote has a copy in the bucket: with an empty
    state volume, the next run still prunes what was written before the loss."""
    frequent_schedule.overrides = None  # no backup container until the deploy below
    client.containers.get(NAMES.backup).remove(force=True)
    client.volumes.get(f"{PROJECT}_state").remove()
    before = archives(bucket, "sales")
    assert len(before) >= 2
    frequent_schedule.deploy(FREQUENT_VARS)
    backup = client.containers.get(NAMES.backup)
    wait_until(
        lambda: "[Cycler] Removed" in backup.logs().decode(), "the first run after the loss pruned", 240, interval=0.5
    )
    time.sleep(3)
    after = archives(bucket, "sales")
    assert len(after) == 2, (before, after)
    assert after[0] == before[-1], "the newest archive from before the loss is kept"
    assert not set(before[:-1]) & set(after), "older ones, written before the loss, are pruned"
    assert sales_state(bucket) == after, "no archive orphaned: all are in keep's record"


def test_a_failed_scheduled_run_turns_the_container_unhealthy_until_the_next_success(frequent_schedule, client) -> None:
    backup = client.containers.get(NAMES.backup)

    def failures() -> int:
        # GoBackup logs it under the tag set last (e.g. "[Notifier] Failed to perform: ...").
        return len(re.findall(r"\] Failed to perform: ", backup.logs().decode()))

    failed_before = failures()
    client.containers.get(NAMES.minio).stop()
    try:
        wait_until(lambda: failures() > failed_before, "a scheduled run failed while MinIO was down", 150, interval=3)
        probe = backup.exec_run(["docker-healthcheck"])
        assert probe.exit_code == 1
        assert "the last backup of model" in probe.output.decode()
        assert "http://minio:9000 bucket sqlserver-backups" in probe.output.decode()
        backup.reload()
        assert backup.status == "running", "the daemon keeps running"
    finally:
        client.containers.get(NAMES.minio).start()
    wait_until(
        lambda: backup.exec_run(["docker-healthcheck"]).exit_code == 0,
        "healthy again after the next run",
        150,
        interval=3,
    )


def test_two_workers_export_two_models_at_the_same_time(frequent_schedule, client, bucket) -> None:
    """GoBackup runs the models of one process one at a time; in two workers,
    sales and inventory export at once. A paused SQL Server holds each export
    until both are running."""
    backup, mssql = client.containers.get(NAMES.backup), client.containers.get(NAMES.mssql)
    assert "starting the GoBackup scheduler in 2 GoBackup workers" in backup.logs().decode()
    before = {model: archives(bucket, model) for model in ("sales", "inventory")}

    def running() -> set[str]:
        jobs = backup.exec_run(["backup-config", "running-jobs", "/etc/gobackup/gobackup.yml"])
        return set(jobs.output.decode().split())

    mssql.pause()
    try:
        wait_until(lambda: running() == {"sales", "inventory"}, "both models exporting at once", 150, interval=1)
    finally:
        mssql.unpause()
    for model in ("sales", "inventory"):
        wait_until(lambda model=model: archives(bucket, model) != before[model], f"a new archive of {model}", 150)
    wait_until(lambda: backup.exec_run(["docker-healthcheck"]).exit_code == 0, "healthy, both workers answering", 60)
    # A manual run and the status find a model whichever worker schedules it.
    assert "BACKUP-NOW OK model=inventory" in playbook("backup_now.yml", "-e", "backup_now_models=inventory").stdout
    status = backup.exec_run(["backup-status", "--json"])
    rows = {row["model"]: row["status"] for row in json.loads(status.output)["rows"]}
    assert set(rows) == {"sales", "inventory"}, status.output
    assert "OVERDUE" not in rows.values(), status.output


@pytest.fixture
def ansible_outputs(deployment: Deployment) -> list[str]:
    """What Ansible printed in this run: a deploy, a backup and a restore at
    least, run here when no test before ran them (this test alone)."""
    ran = {name for name, _ in OUTPUTS}
    if "backup_now.yml" not in ran:
        playbook("backup_now.yml")
    if "restore.yml" not in ran:
        playbook("restore.yml", "-e", "restore_drill=true")
    return [output for _, output in OUTPUTS]


def test_no_secret_leaks_anywhere(deployment, client, ansible_outputs: list[str]) -> None:
    values = secrets()
    backup = client.containers.get(NAMES.backup)
    image = client.images.get(backup.attrs["Config"]["Image"])
    assert {"deploy.yml", "backup_now.yml", "restore.yml"} <= {name for name, _ in OUTPUTS}
    places = {
        "docker logs": backup.logs().decode(),
        "docker inspect (container)": repr(backup.attrs),
        "docker inspect (image)": repr(image.attrs),
        "compose.yml": (Path(str(E2E_VARS["backup_stack_dir"])) / "compose.yml").read_text(),
        "ansible output": "\n".join(ansible_outputs),
        "host process list": subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout,
    }
    assert all(places.values()), "every place has something to check"
    for place, text in places.items():
        assert not [value for value in values if value in text], place


def test_the_log_stays_readable_and_bounded(scheduled_run, client) -> None:
    backup = client.containers.get(NAMES.backup)
    assert backup.exec_run(["docker-healthcheck"]).exit_code == 0
    log = backup.logs().decode()
    assert "[Scheduler: sales]" in log, "scheduled runs are logged"
    assert '"/status"' not in log, "the health probe's requests do not flood docker logs"
    assert '"/metrics"' not in log
    size = backup.exec_run(["sh", "-c", "stat -L -c %s ~/.gobackup/gobackup.log"])
    assert size.output.decode().strip() == "0", "GoBackup's own log file does not grow on the state volume"
