"""Test hosts of tests/fleet/hosts.yml: containers with their own address,
sshd and Docker engine, reached over SSH with a key made for them."""

from __future__ import annotations

from pathlib import Path

from .paths import REPO

FLEET_PLAYBOOK = REPO / "tests" / "fleet" / "hosts.yml"


def fleet_vars(directory: Path, network: str, subnet: str, hosts: list[dict[str, str]]) -> dict[str, object]:
    """Extra vars of FLEET_PLAYBOOK: hosts (name, address, kind: bare or
    docker) on a network of their own; their SSH key and known hosts in directory."""
    return {"fleet_dir": str(directory), "fleet_network": network, "fleet_subnet": subnet, "fleet_hosts": hosts}


def fleet_connection(directory: Path) -> dict[str, str]:
    """Inventory vars that reach the hosts of FLEET_PLAYBOOK as root with the
    key it made in directory, accepting each host's key the first time."""
    return {
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(directory / "id_ed25519"),
        "ansible_ssh_common_args": f"-o UserKnownHostsFile={directory / 'known_hosts'}"
        " -o StrictHostKeyChecking=accept-new",
    }
