"""The repository as the collection sqlserver_backup.backups: the artifact that
`ansible-galaxy collection build` makes, installed where a site would install
it, deploys the development stack from a playbook outside the repository that
names the roles by their fully qualified names only (a stack of its own, as
playbooks/deploy.yml deploys it on the dev inventory)."""

from __future__ import annotations

import json
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from sqlserver_backup_testing import REPO, ansible_program, dev_playbook, dev_stack_vars, scratch_stack

ARTIFACT = "sqlserver_backup-backups-1.0.0.tar.gz"
COLLECTION = "sqlserver_backup.backups"
STACK_VARS = {
    **dev_stack_vars("collection", mssql_port=31743, minio_port=31744),
    "backup_image_tag": "collection",
}
PROJECT = STACK_VARS["backup_stack_project"]
# What deploy.yml does on the dev inventory, the roles named as a site outside
# this repository names them.
PLAYBOOK = """\
- name: Check each backup host
  hosts: backup_hosts
  gather_facts: false
  tasks:
    - name: Check the backup settings
      ansible.builtin.import_role:
        name: sqlserver_backup.backups.backup_config
        tasks_from: preflight.yml
    - name: Check the stack settings
      ansible.builtin.import_role:
        name: sqlserver_backup.backups.backup_stack
        tasks_from: preflight.yml
    - name: Check the Docker engine
      ansible.builtin.import_role:
        name: sqlserver_backup.backups.docker_host
      vars:
        docker_host_stack_dir: "{{ backup_stack_dir }}"

- name: Build the backup image
  hosts: backup_hosts
  gather_facts: false
  tasks:
    - name: Build the base image offline
      ansible.builtin.include_role:
        name: sqlserver_backup.backups.backup_base_image
      run_once: true
      when: backup_build_base_image | default(false) | bool
    - name: Build the backup image
      ansible.builtin.import_role:
        name: sqlserver_backup.backups.backup_image

- name: Start the development stack
  hosts: backup_hosts
  gather_facts: false
  tasks:
    - name: Ship the image
      ansible.builtin.import_role:
        name: sqlserver_backup.backups.backup_image
        tasks_from: ship.yml
    - name: Build the MinIO image
      ansible.builtin.import_role:
        name: sqlserver_backup.backups.minio_image
    - name: Start the development services
      ansible.builtin.import_role:
        name: sqlserver_backup.backups.dev_services
    - name: Set up the development MinIO
      ansible.builtin.import_role:
        name: sqlserver_backup.backups.minio_setup
      vars:
        minio_setup_endpoint: "http://127.0.0.1:{{ dev_services_minio_port }}"
        minio_setup_root_user: "{{ dev_services_minio_root_user }}"
        minio_setup_root_password: "{{ dev_services_minio_root_password }}"
        minio_setup_bucket: "{{ backup_config_minio_bucket }}"
        minio_setup_prefix: "{{ backup_config_minio_host_path }}"
        minio_setup_access_key: "{{ backup_config_minio_access_key }}"
        minio_setup_secret_key: "{{ backup_config_minio_secret_key }}"
    - name: Render the configuration
      ansible.builtin.import_role:
        name: sqlserver_backup.backups.backup_config
    - name: Start the stack
      ansible.builtin.import_role:
        name: sqlserver_backup.backups.backup_stack
      vars:
        backup_stack_image: "{{ backup_image_shipped.ref }}"
        backup_stack_config_dir: "{{ backup_config_dir }}"
        backup_stack_gobackup_web_port: "{{ backup_config_web_port }}"
        backup_stack_gobackup_workers: "{{ backup_config_workers }}"
"""


def galaxy(*arguments: str, cwd: Path, collections: Path) -> subprocess.CompletedProcess[str]:
    """ansible-galaxy outside the repository, seeing only the given collections
    path (the repository's own would count the collection as installed)."""
    return ansible_program(
        "ansible-galaxy",
        *arguments,
        cwd=cwd,
        project_config=False,
        environment={"ANSIBLE_COLLECTIONS_PATH": str(collections)},
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site's folder outside the repository: the artifact built there and
    installed into its collections/ folder."""
    site = tmp_path_factory.mktemp("site")
    collections = site / "collections"
    built = galaxy("collection", "build", "--output-path", str(site), str(REPO), cwd=site, collections=collections)
    assert built.returncode == 0, built.stdout + built.stderr
    installed = galaxy(
        "collection", "install", "-p", str(collections), str(site / ARTIFACT), cwd=site, collections=collections
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return site


def test_the_artifact_holds_the_collection_and_nothing_test_only(site: Path) -> None:
    with tarfile.open(site / ARTIFACT) as artifact:
        tops = {name.split("/")[0] for name in artifact.getnames()}
    assert {"roles", "plugins", "playbooks", "meta", "image", "monitoring", "README.md"} <= tops
    assert not tops & {"tests", "molecule", "inventories", "scripts", "bench", "collections", ".venv", ".git"}


def test_the_installed_collection_is_the_one_found(site: Path) -> None:
    listed = galaxy("collection", "list", COLLECTION, "--format", "json", cwd=site, collections=site / "collections")
    assert listed.returncode == 0, listed.stderr
    assert list(json.loads(listed.stdout)) == [str(site / "collections" / "ansible_collections")]


@pytest.fixture(scope="module")
def deployed(site: Path) -> Iterator[subprocess.CompletedProcess[str]]:
    playbook = site / "deploy.yml"
    playbook.write_text(PLAYBOOK)
    with scratch_stack(STACK_VARS), pytest.MonkeyPatch.context() as patch:
        # Only the installed collection: neither the repository's collections/
        # path nor its roles/ (ansible.cfg) are reachable.
        patch.setenv("ANSIBLE_COLLECTIONS_PATH", str(site / "collections"))
        patch.setenv("ANSIBLE_ROLES_PATH", str(site / "roles"))
        # An absolute path replaces the helper's playbooks/ folder.
        yield dev_playbook(str(playbook), STACK_VARS)


def test_the_installed_collection_deploys_the_dev_stack(deployed: subprocess.CompletedProcess[str]) -> None:
    assert deployed.returncode == 0, deployed.stdout[-4000:] + deployed.stderr[-2000:]
    states = {}
    for project in (PROJECT, STACK_VARS["dev_services_project"]):
        label = f"com.docker.compose.project={project}"
        for container in docker.from_env().containers.list(all=True, filters={"label": label}):
            states[project, container.labels["com.docker.compose.service"]] = container.status
    assert states == {
        (PROJECT, "backup"): "running",
        **{(STACK_VARS["dev_services_project"], name): "running" for name in ("mssql", "mssql-restore", "minio")},
    }
