"""The container registry for connected sites: playbooks/registry.yml builds
the distribution project's registry from pinned source (registry_image) and
runs it on the local Docker engine with TLS from a CA made here and htpasswd
users (registry); curl-like requests and Docker itself push and pull."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from base64 import b64encode
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import docker
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlserver_backup_testing import REPO, ansible_playbook, base_image, collection_plugin, local_playbook, said

registry_htpasswd = collection_plugin("filter", "registry_htpasswd")

PREFIX = "sqlserver-backup-regtest"
PORT = 25443
ADDRESS = f"127.0.0.1:{PORT}"
CONTAINER = f"{PREFIX}-registry"
VOLUME = f"{PREFIX}-registry-data"
IMAGE_NAME = f"{PREFIX}/registry"
IMAGE = f"{IMAGE_NAME}:3.1.2"
# A repository of its own per run (see the push test).
REPOSITORY = f"regtest/base-{secrets.token_hex(4)}"
PUSHED = f"{ADDRESS}/{REPOSITORY}:1"
USERS = {"pusher": "Pu5h-Only-Passw0rd-x1", "site": "S1te-Only-Passw0rd-y2"}
NEW_SITE_PASSWORD = "R3ad-Rotated-Passw0rd-z3"
OUTPUTS: list[str] = []  # everything Ansible printed, checked for secrets at the end
SEEN_SECRETS: set[str] = set()  # hashes and key lines written during the tests


def name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclass
class CertificateAuthority:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    path: Path

    @classmethod
    def create(cls, directory: Path) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name("sqlserver-backup test registry CA"))
            .issuer_name(name("sqlserver-backup test registry CA"))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256())
        )
        path = directory / "ca.pem"
        path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return cls(certificate, key, path)

    def issue(self, directory: Path, stem: str) -> tuple[Path, Path, bytes]:
        """A server certificate for 127.0.0.1 and its key, as PEM files; also
        the certificate's DER to compare with what the registry serves."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name("127.0.0.1"))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        certificate_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
        certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        key_path.write_bytes(key_pem)
        key_path.chmod(0o600)
        SEEN_SECRETS.update(line for line in key_pem.decode().splitlines() if not line.startswith("-----"))
        return certificate_path, key_path, certificate.public_bytes(serialization.Encoding.DER)


@dataclass
class Site:
    """Everything a run of playbooks/registry.yml against this machine needs."""

    directory: Path
    ca: CertificateAuthority
    inventory: Path
    variables: dict
    certificate_der: bytes
    runs: list[subprocess.CompletedProcess[str]] = field(default_factory=list)

    @property
    def host_dir(self) -> Path:
        return Path(self.variables["registry_dir"])

    def run(self, overrides: dict | None = None, *arguments: str) -> subprocess.CompletedProcess[str]:
        variables = self.directory / "variables.json"
        variables.write_text(json.dumps({**self.variables, **(overrides or {})}))
        result = ansible_playbook(
            "-v", "-i", str(self.inventory), "-e", f"@{variables}", *arguments, str(REPO / "playbooks" / "registry.yml")
        )
        OUTPUTS.append(result.stdout + result.stderr)
        self.runs.append(result)
        return result


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    return docker.from_env()


def remove_everything(client: docker.DockerClient) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        client.containers.get(CONTAINER).remove(force=True)
    with contextlib.suppress(docker.errors.NotFound):
        client.volumes.get(VOLUME).remove(force=True)
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(IMAGE, force=True)
    # Only the reference: the image itself is the test base image.
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(PUSHED)


@pytest.fixture(scope="module")
def site(tmp_path_factory, client: docker.DockerClient) -> Site:
    directory = tmp_path_factory.mktemp("registry")
    ca = CertificateAuthority.create(directory)
    certificate, key, certificate_der = ca.issue(directory, "server")
    inventory = directory / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "registry_hosts": {
                    "hosts": {
                        "localhost": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": sys.executable,
                            "ansible_become": False,
                        }
                    }
                }
            }
        )
    )
    variables = {
        "registry_image_base": base_image("registry_image"),
        "registry_image_name": IMAGE_NAME,
        "registry_image_build_dir": str(directory / "build"),
        "registry_container_name": CONTAINER,
        "registry_volume": VOLUME,
        "registry_dir": str(directory / "host"),
        "registry_listen_address": "127.0.0.1",
        "registry_port": PORT,
        "registry_tls_certificate": str(certificate),
        "registry_tls_key": str(key),
        "registry_users": [{"name": user, "password": password} for user, password in USERS.items()],
    }
    return Site(directory, ca, inventory, variables, certificate_der)


@pytest.fixture(scope="module")
def registry(site: Site, client: docker.DockerClient):
    """The registry deployed twice by the playbook; removed with its volume,
    image and pushed tag afterwards."""
    try:
        client.images.get(site.variables["registry_image_base"])
    except docker.errors.ImageNotFound:
        prepared = ansible_playbook(str(REPO / "tests" / "playbooks" / "prepare_standins.yml"))
        assert prepared.returncode == 0, prepared.stdout[-3000:]
    remove_everything(client)
    first = site.run()
    assert first.returncode == 0, first.stdout[-4000:]
    second = site.run()
    assert second.returncode == 0, second.stdout[-4000:]
    record_htpasswd(site)
    yield site
    remove_everything(client)


def record_htpasswd(site: Site) -> dict[str, str]:
    entries = dict(line.split(":", 1) for line in (site.host_dir / "auth" / "htpasswd").read_text().splitlines())
    SEEN_SECRETS.update(entries.values())
    return entries


def get(path: str, user: str | None = None, password: str | None = None, context: ssl.SSLContext | None = None):
    """Status and headers of a GET to the registry (urllib raises on 4xx)."""
    request = urllib.request.Request(f"https://{ADDRESS}{path}")
    request.add_header(
        "Accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
    )
    if user is not None:
        request.add_header("Authorization", "Basic " + b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:  # noqa: S310 - https only
            return response.status, response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.headers


def trusting(site: Site) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(site.ca.path))


def test_the_api_answers_only_a_user(registry: Site) -> None:
    status, headers = get("/v2/", context=trusting(registry))
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Basic realm="sqlserver-backup registry"'
    assert get("/v2/", "pusher", USERS["pusher"], trusting(registry))[0] == 200
    assert get("/v2/", "site", USERS["site"], trusting(registry))[0] == 200
    assert get("/v2/", "pusher", USERS["site"], trusting(registry))[0] == 401


def test_tls_is_verified_against_the_sites_ca(registry: Site) -> None:
    with pytest.raises(urllib.error.URLError) as failure:
        get("/v2/", "pusher", USERS["pusher"], ssl.create_default_context())
    assert isinstance(failure.value.reason, ssl.SSLCertVerificationError)
    tls = served(registry)
    assert tls["certificate"] == registry.certificate_der
    assert tls["version"] in ("TLSv1.2", "TLSv1.3")


def docker_cli(config: Path, *arguments: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The docker CLI with a config directory of its own: logins never reach ~/.docker."""
    return subprocess.run(
        ["docker", *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "DOCKER_CONFIG": str(config)},
    )


def served(site: Site) -> dict:
    """The certificate (DER) and TLS version the registry serves, verified with the site's CA."""
    with (
        socket.create_connection(("127.0.0.1", PORT), timeout=10) as raw,
        trusting(site).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return {"certificate": tls.getpeercert(binary_form=True), "version": tls.version()}


def test_docker_pushes_and_pulls_by_digest(registry: Site, client: docker.DockerClient, tmp_path: Path) -> None:
    config = tmp_path / "docker-config"
    config.mkdir()
    pulled = ""
    try:
        login = docker_cli(config, "login", ADDRESS, "-u", "pusher", "--password-stdin", stdin=USERS["pusher"])
        assert login.returncode == 0, login.stderr
        assert "Login Succeeded" in login.stdout
        client.images.get(registry.variables["registry_image_base"]).tag(PUSHED)
        push = docker_cli(config, "push", PUSHED)
        assert push.returncode == 0, push.stdout + push.stderr
        digest = re.search(r"digest: (sha256:[0-9a-f]{64})", push.stdout).group(1)
        client.images.remove(PUSHED)
        pulled = f"{PUSHED.rsplit(':', 1)[0]}@{digest}"

        status, headers = get(f"/v2/{REPOSITORY}/manifests/{digest}", "site", USERS["site"], trusting(registry))
        assert status == 200
        assert headers["Docker-Content-Digest"] == digest

        # The repository is new to this Docker engine, so it asks the registry
        # for the manifest (a digest it has pulled from a repository before is
        # served from its own content store).
        assert docker_cli(config, "logout", ADDRESS).returncode == 0
        anonymous = docker_cli(config, "pull", pulled)
        assert anonymous.returncode != 0
        assert "no basic auth credentials" in anonymous.stderr or "unauthorized" in anonymous.stderr

        login = docker_cli(config, "login", ADDRESS, "-u", "site", "--password-stdin", stdin=USERS["site"])
        assert login.returncode == 0, login.stderr
        pull = docker_cli(config, "pull", pulled)
        assert pull.returncode == 0, pull.stdout + pull.stderr
        assert f"Digest: {digest}" in pull.stdout
        assert pulled in client.images.get(registry.variables["registry_image_base"]).attrs["RepoDigests"]
    finally:
        docker_cli(config, "logout", ADDRESS)
        # Only the references: the image itself is the test base image.
        for reference in filter(None, (PUSHED, pulled)):
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(reference)


def test_a_second_run_changes_nothing(registry: Site) -> None:
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0\s", registry.runs[1].stdout), registry.runs[1].stdout[-3000:]


def test_the_container_is_hardened_and_owns_only_its_files(registry: Site, client: docker.DockerClient) -> None:
    container = client.containers.get(CONTAINER)
    attributes = container.attrs
    assert attributes["Config"]["User"] == "10003:10003"
    assert attributes["State"]["Health"]["Status"] == "healthy"
    host = attributes["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["RestartPolicy"]["Name"] == "unless-stopped"
    assert host["PortBindings"] == {"5000/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(PORT)}]}
    mounts = {mount["Destination"]: mount for mount in attributes["Mounts"]}
    assert mounts["/var/lib/registry"]["Name"] == VOLUME
    assert mounts["/etc/distribution/tls"]["RW"] is False
    assert mounts["/etc/distribution/auth"]["RW"] is False
    for path, mode in [("tls/key.pem", 0o600), ("auth/htpasswd", 0o600), ("tls/certificate.pem", 0o644)]:
        status = (registry.host_dir / path).stat()
        assert (status.st_mode & 0o777, status.st_uid, status.st_gid) == (mode, 10003, 10003), path
    hashes_ = record_htpasswd(registry)
    assert sorted(hashes_) == sorted(USERS)
    assert all(hashed.startswith("$2b$10$") for hashed in hashes_.values())


def test_new_passwords_and_certificates_reach_the_running_registry(
    registry: Site, client: docker.DockerClient, tmp_path: Path
) -> None:
    certificate, key, certificate_der = registry.ca.issue(tmp_path, "rotated")
    before = record_htpasswd(registry)
    started = client.containers.get(CONTAINER).attrs["State"]["StartedAt"]
    users = [{"name": "pusher", "password": USERS["pusher"]}, {"name": "site", "password": NEW_SITE_PASSWORD}]
    try:
        new_password = registry.run({"registry_users": users})
        assert new_password.returncode == 0, new_password.stdout[-3000:]
        after = record_htpasswd(registry)
        assert after["pusher"] == before["pusher"], "an unchanged password keeps its hash"
        assert after["site"] != before["site"]
        assert get("/v2/", "site", NEW_SITE_PASSWORD, trusting(registry))[0] == 200
        assert get("/v2/", "site", USERS["site"], trusting(registry))[0] == 401
        assert client.containers.get(CONTAINER).attrs["State"]["StartedAt"] == started, "users change without a restart"

        new_certificate = registry.run(
            {"registry_tls_certificate": str(certificate), "registry_tls_key": str(key), "registry_users": users}
        )
        assert new_certificate.returncode == 0, new_certificate.stdout[-3000:]
        assert served(registry)["certificate"] == certificate_der, "a new certificate recreates the container"
        assert record_htpasswd(registry) == after
    finally:
        restored = registry.run()
        assert restored.returncode == 0, restored.stdout[-3000:]
        record_htpasswd(registry)
    assert get("/v2/", "site", USERS["site"], trusting(registry))[0] == 200
    assert served(registry)["certificate"] == registry.certificate_der


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"registry_tls_certificate": ""}, "registry_tls_certificate and registry_tls_key must name PEM files"),
        ({"registry_tls_key": "/nonexistent/registry.key"}, 'registry_tls_key="/nonexistent/registry.key"'),
        ({"registry_users": []}, "registry_users must list at least one user"),
        (
            {"registry_users": [{"name": "pusher", "password": "CHANGE_ME"}]},
            "registry_users[0] (pusher).password still holds the placeholder CHANGE_ME",
        ),
        (
            {"registry_users": [{"name": "site:a", "password": "Str0ng-Passw0rd-q"}]},
            "registry_users[0].name must be a non-empty user name without ':' or whitespace",
        ),
        (
            {"registry_users": [{"name": "pusher", "password": "Long-Secret-" + "x" * 70}]},
            "registry_users[0] (pusher).password is longer than bcrypt's 72 bytes",
        ),
        ({"registry_port": 70000}, "registry_port must be a port (1-65535)"),
    ],
)
def test_bad_settings_are_named_before_anything_is_built(site: Site, overrides: dict, reason: str) -> None:
    result = site.run(overrides)
    assert result.returncode != 0
    assert said(result, reason), result.stdout[-3000:]
    assert "go_program_image" not in result.stdout, "the settings are checked before the build"
    assert "Long-Secret-" not in result.stdout + result.stderr
    assert "Str0ng-Passw0rd-q" not in result.stdout + result.stderr


def test_the_staging_example_refuses_its_placeholders(site: Site, tmp_path: Path) -> None:
    inventory = tmp_path / "staging"
    shutil.copytree(REPO / "inventories" / "staging", inventory)
    hosts = inventory / "hosts.yml"
    # The commented example, uncommented.
    example = re.compile(r"^# (registry_hosts:|  hosts:|    registry-staging)", flags=re.MULTILINE)
    hosts.write_text(example.sub(r"\1", hosts.read_text()))
    (inventory / "files").mkdir()
    site.ca.issue(inventory / "files", "registry-staging")
    password_file = tmp_path / "vault-password"
    password_file.write_text("example-vault-password")  # documented in the README
    result = local_playbook("registry.yml", inventory, "--vault-password-file", str(password_file))
    assert result.returncode != 0
    assert said(result, "registry_users[0] (publisher).password still holds the placeholder CHANGE_ME"), result.stdout
    assert said(result, "registry_users[1] (site).password still holds the placeholder CHANGE_ME")


USERS_LIST = [{"name": user, "password": password} for user, password in USERS.items()]


def test_htpasswd_keeps_each_hash_while_its_password_verifies() -> None:
    first = registry_htpasswd.registry_htpasswd(USERS_LIST, "", 4)
    assert registry_htpasswd.registry_htpasswd(USERS_LIST, first, 4) == first
    entries = dict(line.split(":", 1) for line in first.splitlines())
    assert all(bcrypt.checkpw(USERS[user].encode(), hashed.encode()) for user, hashed in entries.items())

    changed = [USERS_LIST[0], {"name": "site", "password": NEW_SITE_PASSWORD}]
    second = dict(line.split(":", 1) for line in registry_htpasswd.registry_htpasswd(changed, first, 4).splitlines())
    assert second["pusher"] == entries["pusher"]
    assert bcrypt.checkpw(NEW_SITE_PASSWORD.encode(), second["site"].encode())

    costlier = dict(line.split(":", 1) for line in registry_htpasswd.registry_htpasswd(USERS_LIST, first, 5).split())
    assert all(hashed.startswith("$2b$05$") for hashed in costlier.values()), "a new cost rehashes"
    only_pusher = registry_htpasswd.registry_htpasswd(USERS_LIST[:1], first, 4)
    assert only_pusher == f"pusher:{entries['pusher']}\n", "a removed user is gone"


def test_user_problems_never_name_a_password() -> None:
    problems = registry_htpasswd.registry_user_problems(
        [{"name": "a", "password": "Dup-Secret-1"}, {"name": "a", "password": ""}, {"name": "b", "pass": "Typo-Secret"}]
    )
    assert problems == [
        "registry_users[1] (a): the name is listed twice.",
        "registry_users[1] (a).password must be a non-empty string (keep it in the vault).",
        "registry_users[2] (b).password must be a non-empty string (keep it in the vault).",
        "registry_users[2] (b) has unknown keys: pass.",
    ]


def test_secrets_never_reach_ansible_output() -> None:
    """Runs last: every playbook output of this module, against every password,
    htpasswd hash and key line the tests wrote."""
    assert OUTPUTS, "no playbook ran"
    written = set(USERS.values()) | {NEW_SITE_PASSWORD} | SEEN_SECRETS
    leaked = [secret for secret in written for output in OUTPUTS if secret in output]
    assert leaked == []
