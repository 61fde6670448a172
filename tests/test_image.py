"""The backup image, built through playbooks/build.yml from the stand-in
artifacts served like the real releases, and run on the real Docker engine."""

from __future__ import annotations

import time
from pathlib import Path

import docker
import pytest
from conftest import REPO, REQUIRED_ENV, ansible_playbook

IMAGE = "sqlserver-backup:1.0.0"


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory) -> Path:
    prepared = ansible_playbook(str(REPO / "tests" / "playbooks" / "prepare_standins.yml"))
    assert prepared.returncode == 0, prepared.stdout
    directory = tmp_path_factory.mktemp("build")
    built = ansible_playbook(
        "-i",
        str(REPO / "inventories" / "dev"),
        "-e",
        f"@{REPO}/tests/offline-vars.yml",
        "-e",
        f"backup_image_build_dir={directory}",
        str(REPO / "playbooks" / "build.yml"),
    )
    assert built.returncode == 0, built.stdout
    assert f"{IMAGE}: " in built.stdout, "the build reports the image size"
    assert " MiB (sqlpackage 170.4.83.3, GoBackup 3.1.1" in built.stdout
    return directory


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    return docker.from_env()


def test_a_wrong_checksum_stops_the_build_naming_the_artifact(tmp_path: Path, build_dir: Path) -> None:
    result = ansible_playbook(
        "-i",
        str(REPO / "inventories" / "dev"),
        "-e",
        f"@{REPO}/tests/offline-vars.yml",
        "-e",
        f"backup_image_build_dir={tmp_path}",
        "-e",
        "backup_image_sqlpackage_checksum=sha256:" + "0" * 64,
        str(REPO / "playbooks" / "build.yml"),
    )
    assert result.returncode != 0
    assert (
        "- sqlpackage could not be had from http://127.0.0.1:8765/sqlpackage-linux-x64-en-170.4.83.3.zip"
        in result.stdout
    )
    assert "did not match" in result.stdout
    assert "gobackup could not be had" not in result.stdout


def test_the_dockerfile_verifies_the_artifacts_itself(client: docker.DockerClient, build_dir: Path) -> None:
    with pytest.raises(docker.errors.BuildError) as failure:
        client.images.build(
            path=str(build_dir / "context"),
            rm=True,
            forcerm=True,
            buildargs={"BASE_IMAGE": "sqlserver-backup/base:bookworm", "SQLPACKAGE_SHA256": "f" * 64},
        )
    log = "".join(str(entry.get("stream", "")) + str(entry.get("error", "")) for entry in failure.value.build_log)
    assert "artifact sqlpackage: sha256 mismatch" in log


def test_missing_variables_are_named_by_the_image(client: docker.DockerClient, build_dir: Path) -> None:
    container = client.containers.run(IMAGE, detach=True)
    try:
        assert container.wait(timeout=60)["StatusCode"] == 1
        log = container.logs().decode()
    finally:
        container.remove(force=True)
    for name in REQUIRED_ENV:
        assert f"{name} is not set" in log


@pytest.fixture
def running(client: docker.DockerClient, build_dir: Path, tmp_path: Path):
    """A daemon-mode container whose secrets come from mounted *_FILE files."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    environment = dict(REQUIRED_ENV, SKIP_HEALTH_CHECK="true", TZ="Asia/Tokyo")
    for name in ("MSSQL_PASSWORD", "MINIO_SECRET_KEY"):
        (secrets / name.lower()).write_text(environment.pop(name))
        environment[f"{name}_FILE"] = f"/run/secrets/{name.lower()}"
    secrets.chmod(0o755)
    for path in secrets.iterdir():
        path.chmod(0o644)
    container = client.containers.run(
        IMAGE,
        detach=True,
        environment=environment,
        volumes={str(secrets): {"bind": "/run/secrets", "mode": "ro"}},
    )
    try:
        deadline = time.monotonic() + 30
        while container.exec_run(["/usr/local/bin/docker-healthcheck"]).exit_code != 0:
            assert time.monotonic() < deadline, container.logs().decode()
            time.sleep(0.5)
        yield container
    finally:
        container.remove(force=True)


def test_secrets_from_files_reach_gobackup_but_not_docker_inspect(running) -> None:
    running.reload()
    text = repr(running.attrs)
    assert REQUIRED_ENV["MSSQL_PASSWORD"] not in text
    assert REQUIRED_ENV["MINIO_SECRET_KEY"] not in text
    assert REQUIRED_ENV["MSSQL_PASSWORD"] not in running.logs().decode()


def test_the_scheduler_runs_as_the_non_root_user_in_the_given_time_zone(running) -> None:
    assert running.exec_run(["id", "-u"]).output.decode().strip() == "10001"
    assert running.exec_run(["date", "+%Z"]).output.decode().strip() == "JST"
    assert "starting the GoBackup scheduler (TZ=Asia/Tokyo)" in running.logs().decode()


def test_docker_stop_reaches_gobackup(running) -> None:
    running.stop(timeout=20)
    running.reload()
    # 137 would mean Docker had to kill it: the signal never reached GoBackup.
    assert running.attrs["State"]["ExitCode"] == 0
