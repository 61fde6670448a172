"""The backup image, built through playbooks/build.yml from the stand-in
artifacts served like the real releases, and run on the real Docker engine."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import docker
import pytest
from sqlserver_backup_testing import (
    ARTIFACTS,
    REPO,
    REQUIRED_ENV,
    base_image,
    dev_playbook,
    prepare_standins,
    standins_only,
    wait_until,
)

# A tag of this module's own: removed first, so build.yml really builds it
# (an image whose inputs are unchanged is not built again).
IMAGE = "sqlserver-backup:test-image"


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory) -> Path:
    prepare_standins()
    directory = tmp_path_factory.mktemp("build")
    with contextlib.suppress(docker.errors.ImageNotFound):
        docker.from_env().images.remove(IMAGE)
    built = dev_playbook(
        "build.yml", {"backup_image_build_dir": str(directory), "backup_image_tag": IMAGE.split(":")[1]}
    )
    assert built.returncode == 0, built.stdout
    assert f"{IMAGE}: " in built.stdout, "the build reports the image size"
    assert " MiB (sqlpackage 170.4.83.3, GoBackup 3.1.1" in built.stdout
    return directory


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    return docker.from_env()


def test_a_wrong_checksum_stops_the_build_naming_the_artifact(tmp_path: Path, build_dir: Path) -> None:
    result = dev_playbook(
        "build.yml",
        {"backup_image_build_dir": str(tmp_path), "backup_image_sqlpackage_checksum": "sha256:" + "0" * 64},
    )
    assert result.returncode != 0
    assert "- sqlpackage could not be had from " in result.stdout
    assert "did not match" in result.stdout
    assert "gobackup could not be had" not in result.stdout


def test_the_dockerfile_verifies_the_artifacts_itself(client: docker.DockerClient, build_dir: Path) -> None:
    with pytest.raises(docker.errors.BuildError) as failure:
        client.images.build(
            path=str(build_dir / "context"),
            rm=True,
            forcerm=True,
            buildargs={"BASE_IMAGE": base_image(), "SQLPACKAGE_SHA256": "f" * 64},
        )
    log = "".join(str(entry.get("stream", "")) + str(entry.get("error", "")) for entry in failure.value.build_log)
    assert "artifact sqlpackage: sha256 mismatch" in log


def build(build_dir: Path, *extra_vars: str) -> tuple[int, str]:
    """Runs playbooks/build.yml offline into build_dir with the given -e values;
    returns its exit code and output."""
    result = dev_playbook(
        "build.yml",
        {"backup_build_base_image": False, "backup_image_build_dir": str(build_dir)},
        *(argument for value in extra_vars for argument in ("-e", value)),
    )
    return result.returncode, result.stdout


def changed_count(output: str) -> int:
    return int(re.search(r"localhost\s+: ok=\d+\s+changed=(\d+)", output).group(1))


def test_a_sqlpackage_that_cannot_run_stops_the_build_naming_it(tmp_path: Path, build_dir: Path) -> None:
    # What sqlpackage's .NET host does where libicu is missing.
    broken = tmp_path / "sqlpackage-linux-x64-en-170.4.83.3.zip"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr(
            "sqlpackage",
            '#!/bin/sh\necho "Process terminated. Couldn\'t find a valid ICU package installed on the system." >&2\n'
            "exit 134\n",
        )
    returncode, output = build(
        tmp_path / "build",
        "backup_image_name=sqlserver-backup-test/broken-sqlpackage",
        "backup_image_tag=test",
        f"backup_image_sqlpackage_url={broken}",
        f"backup_image_sqlpackage_checksum=sha256:{hashlib.sha256(broken.read_bytes()).hexdigest()}",
    )
    assert returncode != 0
    assert "build check: sqlpackage does not run in this image" in output
    assert "Couldn't find a valid ICU package" in output, "sqlpackage's own error reaches the operator"


@pytest.fixture
def own_base(client: docker.DockerClient, build_dir: Path):
    """A copy of the test base image under a name of this test's own."""
    name = "sqlserver-backup-test/refreshed-base:test"
    client.images.get(base_image()).tag(name)
    yield name
    for image in (name, "sqlserver-backup-test/on-refreshed-base:test"):
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(image, force=True)


def test_a_new_base_image_and_only_that_rebuilds_the_image(
    client: docker.DockerClient, own_base: str, tmp_path: Path
) -> None:
    settings = (f"backup_image_base={own_base}", "backup_image_name=sqlserver-backup-test/on-refreshed-base")
    settings += ("backup_image_tag=test",)
    returncode, output = build(tmp_path, *settings)
    assert returncode == 0, output
    first = client.images.get("sqlserver-backup-test/on-refreshed-base:test").id

    returncode, output = build(tmp_path, *settings)
    assert returncode == 0, output
    assert changed_count(output) == 0, output

    # The same name now stands for an updated base, as after a pull or a
    # bootstrap with new security updates.
    container = client.containers.create(own_base, command=["sh", "-c", "echo updated > /etc/refreshed"])
    try:
        container.start()
        assert container.wait(timeout=60)["StatusCode"] == 0
        repository, tag = own_base.rsplit(":", 1)
        container.commit(repository=repository, tag=tag)
    finally:
        container.remove(force=True)
    returncode, output = build(tmp_path, *settings)
    assert returncode == 0, output
    assert changed_count(output) > 0, output
    rebuilt = client.images.get("sqlserver-backup-test/on-refreshed-base:test")
    assert rebuilt.id != first
    shown = client.containers.run(rebuilt.id, entrypoint=["cat", "/etc/refreshed"], remove=True)
    assert shown.decode().strip() == "updated"


@standins_only
def test_an_artifact_republished_under_its_url_rebuilds_the_image(
    client: docker.DockerClient, build_dir: Path, tmp_path: Path
) -> None:
    """A checksum given as a checksum file's URL pins the artifact by that
    file's content: the same URL with a new artifact and checksum file rebuilds."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    artifact = mirror / "sqlcmd-linux-amd64.tar.bz2"

    def publish(extra: bytes) -> None:
        with tarfile.open(ARTIFACTS / "sqlcmd-linux-amd64.tar.bz2") as original, tarfile.open(artifact, "w:bz2") as new:
            for member in original.getmembers():
                new.addfile(member, original.extractfile(member) if member.isfile() else None)
            note = tarfile.TarInfo("RELEASE-NOTE")
            note.size = len(extra)
            new.addfile(note, io.BytesIO(extra))
        digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
        (mirror / "SHA256SUMS").write_text(f"{digest}  {artifact.name}\n")

    settings = (
        "backup_image_name=sqlserver-backup-test/republished",
        "backup_image_tag=test",
        f"backup_image_sqlcmd_url=file://{artifact}",
        f"backup_image_sqlcmd_checksum=sha256:file://{mirror / 'SHA256SUMS'}",
    )
    try:
        publish(b"first build")
        returncode, output = build(tmp_path / "build", *settings)
        assert returncode == 0, output
        first = client.images.get("sqlserver-backup-test/republished:test").id
        returncode, output = build(tmp_path / "build", *settings)
        assert returncode == 0, output
        assert changed_count(output) == 0, output
        publish(b"republished under the same URL")
        returncode, output = build(tmp_path / "build", *settings)
        assert returncode == 0, output
        assert client.images.get("sqlserver-backup-test/republished:test").id != first
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove("sqlserver-backup-test/republished:test", force=True)


@pytest.mark.parametrize("extension", ["tar", "tar.gz", "tar.zst", "tar.xz"])
def test_every_offered_compress_type_archives_in_the_image(
    client: docker.DockerClient, build_dir: Path, extension: str
) -> None:
    # GoBackup archives with `tar -a -cf <name>.<extension> <model>`, and tar
    # runs gzip, zstd or xz for the compressed types.
    script = (
        "cd /tmp/gobackup && mkdir -p sales/mssql && echo data > sales/mssql/db.bacpac"
        f" && tar -a -cf a.{extension} sales && tar -tf a.{extension}"
    )
    listing = client.containers.run(IMAGE, entrypoint=["sh", "-c", script], remove=True)
    assert "sales/mssql/db.bacpac" in listing.decode()


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
        wait_until(
            lambda: container.exec_run(["/usr/local/bin/docker-healthcheck"]).exit_code == 0,
            lambda: container.logs().decode(),
            30,
            interval=0.5,
        )
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


def test_the_proof_programs_are_in_the_image(client: docker.DockerClient, build_dir: Path) -> None:
    script = "backup-status --help && backup-coverage --help && backup-proof-scheduler --help"
    output = client.containers.run(IMAGE, entrypoint=["sh", "-c", script], remove=True).decode()
    for program in ("backup-status", "backup-coverage", "backup-proof-scheduler"):
        assert f"usage: {program} " in output


def test_the_proof_scheduler_runs_beside_the_scheduler(running) -> None:
    processes = running.exec_run(["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"]).output.decode()
    assert "/usr/local/bin/backup-proof-scheduler --config /var/lib/gobackup/gobackup.yml" in processes
    wait_until(
        lambda: "backup-proof-scheduler: no drill_schedule or coverage schedule" in running.logs().decode(),
        lambda: running.logs().decode(),
        20,
        interval=0.5,
    )


def test_docker_stop_reaches_gobackup(running) -> None:
    running.stop(timeout=20)
    running.reload()
    # 137 would mean Docker had to kill it: the signal never reached GoBackup.
    assert running.attrs["State"]["ExitCode"] == 0


EXAMPLES_PROJECT = "sqlserver-backup-test-examples"


def compose_examples(directory: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "compose", "-p", EXAMPLES_PROJECT, "--project-directory", str(directory), *arguments],
        env={**os.environ, "BACKUP_IMAGE": IMAGE},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_examples_run_the_image_without_ansible(
    client: docker.DockerClient, build_dir: Path, tmp_path: Path
) -> None:
    """examples/compose.yml with examples/.env: its placeholders are refused,
    naming each; filled in, the container starts and turns healthy (nothing it
    names can be reached here: the scheduler starts anyway and says so)."""
    directory = tmp_path / "examples"
    shutil.copytree(REPO / "examples", directory)
    container = f"{EXAMPLES_PROJECT}-backup-1"
    try:
        started = compose_examples(directory, "up", "-d")
        assert started.returncode == 0, started.stderr
        refused = wait_until(
            lambda: (
                "still holds the placeholder CHANGE_ME" in (log := client.containers.get(container).logs().decode())
                and log
            ),
            lambda: client.containers.get(container).logs().decode(),
            60,
            interval=0.5,
        )
        for name in ("MSSQL_PASSWORD", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"):
            assert f"{name} still holds the placeholder CHANGE_ME" in refused
        settings = (directory / ".env").read_text()
        (directory / ".env").write_text(settings.replace("CHANGE_ME", "Example-Secret-1"))
        recreated = compose_examples(directory, "up", "-d", "--force-recreate")
        assert recreated.returncode == 0, recreated.stderr
        backup = client.containers.get(container)
        wait_until(
            lambda: backup.exec_run(["/usr/local/bin/docker-healthcheck"]).exit_code == 0,
            lambda: backup.logs().decode(),
            90,
            interval=1,
        )
        log = backup.logs().decode()
        assert "starting the scheduler anyway" in log
        assert "starting the GoBackup scheduler (TZ=Europe/Berlin)" in log
        assert "Example-Secret-1" not in log
    finally:
        compose_examples(directory, "down", "-v")
