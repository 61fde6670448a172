"""Verify the deployed development stack: files on the Docker host, the backup
image and the running backup container."""

from __future__ import annotations

import io
from pathlib import Path

import docker
import pytest
import testinfra
import yaml
from minio import Minio
from minio.error import S3Error
from sqlserver_backup_testing import wait_until

STACK_DIR = Path("/tmp/sqlserver-backup-molecule/stack")
# The development services' project (the dev_services role).
DEV_DIR = Path("/tmp/sqlserver-backup-molecule/dev")
DEV_PROJECT = "sqlserver-backup-molecule-dev"
SECRETS_DIR = Path("/tmp/sqlserver-backup-molecule/secrets")
PROJECT = "sqlserver-backup-molecule"
BACKUP_CONTAINER = f"{PROJECT}-backup-1"
CONTAINER_UID = 10001


@pytest.fixture(scope="module")
def docker_client() -> docker.DockerClient:
    return docker.from_env()


@pytest.fixture(scope="module")
def backup_container(docker_client: docker.DockerClient):
    container = docker_client.containers.get(BACKUP_CONTAINER)

    def started() -> bool:
        container.reload()
        return container.attrs["State"].get("Health", {}).get("Status") != "starting"

    wait_until(started, "the backup container's first health check", 120, interval=2)
    return container


@pytest.fixture(scope="module")
def backup_host():
    return testinfra.get_host(f"docker://{BACKUP_CONTAINER}")


@pytest.fixture(scope="module")
def secrets() -> list[str]:
    values = [path.read_text().split()[0] for path in SECRETS_DIR.iterdir()]
    assert values, "the molecule run generated no secrets"
    return values


@pytest.fixture(scope="module")
def rendered_config(host) -> dict:
    return yaml.safe_load(host.file(str(STACK_DIR / "config" / "gobackup.yml")).content_string)


@pytest.mark.parametrize(
    ("path", "mode"),
    [("config", 0o700), ("config/gobackup.yml", 0o600), ("config/.env", 0o600)],
)
def test_config_files_belong_to_the_container_user(host, path: str, mode: int) -> None:
    target = host.file(str(STACK_DIR / path))
    assert target.exists
    assert target.uid == CONTAINER_UID
    assert target.mode == mode


@pytest.mark.parametrize(
    ("service", "variables"),
    [
        ("mssql", ["MSSQL_SA_PASSWORD"]),
        ("mssql-restore", ["MSSQL_SA_PASSWORD"]),
        ("minio", ["MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"]),
    ],
)
def test_each_development_service_gets_only_its_own_secret(host, service: str, variables: list[str]) -> None:
    env_file = host.file(str(DEV_DIR / f"{service}.env"))
    assert env_file.mode == 0o600
    assert sorted(line.split("=")[0] for line in env_file.content_string.splitlines() if "=" in line) == sorted(
        variables
    )


def test_config_uses_gobackup_key_names(rendered_config: dict) -> None:
    # GoBackup lower-cases keys: the model name is the database key.
    database = rendered_config["models"]["sales"]["databases"]["sales"]
    assert database["database"] == "SalesDemo"
    assert database["type"] == "mssql"
    assert database["trust_server_certificate"] is True
    assert "trustServerCertificate" not in database
    assert database["password"] == "${MSSQL_PASSWORD_SALES}"
    assert rendered_config["web"]["host"] == "127.0.0.1"


def test_every_model_uploads_under_its_own_host_and_model_path(rendered_config: dict) -> None:
    paths = {name: model["storages"]["minio"]["path"] for name, model in rendered_config["models"].items()}
    assert paths == {
        "sales": "molecule/sqlserver-backup-molecule/sales",
        "inventory": "molecule/sqlserver-backup-molecule/inventory",
    }


def test_per_database_settings_override_the_defaults(rendered_config: dict) -> None:
    inventory, sales = rendered_config["models"]["inventory"], rendered_config["models"]["sales"]
    assert inventory["schedule"]["cron"] == "15 3 * * *"
    assert inventory["storages"]["minio"]["keep"] == 3
    assert sales["schedule"]["cron"] == "0 2 * * *"
    assert sales["storages"]["minio"]["keep"] == 7


def test_secrets_live_only_in_the_env_file(host, secrets: list[str]) -> None:
    env_file = host.file(str(STACK_DIR / "config" / ".env")).content_string
    assert f"MINIO_SECRET_KEY='{secrets_by_name()['minio_backup_secret_key']}'" in env_file
    for path in (STACK_DIR / "config" / "gobackup.yml", STACK_DIR / "compose.yml", DEV_DIR / "compose.yml"):
        content = host.file(str(path)).content_string
        assert not [secret for secret in secrets if secret in content], path


def secrets_by_name() -> dict[str, str]:
    return {path.name: path.read_text().split()[0] for path in SECRETS_DIR.iterdir()}


@pytest.mark.parametrize(
    ("command", "expected"),
    [("gobackup -v", "gobackup version 3.1.1"), ("sqlpackage /Version", "170.4.83.3")],
)
def test_tools_answer_their_version(backup_host, command: str, expected: str) -> None:
    assert backup_host.check_output(command).strip() == expected


@pytest.mark.parametrize("path", ["/usr/local/bin/gobackup", "/usr/local/sqlpackage/sqlpackage"])
def test_binaries_are_executable(backup_host, path: str) -> None:
    binary = backup_host.file(path)
    assert binary.is_file
    assert binary.mode & 0o111 == 0o111


def test_sqlpackage_is_on_the_path_through_a_symlink(backup_host) -> None:
    link = backup_host.file("/usr/local/bin/sqlpackage")
    assert link.is_symlink
    assert backup_host.check_output("readlink -f /usr/local/bin/sqlpackage") == "/usr/local/sqlpackage/sqlpackage"


def test_backup_verify_is_a_console_script_of_the_package_on_the_path(backup_host) -> None:
    link = "/usr/local/bin/backup-verify"
    assert backup_host.check_output(f"readlink -f {link}") == "/opt/sqlserver-backup/bin/backup-verify"
    usage = backup_host.run("backup-verify --help")
    assert usage.rc == 0
    assert usage.stdout.startswith("usage: backup-verify ")
    assert "--all" in usage.stdout


@pytest.mark.parametrize(
    ("path", "mode"),
    [("/tmp/gobackup", 0o700), ("/var/lib/gobackup", 0o750), ("/var/lib/gobackup/.gobackup", 0o750)],
)
def test_writable_directories_belong_to_the_container_user(backup_host, path: str, mode: int) -> None:
    directory = backup_host.file(path)
    assert directory.is_directory
    assert directory.uid == CONTAINER_UID
    assert directory.mode == mode


def test_config_is_mounted_read_only(backup_host) -> None:
    assert backup_host.run("touch /etc/gobackup/probe").rc != 0


def test_container_runs_as_non_root(backup_host, backup_container) -> None:
    assert backup_container.attrs["Config"]["User"] == f"{CONTAINER_UID}:{CONTAINER_UID}"
    owners = backup_host.check_output(
        "python3 -c \"import pathlib; print(sorted({p.stat().st_uid for p in pathlib.Path('/proc').glob('[0-9]*')}))\""
    )
    assert owners == f"[{CONTAINER_UID}]"


def test_restores_go_to_the_scratch_server_never_the_source(host) -> None:
    restore = yaml.safe_load(host.file(str(STACK_DIR / "config" / "restore.yml")).content_string)
    assert {name: model["host"] for name, model in restore["models"].items()} == {
        "sales": "mssql-restore",
        "inventory": "mssql-restore",
    }


def test_the_restore_server_is_a_service_of_its_own(docker_client) -> None:
    restore = docker_client.containers.get(f"{DEV_PROJECT}-mssql-restore-1")
    source = docker_client.containers.get(f"{DEV_PROJECT}-mssql-1")
    assert restore.attrs["State"]["Health"]["Status"] == "healthy"
    assert restore.attrs["NetworkSettings"]["Ports"]["1433/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": "11434"}]

    def volumes(container) -> set[str]:
        return {mount["Name"] for mount in container.attrs["Mounts"] if mount["Type"] == "volume"}

    assert volumes(restore) == {f"{DEV_PROJECT}_mssql-restore-data"}
    assert not volumes(restore) & volumes(source)


def test_container_is_healthy(backup_container) -> None:
    assert backup_container.attrs["State"]["Health"]["Status"] == "healthy"


def test_scheduler_answers_only_inside_the_container(backup_host, backup_container) -> None:
    assert backup_container.attrs["NetworkSettings"]["Ports"] in ({}, None)
    status = backup_host.check_output(
        "python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:2703/status').read().decode())\""
    )
    assert '"GoBackup is running."' in status


def test_scheduler_uses_the_configured_time_zone(backup_host) -> None:
    assert backup_host.check_output("date +%Z") in {"CET", "CEST"}


def test_no_secret_in_container_or_image_metadata(docker_client, backup_container, secrets: list[str]) -> None:
    image = docker_client.images.get(backup_container.attrs["Config"]["Image"])
    for what, metadata in (("container", backup_container.attrs), ("image", image.attrs)):
        text = repr(metadata)
        assert not [secret for secret in secrets if secret in text], what


def test_image_carries_labels_and_a_health_check(docker_client, backup_container) -> None:
    config = docker_client.images.get(backup_container.attrs["Config"]["Image"]).attrs["Config"]
    assert config["Labels"]["org.opencontainers.image.title"] == "sqlserver-backup"
    assert config["Labels"]["org.sqlserver-backup.gobackup.version"] == "3.1.1"
    assert config["Healthcheck"]["Test"] == ["CMD", "/usr/local/bin/docker-healthcheck"]


@pytest.mark.parametrize("tool", ["unzip", "gcc", "curl", "wget"])
def test_no_build_tools_in_the_image(backup_host, tool: str) -> None:
    assert backup_host.run(f"command -v {tool}").rc != 0


def test_no_package_lists_left_in_the_image(backup_host) -> None:
    assert backup_host.check_output("find /var/lib/apt/lists -type f -name '*_Packages*' | wc -l") == "0"


@pytest.fixture(scope="module")
def backup_key_client() -> Minio:
    return Minio("127.0.0.1:19000", "sqlserver-backup", secrets_by_name()["minio_backup_secret_key"], secure=False)


def test_the_backup_key_works_under_its_own_prefix(backup_key_client: Minio) -> None:
    backup_key_client.put_object("sqlserver-backups", "molecule/sqlserver-backup-molecule/probe", io.BytesIO(b"x"), 1)
    listed = list(backup_key_client.list_objects("sqlserver-backups", prefix="molecule/sqlserver-backup-molecule/"))
    assert [obj.object_name for obj in listed] == ["molecule/sqlserver-backup-molecule/probe"]
    backup_key_client.remove_object("sqlserver-backups", "molecule/sqlserver-backup-molecule/probe")


@pytest.mark.parametrize("prefix", ["molecule/another-host/", "", "other/"])
def test_the_backup_key_cannot_see_other_prefixes(backup_key_client: Minio, prefix: str) -> None:
    with pytest.raises(S3Error, match="Access Denied"):
        list(backup_key_client.list_objects("sqlserver-backups", prefix=prefix))


def test_a_daemon_restarts_and_stops_only_after_its_grace(backup_container) -> None:
    assert backup_container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    # Docker's SIGKILL comes 30 s after the entrypoint's own grace (3600 s).
    assert backup_container.attrs["Config"]["StopTimeout"] == 3630
    assert "STOP_GRACE_PERIOD=3600" in backup_container.attrs["Config"]["Env"]
