"""The docker_host role on two fleet test hosts reached over SSH (a bare
Debian 13 host and one with Docker): the bare host gets Docker and Compose
from Debian's packages, a ready host costs one remote task, and each failure
(something missing with installing off, Docker down, disk full) stops that host
only, naming the host, the reason and the variable that fixes it."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from sqlserver_backup_testing import FLEET_PLAYBOOK, ansible_playbook, fleet_connection, fleet_vars, play_recap, said

FLEET_NETWORK = "sqlserver-backup-dhtest"
HOSTS = {
    "bare-1": {"address": "10.213.78.11", "kind": "bare"},
    "docker-1": {"address": "10.213.78.12", "kind": "docker"},
}
PLAYBOOK = """\
- name: Prepare the Docker hosts
  hosts: all
  gather_facts: false
  roles:
    - role: docker_host
"""


@dataclass
class Fleet:
    directory: Path

    def run(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        """Runs the role on the fleet (both hosts unless limited)."""
        return ansible_playbook(
            "-i", str(self.directory / "inventory.yml"), str(self.directory / "playbook.yml"), *arguments
        )

    def ssh(self, host: str, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "ssh",
                *("-i", str(self.directory / "id_ed25519"), "-o", "BatchMode=yes"),
                *("-o", f"UserKnownHostsFile={self.directory / 'known_hosts'}"),
                f"root@{HOSTS[host]['address']}",
                command,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """One bare host and one with Docker, started by the fleet's own playbook
    and removed after the module."""
    directory = tmp_path_factory.mktemp("docker-host-fleet")
    hosts = [{"name": name, **host} for name, host in HOSTS.items()]
    settings = directory / "fleet-vars.yml"
    settings.write_text(yaml.safe_dump(fleet_vars(directory, FLEET_NETWORK, "10.213.78.0/24", hosts)))
    (directory / "inventory.yml").write_text(
        yaml.safe_dump(
            {
                "all": {
                    "vars": fleet_connection(directory),
                    "hosts": {name: {"ansible_host": host["address"]} for name, host in HOSTS.items()},
                }
            }
        )
    )
    (directory / "playbook.yml").write_text(PLAYBOOK)
    try:
        started = ansible_playbook(str(FLEET_PLAYBOOK), "-e", f"@{settings}")
        assert started.returncode == 0, started.stdout + started.stderr
        yield Fleet(directory)
    finally:
        ansible_playbook(str(FLEET_PLAYBOOK), "-e", f"@{settings}", "-e", "fleet_state=absent")
        # The fleet's playbook leaves its network.
        subprocess.run(["docker", "network", "rm", FLEET_NETWORK], capture_output=True, check=False)


@pytest.fixture(scope="module")
def prepared(fleet: Fleet) -> dict[str, subprocess.CompletedProcess[str]]:
    """A dry run, then the real run that installs Docker on the bare host (the
    module's one apt install); both hosts in each."""
    dry_run = fleet.run("--check")
    docker_after_dry_run = fleet.ssh("bare-1", "command -v docker dockerd")
    return {"check": dry_run, "docker after check": docker_after_dry_run, "apply": fleet.run()}


def test_dry_run_on_a_bare_host_reports_the_install_and_installs_nothing(prepared) -> None:
    dry_run = prepared["check"]
    assert dry_run.returncode == 0, dry_run.stdout
    assert play_recap(dry_run.stdout)["bare-1"]["changed"] > 0
    assert "Install docker.io, docker-cli, docker-compose, python3-requests" in dry_run.stdout
    # The skipped: the /proc mount (docker_host_proc_hidepid off) and the install.
    assert play_recap(dry_run.stdout)["docker-1"] == {
        "ok": 3,
        "changed": 0,
        "unreachable": 0,
        "failed": 0,
        "skipped": 2,
    }
    assert prepared["docker after check"].stdout == ""


def test_bare_host_gets_docker_and_compose_from_debian(fleet: Fleet, prepared) -> None:
    result = prepared["apply"]
    assert result.returncode == 0, result.stdout
    assert play_recap(result.stdout)["bare-1"]["failed"] == 0
    assert "changed: [bare-1]" in result.stdout
    packages = fleet.ssh("bare-1", "dpkg-query -W -f '${Package} ${Status}\\n' docker.io docker-compose")
    assert packages.stdout.count("install ok installed") == 2, packages.stdout + packages.stderr
    # No registry here: an image made on the host from its own echo and libc.
    ran = fleet.ssh(
        "bare-1",
        "set -e; tar -ch $(ldd /usr/bin/echo | grep -o '/[^ ]*') /usr/bin/echo 2>/dev/null"
        " | docker import - docker-host-test/echo >/dev/null;"
        " docker run --rm docker-host-test/echo /usr/bin/echo docker run works; docker compose version",
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("docker run works\nDocker Compose version")


def test_a_ready_fleet_costs_one_remote_task_per_host(fleet: Fleet, prepared) -> None:
    started = time.monotonic()
    result = fleet.run()
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout
    # Argument check, the probe and the final assert; skipped (nothing run on
    # the host): the /proc mount (docker_host_proc_hidepid off) and the install.
    ready = {"ok": 3, "changed": 0, "unreachable": 0, "failed": 0, "skipped": 2}
    assert play_recap(result.stdout) == {"bare-1": ready, "docker-1": ready}, f"{result.stdout}\n({elapsed:.1f} s)"
    assert "gather" not in result.stdout.lower()


@dataclass
class Breakage:
    """What a test does to docker-1, the role's options for the run, what
    docker-1's failure must say, and how the host is mended afterwards."""

    do: str
    undo: str
    options: tuple[str, ...]
    says: tuple[str, ...]


BREAKAGES = {
    "missing-with-installing-off": Breakage(
        do="mv /usr/libexec/docker/cli-plugins/docker-compose /root/docker-compose.hidden"
        " && mv /usr/lib/python3/dist-packages/requests /root/requests.hidden",
        undo="mv /root/docker-compose.hidden /usr/libexec/docker/cli-plugins/docker-compose;"
        " mv /root/requests.hidden /usr/lib/python3/dist-packages/requests",
        options=("-e", "docker_host_install=false"),
        says=(
            "docker-1 lacks Compose v2 plugin (docker compose), python3-requests",
            "set docker_host_install: true",
        ),
    ),
    # Stopped and unable to start: the role starts it once, then gives up.
    "docker-down": Breakage(
        do="service docker stop && echo '{not json' >/etc/docker/daemon.json",
        undo="rm -f /etc/docker/daemon.json; service docker start;"
        " for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done",
        options=("-e", "docker_host_start_timeout=5"),
        says=(
            "Docker Engine on docker-1 is down: Cannot connect to the Docker daemon",
            "unable to configure the Docker daemon with file /etc/docker/daemon.json",
        ),
    ),
    # A real full file system: a 32 MiB tmpfs at the stack directory, filled.
    "disk-full": Breakage(
        do="mkdir -p /srv/backup-stack && mount -t tmpfs -o size=32m tmpfs /srv/backup-stack"
        " && fallocate -l 30M /srv/backup-stack/filler",
        undo="umount /srv/backup-stack; rmdir /srv/backup-stack",
        options=("-e", "docker_host_stack_dir=/srv/backup-stack"),
        says=(
            "disk full: /srv/backup-stack on docker-1 has 2 MiB free,"
            " the deploy needs docker_host_min_free_mb (2048 MiB)",
        ),
    ),
}


@pytest.mark.parametrize("breakage", BREAKAGES.values(), ids=BREAKAGES.keys())
def test_a_failing_host_is_named_with_its_reason_and_the_other_finishes(
    fleet: Fleet, prepared, breakage: Breakage
) -> None:
    broken = fleet.ssh("docker-1", breakage.do)
    try:
        assert broken.returncode == 0, broken.stderr
        result = fleet.run(*breakage.options)
    finally:
        fleet.ssh("docker-1", breakage.undo)
    assert result.returncode != 0
    assert play_recap(result.stdout)["docker-1"]["failed"] == 1, result.stdout
    assert play_recap(result.stdout)["bare-1"]["failed"] == 0, result.stdout
    for words in breakage.says:
        assert said(result, words), result.stdout
