"""Alerts: the backup_config role's notifier settings rendered, the image's
notification relay and GoBackup's notifiers, against a webhook receiver run by
the test. One lean stack per module: the SQL Server stand-in, MinIO, the
receiver and once-mode runs of the backup image (tag of its own)."""

from __future__ import annotations

import contextlib
import datetime
import email
import email.policy
import http.server
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import docker
import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from minio import Minio
from sqlserver_backup_testing import (
    REPO,
    VENV_BIN,
    ansible_playbook,
    dev_playbook,
    free_port,
    prepare_standins,
    wait_until,
)

PREFIX = "sqlserver-backup-notify"
IMAGE = "sqlserver-backup:notify"
NETWORK, SUBNET = f"{PREFIX}-net", "10.213.90.0/24"
MINIO_PORT = 31947
SA_PASSWORD = "Notify-Sa-Passw0rd1"
MINIO_USER, MINIO_PASSWORD = "notify-root", "Notify-Minio-Secret1"
WEBHOOK_TOKEN = "hook-token-0123456789"
HEADER_TOKEN = "Bearer header-token-98765"
SLACK_URL = "http://receiver:8080/slack/T0000/B0000/slack-secret-token"
# Every secret of the stack; the webhook's own URL and header reach only the webhook.
FAILED = "[GoBackup] Err: Backup alerts has failed"  # GoBackup's title of a failed run
SECRETS = [SA_PASSWORD, MINIO_PASSWORD, "slack-secret-token", "Wrong-Passw0rd-Leak"]
RECEIVER = """
import http.server, json, pathlib
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers['Content-Length'])).decode()
        record = {'path': self.path, 'headers': dict(self.headers), 'body': body}
        with open('/received/requests.jsonl', 'a') as out:
            out.write(json.dumps(record) + '\\n')
        self.send_response(200); self.end_headers()
http.server.HTTPServer(('0.0.0.0', 8080), Handler).serve_forever()
"""


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    return docker.from_env()


def remove_stack(client: docker.DockerClient) -> None:
    for container in client.containers.list(all=True, filters={"label": PREFIX}):
        container.remove(force=True, v=True)
    for network in client.networks.list(names=[NETWORK]):
        network.remove()


@pytest.fixture(scope="module")
def stack(client: docker.DockerClient, tmp_path_factory):
    """Builds the image (tag of this module) and starts SQL Server, MinIO and
    the receiver on a network of their own."""
    build_dir = tmp_path_factory.mktemp("build")
    prepare_standins()
    built = dev_playbook(
        "build.yml", {"backup_image_build_dir": str(build_dir), "backup_image_tag": IMAGE.split(":")[1]}
    )
    assert built.returncode == 0, built.stdout[-3000:]
    remove_stack(client)
    client.networks.create(
        NETWORK,
        ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=SUBNET)]),
        labels={PREFIX: "1"},
    )
    received = tmp_path_factory.mktemp("received")
    received.chmod(0o777)
    run = {"detach": True, "network": NETWORK, "labels": {PREFIX: "1"}}
    mssql = client.containers.run(
        "sqlserver-backup-test/mssql-standin:latest",
        name=f"{PREFIX}-mssql",
        hostname="mssql",
        environment={"ACCEPT_EULA": "Y", "MSSQL_SA_PASSWORD": SA_PASSWORD},
        networking_config={NETWORK: client.api.create_endpoint_config(aliases=["mssql"])},
        **run,
    )
    client.containers.run(
        "sqlserver-backup/minio:2026-02-12",
        ["server", "/data", "--address", ":9000"],
        name=f"{PREFIX}-minio",
        environment={"MINIO_ROOT_USER": MINIO_USER, "MINIO_ROOT_PASSWORD": MINIO_PASSWORD},
        ports={"9000/tcp": ("127.0.0.1", MINIO_PORT)},
        networking_config={NETWORK: client.api.create_endpoint_config(aliases=["minio"])},
        **run,
    )
    client.containers.run(
        IMAGE,
        ["python3", "-c", RECEIVER],
        entrypoint=[],
        name=f"{PREFIX}-receiver",
        volumes={str(received): {"bind": "/received", "mode": "rw"}},
        networking_config={NETWORK: client.api.create_endpoint_config(aliases=["receiver"])},
        **run,
    )
    sqlcmd = ["/opt/mssql-tools18/bin/sqlcmd", "-C", "-S", "localhost", "-U", "sa", "-b"]

    def sql(query: str) -> bool:
        return mssql.exec_run([*sqlcmd, "-Q", query], environment={"SQLCMDPASSWORD": SA_PASSWORD}).exit_code == 0

    wait_until(lambda: sql("SELECT 1"), "SQL Server stand-in answers", interval=0.2)
    assert sql("CREATE DATABASE NotifyDemo")
    minio = Minio(f"127.0.0.1:{MINIO_PORT}", MINIO_USER, MINIO_PASSWORD, secure=False)

    def minio_ready() -> bool:
        with contextlib.suppress(Exception):
            minio.make_bucket("notify")
            return True
        return False

    wait_until(minio_ready, "MinIO answers", interval=0.2)
    yield received / "requests.jsonl"
    remove_stack(client)


def render(tmp_path: Path, **settings) -> tuple[Path, str]:
    """Renders gobackup.yml and .env with the role; returns the folder and
    everything Ansible printed."""
    inventory = tmp_path / "hosts.yml"
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory.write_text(yaml.safe_dump({"backup_hosts": {"hosts": {"notify": host}}}), encoding="utf-8")
    config = tmp_path / "config"
    variables = {
        "backup_config_dir": str(config),
        "backup_config_databases": [
            {"name": "alerts", "database": "NotifyDemo", "host": "mssql", "password": SA_PASSWORD}
        ],
        "backup_config_mssql_trust_server_certificate": True,
        # Restores are not what these tests are about; a server that is not the source.
        "backup_config_restore_host": "mssql-restore",
        "backup_config_minio_endpoint": "http://minio:9000",
        "backup_config_minio_bucket": "notify",
        "backup_config_minio_access_key": MINIO_USER,
        "backup_config_minio_secret_key": MINIO_PASSWORD,
        "backup_config_local_keep": 0,
        "backup_config_notify_webhook_url": f"http://receiver:8080/hook/{WEBHOOK_TOKEN}",
        "backup_config_notify_webhook_headers": {"Authorization": HEADER_TOKEN},
        "backup_config_notify_slack_url": SLACK_URL,
        **settings,
    }
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps(variables), encoding="utf-8")
    result = ansible_playbook(
        "-i", str(inventory), "-e", f"@{extra}", str(REPO / "tests" / "playbooks" / "render_config.yml")
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    return config, output


def received(requests: Path) -> list[dict]:
    if not requests.is_file():
        return []
    return [json.loads(line) for line in requests.read_text(encoding="utf-8").splitlines()]


def perform(client: docker.DockerClient, config: Path, tmp_path: Path) -> tuple[int, str]:
    """One once-mode run of the backup image with the rendered config."""
    work = tmp_path / "work"
    work.mkdir()
    work.chmod(0o777)
    container = client.containers.run(
        IMAGE,
        detach=True,
        environment={"RUN_MODE": "once"},
        network=NETWORK,
        labels={PREFIX: "1"},
        volumes={
            str(config): {"bind": "/etc/gobackup", "mode": "ro"},
            str(work): {"bind": "/tmp/gobackup", "mode": "rw"},
        },
    )
    try:
        status = container.wait(timeout=120)["StatusCode"]
        return status, container.logs().decode()
    finally:
        container.remove(force=True)


@pytest.fixture
def requests(stack: Path) -> Path:
    """The receiver's record, emptied for each test."""
    stack.unlink(missing_ok=True)
    return stack


def test_the_role_keeps_the_channels_secrets_in_env_only(tmp_path) -> None:
    config, output = render(tmp_path)
    gobackup = (config / "gobackup.yml").read_text(encoding="utf-8")
    notifiers = yaml.safe_load(gobackup)["models"]["alerts"]["notifiers"]
    assert notifiers == {
        channel: {"type": "webhook", "url": f"http://127.0.0.1:2704/{channel}", "on_success": False, "on_failure": True}
        for channel in ("webhook", "slack")
    }
    dotenv = (config / ".env").read_text(encoding="utf-8")
    assert oct((config / ".env").stat().st_mode & 0o777) == "0o600"
    for secret in (WEBHOOK_TOKEN, HEADER_TOKEN, SLACK_URL):
        assert secret in dotenv
        assert secret not in gobackup
        assert secret not in output, "Ansible printed a channel's secret"


def test_a_mail_setting_that_does_not_fit_is_named_by_its_variable(tmp_path) -> None:
    variables = {"backup_config_notify_smtp_host": "smtp.example.com", "backup_config_notify_smtp_to": ["ops"]}
    inventory_vars = tmp_path / "bad"
    inventory_vars.mkdir()
    with pytest.raises(AssertionError) as failure:
        render(inventory_vars, **variables)
    message = str(failure.value)
    assert "NOTIFY_SMTP_FROM (set by backup_config_notify_smtp_from) is not set" in message
    assert "backup_config_notify_smtp_to" in message


def test_a_failed_run_notifies_within_the_run_without_a_secret(stack, requests, client, tmp_path) -> None:
    config, _ = render(
        tmp_path,
        backup_config_databases=[
            {"name": "alerts", "database": "NotifyDemo", "host": "mssql", "password": "Wrong-Passw0rd-Leak"}
        ],
    )
    status, log = perform(client, config, tmp_path)
    assert status == 1, log
    got = received(requests)
    assert sorted(request["path"] for request in got) == [f"/hook/{WEBHOOK_TOKEN}", SLACK_URL.split(":8080")[1]], log
    hook = next(request for request in got if request["path"].startswith("/hook/"))
    body = json.loads(hook["body"])
    assert body["title"] == "[GoBackup] Err: Backup alerts has failed"
    assert "Login failed for user 'sa'" in body["message"]
    assert hook["headers"]["Authorization"] == HEADER_TOKEN
    slack = next(request for request in got if request["path"].startswith("/slack/"))
    assert json.loads(slack["body"])["text"].startswith("[GoBackup] Err: Backup alerts has failed\n\n")
    for request in got:
        for secret in SECRETS:
            assert secret not in request["body"]
            assert secret not in json.dumps(request["headers"])
        if request is slack:
            assert WEBHOOK_TOKEN not in json.dumps(request)
            assert HEADER_TOKEN not in json.dumps(request)
    # Neither the webhook's token nor the Slack URL reaches GoBackup's log.
    assert WEBHOOK_TOKEN not in log
    assert "slack-secret-token" not in log
    assert "notify-relay: webhook notification sent" in log


def test_a_successful_run_notifies_nothing_when_failure_only(stack, requests, client, tmp_path) -> None:
    config, _ = render(tmp_path)
    status, log = perform(client, config, tmp_path)
    assert status == 0, log
    assert received(requests) == []


def test_every_run_notifies_ok(stack, requests, client, tmp_path) -> None:
    config, _ = render(tmp_path, backup_config_notify_on="always", backup_config_notify_slack_url="")
    status, log = perform(client, config, tmp_path)
    assert status == 0, log
    [hook] = received(requests)
    assert json.loads(hook["body"])["title"] == "[GoBackup] OK: Backup alerts has successfully"


def relay_one_failure(config: Path, port: int, channel: str, reason: str, **environment: str) -> str:
    """Runs the image's notify-relay here on the rendered config, posts one
    failure to it on `channel` as GoBackup's notifier would, and returns what
    the relay logged; the relay must answer 200 (sent)."""
    relay = subprocess.Popen(
        [str(VENV_BIN / "notify-relay"), str(config / "gobackup.yml")],
        env={**os.environ, **environment},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, "the relay listens", 10, interval=0.2)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/{channel}", data=json.dumps({"title": FAILED, "message": reason}).encode()
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - a loopback http URL
            assert response.status == 200
    finally:
        relay.terminate()
        _, log = relay.communicate(timeout=10)
    return log


def test_the_relay_removes_every_secret_from_what_it_forwards(tmp_path) -> None:
    """GoBackup's reason can quote a secret (openssl's -k password, a URL):
    the relay sends none of them on, plain or URL-encoded."""
    got: list[dict] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    receiver = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    port = free_port()
    password, key = "Pa ss/w0rd&x", "Minio-Secret-Key-1"
    config, _ = render(
        tmp_path,
        backup_config_notify_webhook_url=f"http://127.0.0.1:{receiver.server_port}/hook",
        backup_config_notify_slack_url="",
        backup_config_notify_relay_port=port,
        backup_config_minio_secret_key=key,
        backup_config_databases=[{"name": "alerts", "database": "NotifyDemo", "host": "mssql", "password": "Sa-1"}],
    )
    reason = f"openssl -k {key} failed; login Sa-1; {password}; {urllib.parse.quote(password, safe='')}"
    try:
        relay_one_failure(config, port, "webhook", reason, MSSQL_PASSWORD=password)
    finally:
        receiver.shutdown()
    [sent] = got
    assert sent["title"] == FAILED
    assert sent["message"] == "openssl -k [redacted] failed; login [redacted]; [redacted]; [redacted]"


def certificate_authority(folder: Path) -> tuple[Path, ssl.SSLContext]:
    """A CA file and an SSL context whose certificate it signed for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail test CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "server.pem", folder / "server.key")
    return folder / "ca.pem", context


def test_mail_goes_out_over_starttls_with_a_login_and_without_a_secret(tmp_path) -> None:
    """The mail channel end to end: the relay logs in to an SMTP server (run
    by the test, STARTTLS required, its certificate from a CA the relay is told
    to trust through SSL_CERT_FILE, as the container is) and sends the
    failure with every secret removed."""
    ca_file, tls = certificate_authority(tmp_path)
    smtp_user, smtp_password = "backup-alerts", "Smtp-Passw0rd-Secret"
    logins: list[str] = []
    mails: list[tuple[list[str], email.message.EmailMessage]] = []

    def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            smtp_user.encode(),
            smtp_password.encode(),
        )
        logins.append("ok" if ok and session.ssl is not None else "refused")
        return AuthResult(success=ok)

    class Handler:
        async def handle_DATA(self, server, session, envelope) -> str:
            mails.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content, policy=email.policy.default)))
            return "250 OK"

    smtp_port = free_port()
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=smtp_port,
        tls_context=tls,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticate,
    )
    controller.start()
    relay_port = free_port()
    config, output = render(
        tmp_path,
        backup_config_notify_webhook_url="",
        backup_config_notify_slack_url="",
        backup_config_notify_smtp_host="127.0.0.1",
        backup_config_notify_smtp_port=smtp_port,
        backup_config_notify_smtp_username=smtp_user,
        backup_config_notify_smtp_password=smtp_password,
        backup_config_notify_smtp_from="backups@example.com",
        backup_config_notify_smtp_to=["dba@example.com", "oncall@example.com"],
        backup_config_notify_relay_port=relay_port,
    )
    assert smtp_password not in output, "Ansible printed the SMTP password"
    assert smtp_password not in (config / "gobackup.yml").read_text(encoding="utf-8")
    reason = f"-> Dump error: Login failed; smtp {smtp_password}; sa {SA_PASSWORD}"
    try:
        relay_log = relay_one_failure(config, relay_port, "mail", reason, SSL_CERT_FILE=str(ca_file))
    finally:
        controller.stop()
    assert logins == ["ok"], "one login, inside TLS"
    [(recipients, mail)] = mails
    assert recipients == ["dba@example.com", "oncall@example.com"]
    assert mail["Subject"] == FAILED
    assert mail["From"] == "backups@example.com"
    body = mail.get_content()
    assert "-> Dump error: Login failed" in body
    assert smtp_password not in body
    assert SA_PASSWORD not in body
    assert "notify-relay: mail notification sent" in relay_log
    assert smtp_password not in relay_log
