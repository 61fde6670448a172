"""The development stack deployed as one of its own, beside the other tests'
stacks, and the stand-ins and test images every deploy needs."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .ansible import ansible_playbook
from .paths import REPO

# scripts/test sets it once it has run prepare_standins.yml itself: each
# later check (about 20 s) would only find everything in place.
PREPARED_BY_THE_TEST_COMMAND = "SQLSERVER_BACKUP_STANDINS_PREPARED"


def prepare_standins() -> None:
    """The stand-ins and test images (skipped when the test command built them)."""
    if os.environ.get(PREPARED_BY_THE_TEST_COMMAND) == "1":
        return
    prepared = ansible_playbook(str(REPO / "tests" / "playbooks" / "prepare_standins.yml"))
    assert prepared.returncode == 0, prepared.stdout[-3000:]


def dev_stack_vars(name: str, mssql_port: int, minio_port: int) -> dict[str, object]:
    """Extra vars that deploy the dev inventory's stack as one of its own, beside
    the other tests' stacks: compose project sqlserver-backup-<name> and its
    development services' project sqlserver-backup-<name>-dev, their files in
    /tmp/sqlserver-backup-<name>, the objects under <name>/ in the bucket."""
    root = Path(f"/tmp/sqlserver-backup-{name}")
    dev_project = f"sqlserver-backup-{name}-dev"
    return {
        "dev_secrets_dir": str(root / "secrets"),
        "backup_stack_project": f"sqlserver-backup-{name}",
        "backup_stack_dir": str(root / "stack"),
        "backup_config_dir": str(root / "stack" / "config"),
        "backup_image_build_dir": str(root / "build"),
        "minio_image_build_dir": str(root / "minio-build"),
        "dev_services_project": dev_project,
        "dev_services_dir": str(root / "dev"),
        "dev_services_mssql_port": mssql_port,
        "dev_services_minio_port": minio_port,
        "backup_stack_networks": [dev_project],
        "backup_config_minio_path_prefix": name,
    }


@dataclass(frozen=True)
class StackNames:
    """The containers and network of a stack deployed with dev_stack_vars."""

    backup: str
    mssql: str
    restore_server: str
    minio: str
    # The network the development services are on, which the backup container
    # shares: a container started by a test joins it to reach them by name.
    network: str


def stack_names(variables: dict[str, object]) -> StackNames:
    """The names Compose gives the containers of a dev stack's variables."""
    dev_project = str(variables["dev_services_project"])
    return StackNames(
        backup=f"{variables['backup_stack_project']}-backup-1",
        mssql=f"{dev_project}-mssql-1",
        restore_server=f"{dev_project}-mssql-restore-1",
        minio=f"{dev_project}-minio-1",
        network=dev_project,
    )


@contextlib.contextmanager
def scratch_stack(variables: dict[str, object]) -> Iterator[None]:
    """The stack of dev_stack_vars removed (containers, volumes, files) before
    the stand-ins are prepared, and again on leaving."""
    root = Path(str(variables["backup_stack_dir"])).parent

    def remove() -> None:
        for project in (variables["backup_stack_project"], variables["dev_services_project"]):
            down = ["docker", "compose", "-p", str(project), "down", "-v", "--remove-orphans"]
            subprocess.run(down, capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)

    remove()
    prepare_standins()
    try:
        yield
    finally:
        remove()
