"""End to end: the development stack deployed by playbooks/deploy.yml (SQL
Server stand-in, MinIO built from source, the backup container), backups taken
by backup_now.yml and by the scheduler, restores by restore.yml, and every
failure path with its observable result. Tests run in file order on one stack."""

from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
import time
from pathlib import Path

import docker
import pytest
from conftest import REPO, ansible_playbook
from minio import Minio

ROOT = Path("/tmp/sqlserver-backup-e2e")
PROJECT = "sqlserver-backup-e2e"
BACKUP, MSSQL, MINIO = (f"{PROJECT}-{service}-1" for service in ("backup", "mssql", "minio"))
MINIO_PORT = 29000
PREFIX = "e2e/localhost"
BUCKET = "sqlserver-backups"
E2E_VARS = {
    "dev_secrets_dir": str(ROOT / "secrets"),
    "backup_stack_project": PROJECT,
    "backup_stack_dir": str(ROOT / "stack"),
    "backup_config_dir": str(ROOT / "stack" / "config"),
    "backup_config_stack_dir": str(ROOT / "stack"),
    "backup_image_build_dir": str(ROOT / "build"),
    "minio_image_build_dir": str(ROOT / "minio-build"),
    "backup_stack_mssql_port": 21433,
    "backup_stack_minio_port": MINIO_PORT,
    "backup_config_minio_path_prefix": "e2e",
}
OUTPUTS: list[str] = []  # everything Ansible printed, checked for secrets at the end


def playbook(name: str, *arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = ansible_playbook(
        "-v",
        "-i",
        str(REPO / "inventories" / "dev"),
        "-e",
        f"@{REPO}/tests/offline-vars.yml",
        "-e",
        json.dumps(E2E_VARS),
        *arguments,
        str(REPO / "playbooks" / name),
    )
    OUTPUTS.append(result.stdout + result.stderr)
    if check:
        assert result.returncode == 0, result.stdout[-4000:]
    return result


def secret(name: str) -> str:
    return (ROOT / "secrets" / name).read_text().split()[0]


def secrets() -> list[str]:
    return [path.read_text().split()[0] for path in (ROOT / "secrets").iterdir()]


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    return docker.from_env()


@pytest.fixture(scope="module")
def stack(client: docker.DockerClient):
    subprocess.run(["docker", "compose", "-p", PROJECT, "down", "-v"], capture_output=True, check=False)
    subprocess.run(["rm", "-rf", str(ROOT)], check=True)
    prepared = ansible_playbook(str(REPO / "tests/playbooks/prepare_standins.yml"))
    assert prepared.returncode == 0, prepared.stdout[-3000:]
    playbook("deploy.yml")
    yield client
    subprocess.run(["docker", "compose", "-p", PROJECT, "down", "-v"], capture_output=True, check=False)


@pytest.fixture(scope="module")
def bucket(stack) -> Minio:
    return Minio(f"127.0.0.1:{MINIO_PORT}", "minio-admin", secret("minio_root_password"), secure=False)


def archives(bucket: Minio, model: str) -> list[str]:
    names = [obj.object_name for obj in bucket.list_objects(BUCKET, prefix=f"{PREFIX}/{model}/")]
    return sorted(name.rsplit("/", 1)[1] for name in names if name.endswith(".tar"))


def sql(client: docker.DockerClient, query: str, database: str = "master") -> list[str]:
    result = client.containers.get(MSSQL).exec_run(
        ["/opt/mssql-tools18/bin/sqlcmd", "-S", "localhost", "-U", "sa", "-d", database, "-Q", query, "-b"],
        environment={"SQLCMDPASSWORD": secret("mssql_sa_password") + "Aa1"},
    )
    assert result.exit_code == 0, result.output.decode()
    return result.output.decode().splitlines()


def run_once(client: docker.DockerClient, workdir: Path, **overrides: str) -> tuple[int, str]:
    """The backup image in once mode, on the stack's network, configured by environment."""
    environment = {
        "RUN_MODE": "once",
        "MSSQL_HOST": "mssql",
        "MSSQL_DATABASE": "SalesDemo",
        "MSSQL_PASSWORD": secret("mssql_sa_password") + "Aa1",
        "MSSQL_TRUST_SERVER_CERTIFICATE": "true",
        "MINIO_ENDPOINT": "http://minio:9000",
        "MINIO_BUCKET": BUCKET,
        "MINIO_ACCESS_KEY": "sqlserver-backup",
        "MINIO_SECRET_KEY": secret("minio_backup_secret_key"),
        "MINIO_PATH": f"{PREFIX}/once",
        "BACKUP_MODEL": "failcase",
        **overrides,
    }
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o777)
    container = client.containers.run(
        "sqlserver-backup:1.0.0",
        detach=True,
        environment=environment,
        network=f"{PROJECT}_default",
        volumes={str(workdir): {"bind": "/tmp/gobackup", "mode": "rw"}},
    )
    try:
        status = container.wait(timeout=120)["StatusCode"]
        return status, container.logs().decode()
    finally:
        container.remove(force=True)


def test_backup_now_uploads_each_model_under_its_own_path(stack, bucket: Minio) -> None:
    result = playbook("backup_now.yml")
    for expected in ("[Model: sales] WorkDir:", "=> database | mssql: SalesDemo", "Uploading (", "(Duration"):
        assert expected in result.stdout
    assert "Backup on localhost succeeded." in result.stdout
    for model, database in (("sales", "SalesDemo"), ("inventory", "InventoryDemo")):
        names = archives(bucket, model)
        assert len(names) == 1
        assert re.fullmatch(r"\d{4}(\.\d{2}){5}\.tar", names[0])
        data = bucket.get_object(BUCKET, f"{PREFIX}/{model}/{names[0]}").read()
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            members = archive.getnames()
        assert f"{model}/mssql/{database}/{database}.bacpac" in members


def test_restore_brings_back_the_same_data(stack, client) -> None:
    playbook("restore.yml", "-e", "restore_model=sales", "-e", "restore_target_database=SalesCopy")
    for query in ("SELECT * FROM dbo.Customers", "SELECT * FROM dbo.Orders"):
        assert sql(client, query, "SalesCopy") == sql(client, query, "SalesDemo")


def test_restore_into_an_existing_database_needs_the_flag(stack, client) -> None:
    copy = ("-e", "restore_model=sales", "-e", "restore_target_database=SalesCopy")
    refused = playbook("restore.yml", *copy, check=False)
    assert refused.returncode != 0
    assert "database SalesCopy already exists" in refused.stdout
    sql(client, "INSERT INTO dbo.Customers VALUES (99, 'Changed', 'Nowhere')", "SalesCopy")
    playbook("restore.yml", *copy, "-e", "restore_replace=true")
    assert sql(client, "SELECT COUNT(*) FROM dbo.Customers", "SalesCopy") == ["5"]


def test_drill_reports_each_database_and_leaves_nothing_behind(stack, client) -> None:
    result = playbook("restore.yml", "-e", "restore_drill=true")
    assert "DRILL PASS model=sales" in result.stdout
    assert "DRILL PASS model=inventory" in result.stdout
    assert not [name for name in sql(client, "SELECT name FROM sys.databases") if "_drill_" in name]


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


def test_unreachable_sql_server_stops_the_start(stack, client, tmp_path) -> None:
    status, log = run_once(client, tmp_path / "work", MSSQL_HOST="nosuchhost", CONNECT_TIMEOUT="2")
    assert status == 1
    assert "cannot reach SQL Server SalesDemo of model failcase at nosuchhost:1433" in log


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


def test_minio_outage_fails_the_run_but_not_the_daemon(stack, client, bucket) -> None:
    before = len(archives(bucket, "sales"))
    client.containers.get(MINIO).stop()
    try:
        failed = playbook("backup_now.yml", "-e", "backup_now_models=sales", check=False)
        assert failed.returncode != 0
        assert "uploading to http://minio:9000 bucket sqlserver-backups" in failed.stdout
        backup = client.containers.get(BACKUP)
        assert backup.status == "running"
        kept = backup.exec_run(["sh", "-c", "ls /tmp/gobackup/local/sales"]).output.decode().split()
        assert kept, "the failed run left its archive on the work volume"
    finally:
        client.containers.get(MINIO).start()
    deadline = time.monotonic() + 60
    while client.containers.get(MINIO).attrs["State"].get("Health", {}).get("Status") != "healthy":
        assert time.monotonic() < deadline
        time.sleep(1)
    playbook("backup_now.yml", "-e", "backup_now_models=sales")
    assert len(archives(bucket, "sales")) == before + 1


def test_a_paused_scheduler_makes_the_container_unhealthy(stack, client) -> None:
    backup = client.containers.get(BACKUP)
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


def test_scheduled_backups_keep_n_per_model_across_restarts(stack, client, bucket) -> None:
    minute_schedule = [
        {
            "name": "sales",
            "database": "SalesDemo",
            "host": "mssql",
            "password": "{{ dev_mssql_sa_password }}",
            "trust_server_certificate": True,
            "schedule": "* * * * *",
            "keep": 2,
        },
        {
            "name": "inventory",
            "database": "InventoryDemo",
            "host": "mssql",
            "password": "{{ dev_mssql_sa_password }}",
            "trust_server_certificate": True,
            "schedule": "* * * * *",
        },
    ]
    started = client.containers.get(BACKUP).attrs["State"]["StartedAt"]
    playbook("deploy.yml", "-e", json.dumps({"backup_config_databases": minute_schedule}))
    backup = client.containers.get(BACKUP)
    assert backup.attrs["State"]["StartedAt"] != started, "a configuration change restarts the container"
    inventory_before = len(archives(bucket, "inventory"))

    def runs() -> int:
        return backup.logs().decode().count("[Model: sales] WorkDir")

    def wait_for_runs(count: int) -> None:
        deadline = time.monotonic() + 60 * (count - runs() + 2)
        while runs() < count:
            assert time.monotonic() < deadline, backup.logs().decode()[-3000:]
            time.sleep(5)
        time.sleep(5)  # let the upload and pruning of the last run finish

    wait_for_runs(runs() + 3)
    assert len(archives(bucket, "sales")) == 2, "keep: 2 pruned the older archives"
    assert "[Cycler] Removed" in backup.logs().decode()
    assert len(archives(bucket, "inventory")) >= inventory_before + 3, "keep on sales never touched inventory"
    survivors = archives(bucket, "sales")

    before_restart = runs()
    backup.restart()
    backup = client.containers.get(BACKUP)
    wait_for_runs(before_restart + 1)
    after = archives(bucket, "sales")
    assert len(after) == 2
    assert survivors[-1] in after, "the state survived the restart"
    assert survivors[0] not in after, "the state survived the restart"
    state = json.loads(bucket.get_object(BUCKET, f"{PREFIX}/sales/.gobackup-state/sales_minio.json").read())
    assert [entry["file_key"] for entry in state] == after


def test_a_failed_scheduled_run_turns_the_container_unhealthy_until_the_next_success(stack, client, bucket) -> None:
    backup = client.containers.get(BACKUP)  # still on the one-minute schedule of the test above

    def failures() -> int:
        return backup.logs().decode().count("[Scheduler] Failed to perform")

    def wait(condition, what: str) -> None:
        deadline = time.monotonic() + 150
        while not condition():
            assert time.monotonic() < deadline, what
            time.sleep(3)

    failed_before = failures()
    client.containers.get(MINIO).stop()
    try:
        wait(lambda: failures() > failed_before, "a scheduled run failed while MinIO was down")
        probe = backup.exec_run(["docker-healthcheck"])
        assert probe.exit_code == 1
        assert "the last backup of model" in probe.output.decode()
        assert "http://minio:9000 bucket sqlserver-backups" in probe.output.decode()
        backup.reload()
        assert backup.status == "running", "the daemon keeps running"
    finally:
        client.containers.get(MINIO).start()
    wait(lambda: backup.exec_run(["docker-healthcheck"]).exit_code == 0, "healthy again after the next run")


def test_no_secret_leaks_anywhere(stack, client) -> None:
    values = [*secrets(), secret("mssql_sa_password") + "Aa1"]
    backup = client.containers.get(BACKUP)
    image = client.images.get(backup.attrs["Config"]["Image"])
    places = {
        "docker logs": backup.logs().decode(),
        "docker inspect (container)": repr(backup.attrs),
        "docker inspect (image)": repr(image.attrs),
        "compose.yml": (ROOT / "stack" / "compose.yml").read_text(),
        "ansible output": "\n".join(OUTPUTS),
        "host process list": subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout,
    }
    for place, text in places.items():
        assert not [value for value in values if value in text], place
