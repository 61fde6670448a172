"""Prometheus metrics of the backups on a stack of its own (deployed by
playbooks/deploy.yml with metrics on): the one port the backup container
publishes serves them and survives a restart, while GoBackup's /api/* stays
unreachable from outside; with the web configuration, HTTPS and a user, which
a real Prometheus scrapes. The exporter itself: tests/unit/test_metrics.py
and tests/unit/test_metrics_web.py."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import bcrypt
import docker
import pytest
import requests
import yaml
from minio import Minio
from sqlserver_backup_testing import (
    dev_playbook,
    dev_stack_vars,
    free_port,
    request,
    scrape_metrics,
    scratch_stack,
    self_signed_certificate,
    stack_names,
    wait_until,
)

METRICS_PORT = 31649
MINIO_PORT = 31648
BUCKET = "sqlserver-backups"
STACK_VARS = {
    **dev_stack_vars("metrics", mssql_port=31647, minio_port=MINIO_PORT),
    "backup_image_tag": "metrics",
    "backup_stack_metrics_enabled": True,
    "backup_stack_metrics_port": METRICS_PORT,
}
PROJECT = STACK_VARS["backup_stack_project"]
ROOT = Path(STACK_VARS["backup_stack_dir"]).parent
NAMES = stack_names(STACK_VARS)
BACKUP, MINIO = NAMES.backup, NAMES.minio
PREFIX = f"{STACK_VARS['backup_config_minio_path_prefix']}/localhost"
OUTPUTS: list[str] = []
SCRAPE_PASSWORD = "Scrape-Passw0rd-31649"


def deploy(**overrides: object) -> None:
    result = dev_playbook("deploy.yml", STACK_VARS, overrides)
    OUTPUTS.append(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout[-4000:]


@pytest.fixture(scope="module")
def stack():
    with scratch_stack(STACK_VARS):
        deploy()
        yield docker.from_env()


def wait_for(condition, what: str, seconds: float = 120) -> dict[str, float]:
    """The samples of the first scrape that satisfies condition."""

    def satisfying() -> dict[str, float]:
        try:
            values = scrape_metrics(METRICS_PORT)
        except OSError:
            return {}
        return values if values and condition(values) else {}

    return wait_until(satisfying, what, seconds, interval=0.5)


def perform_in_scheduler(client: docker.DockerClient, model: str) -> None:
    """A run of the scheduler itself, through its loopback API inside the
    container (a `docker exec gobackup perform` is a process of its own)."""
    code = (
        "import urllib.request; urllib.request.urlopen(urllib.request.Request("
        f"'http://127.0.0.1:2703/api/perform', data=b'model={model}'), timeout=10)"
    )
    result = client.containers.get(BACKUP).exec_run(["python3", "-c", code])
    assert result.exit_code == 0, result.output.decode()


SUCCESS = 'sqlserver_backup_last_success_timestamp_seconds{model="sales"}'
FAILURE = 'sqlserver_backup_last_failure_timestamp_seconds{model="sales"}'
DURATION = 'sqlserver_backup_last_duration_seconds{model="sales"}'
SIZE = 'sqlserver_backup_last_archive_size_bytes{model="sales"}'


def test_a_success_then_a_failure_of_a_model(stack: docker.DockerClient) -> None:
    before = wait_for(lambda values: values["sqlserver_backup_scheduler_up"] == 1, "the scheduler is read")
    perform_in_scheduler(stack, "sales")
    done = wait_for(lambda v: v[SUCCESS] > before[SUCCESS] and SIZE in v, "the success and the archive's size")
    assert done[FAILURE] == 0
    assert done[DURATION] > 0
    password = (ROOT / "secrets" / "minio_root_password").read_text().split()[0]
    bucket = Minio(f"127.0.0.1:{MINIO_PORT}", "minio-admin", password, secure=False)
    objects = {o.object_name: o.size for o in bucket.list_objects(BUCKET, prefix=f"{PREFIX}/sales/")}
    newest = max(name for name in objects if name.endswith(".tar"))
    assert done[SIZE] == objects[newest], "the size of the archive in MinIO"
    assert done['gobackup_total_attempts{model="sales",status="success"}'] >= 1

    stack.containers.get(MINIO).stop(timeout=5)
    try:
        perform_in_scheduler(stack, "sales")
        failed = wait_for(lambda v: v[FAILURE] > done[SUCCESS], "the failure while MinIO is down")
    finally:
        stack.containers.get(MINIO).start()
    assert failed[SUCCESS] == done[SUCCESS]
    assert failed[SIZE] == done[SIZE], "the size stays that of the last archive"
    assert failed[FAILURE] >= failed[SUCCESS]
    assert failed[DURATION] > 0
    assert failed['gobackup_total_attempts{model="sales",status="failure"}'] == 1


def test_only_metrics_answer_from_outside(stack: docker.DockerClient) -> None:
    backup = stack.containers.get(BACKUP)
    address = next(iter(backup.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
    assert backup.attrs["HostConfig"]["PortBindings"] == {
        f"{METRICS_PORT}/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(METRICS_PORT)}]
    }, "the metrics port is the only one published"
    for host in ("127.0.0.1", address):
        assert request(host, METRICS_PORT, "/metrics")[0] == 200
        for path in ("/api/config", "/api/list?model=sales", "/api/log", "/status", "/", "/index.html", "/x"):
            assert request(host, METRICS_PORT, path)[0] == 404, f"{host} {path}"
        assert request(host, METRICS_PORT, "/api/perform", "POST")[0] == 404
        with pytest.raises(ConnectionRefusedError):
            request(host, 2703, "/api/config")
    inside = backup.exec_run(["python3", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:2703/status')"])
    assert inside.exit_code == 0, "GoBackup's web server is still there for the health check, on the loopback"


def test_the_metrics_outlive_a_restart(stack: docker.DockerClient) -> None:
    before = scrape_metrics(METRICS_PORT)
    stack.containers.get(BACKUP).restart(timeout=30)
    after = wait_for(lambda values: values["sqlserver_backup_scheduler_up"] == 1, "metrics after the restart")
    for name in (SUCCESS, FAILURE, DURATION, SIZE):
        assert after[name] == before[name], name
    logs = stack.containers.get(BACKUP).logs().decode()
    assert f"backup-metrics: serving /metrics on 0.0.0.0:{METRICS_PORT}" in logs
    assert "Traceback" not in logs
    secrets = [path.read_text().split()[0] for path in (ROOT / "secrets").iterdir()]
    assert not [value for value in secrets if value in logs + "\n".join(OUTPUTS)]


def test_tls_and_authentication_recreate_the_container_once_and_prometheus_scrapes_them(
    stack: docker.DockerClient, tmp_path: Path
) -> None:
    """No handler restarts the container: backup_stack's digest label of the
    configuration files makes the start recreate it, once. The change here is
    the metrics' web configuration: HTTPS and a user, as a remote Prometheus
    scrapes them."""
    original = stack.containers.get(BACKUP).id
    deploy()
    assert stack.containers.get(BACKUP).id == original, "a re-deploy without a change keeps the container"
    cert, key = self_signed_certificate("127.0.0.1")
    (tmp_path / "ca.crt").write_text(cert)
    hashed = bcrypt.hashpw(SCRAPE_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    since = int(time.time())
    # The stack is left with TLS: no later test here scrapes it (the next one
    # deploys without metrics).
    deploy(
        backup_config_metrics_web_config={
            "tls_server_config": {"cert": cert, "key": key},
            "basic_auth_users": {"prometheus": hashed},
        }
    )
    changed = stack.containers.get(BACKUP)
    assert changed.id != original
    assert changed.attrs["RestartCount"] == 0
    label = f"com.docker.compose.project={PROJECT}"
    events = stack.events(since=since, until=int(time.time()) + 1, decode=True, filters={"label": label})
    starts = [event for event in events if event.get("status") == "start"]
    assert len(starts) == 1, starts
    mode = changed.exec_run(["stat", "-c", "%a %u", "/etc/gobackup/metrics-web.yml"]).output.decode().split()
    assert mode == ["600", "10001"], "it holds the TLS key"

    url = f"https://127.0.0.1:{METRICS_PORT}/metrics"
    trusted = str(tmp_path / "ca.crt")

    def status(auth: tuple[str, str] | None = None) -> int:
        with contextlib.suppress(requests.ConnectionError):  # the exporter is starting
            return requests.get(url, auth=auth, verify=trusted, timeout=10).status_code
        return 0

    wait_until(lambda: status(("prometheus", SCRAPE_PASSWORD)) == 200, "the metrics over HTTPS", 60, interval=0.5)
    assert status() == 401
    assert status(("prometheus", "wrong")) == 401
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=10)
    logs = changed.logs().decode()
    assert f"backup-metrics: serving /metrics on 0.0.0.0:{METRICS_PORT} (TLS, basic authentication)" in logs
    assert key.splitlines()[1] not in logs + "\n".join(OUTPUTS), "the TLS key is in no output"

    # Debian's Prometheus, as a remote one would scrape: https, the CA, a user.
    port = free_port()
    config = tmp_path / "prometheus.yml"
    job = {
        "job_name": "sqlserver-backup",
        "scheme": "https",
        "tls_config": {"ca_file": str(tmp_path / "ca.crt")},
        "basic_auth": {"username": "prometheus", "password": SCRAPE_PASSWORD},
        "static_configs": [{"targets": [f"127.0.0.1:{METRICS_PORT}"]}],
    }
    config.write_text(yaml.safe_dump({"global": {"scrape_interval": "1s"}, "scrape_configs": [job]}))
    command = ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}"]
    process = subprocess.Popen([*command, f"--web.listen-address=127.0.0.1:{port}"], stderr=subprocess.DEVNULL)
    try:
        query = f"http://127.0.0.1:{port}/api/v1/query"

        def scraped() -> list:
            with contextlib.suppress(requests.RequestException, ValueError):
                found = requests.get(query, params={"query": "sqlserver_backup_scheduler_up"}, timeout=5).json()
                return found["data"]["result"]
            return []

        [sample] = wait_until(scraped, "Prometheus scraped the metrics over HTTPS with its user", 60, interval=0.5)
        assert sample["value"][1] == "1"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_without_metrics_no_port_is_published(stack: docker.DockerClient) -> None:
    deploy(backup_stack_metrics_enabled=False)
    backup = stack.containers.get(BACKUP)
    assert not backup.attrs["HostConfig"]["PortBindings"]
    assert not backup.attrs["Config"].get("ExposedPorts")
    assert not any(value.startswith("METRICS_PORT=") for value in backup.attrs["Config"]["Env"])
    processes = backup.exec_run(["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"]).output.decode()
    assert "backup-metrics" not in processes
