"""The fleet after playbooks/deploy.yml: on every host (over SSH) the shipped
image's binaries, the rendered configuration, a healthy non-root container
running the built image by digest and a backup landing under the host's own
prefix; then, once, shipping by registry with --limit, failure reports,
serial runs, isolation of the hosts' keys, restores per host and
decommissioning."""

import io
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

import docker
import pytest
import requests
import yaml
from minio import Minio
from minio.error import S3Error
from sqlserver_backup_testing import REPO, TEST_VARS, ansible_playbook, play_recap, said, vault_view

SCENARIO = REPO / "molecule" / "fleet"
INVENTORY = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
HOSTS = ["backup-1", "backup-2", "backup-3"]
CONTAINER = "sqlserver-backup-backup-1"
GROUP_VARS = yaml.safe_load((SCENARIO / "inventory" / "group_vars" / "all" / "vars.yml").read_text())
BUCKET = "sqlserver-backups-fleet"
MODELS = {"backup-1": ["sales"], "backup-2": ["inventory"], "backup-3": ["sales", "inventory"]}
OUTPUTS: list[str] = []
# Per-host tests run on the backup hosts only (the registry host is the controller).
testinfra_hosts = ["ansible://backup_hosts"]


def playbook(
    name: str, *arguments: str, inventory: Path = INVENTORY, environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs a playbook of the project against the fleet as an operator would
    (with molecule's ansible.cfg where molecule names one)."""
    result = ansible_playbook(
        "-i",
        str(inventory),
        "-e",
        f"@{TEST_VARS}",
        "-e",
        f"@{SCENARIO / 'vars' / 'all-at-once.yml'}",
        *arguments,
        str(REPO / "playbooks" / name),
        environment={
            "ANSIBLE_CONFIG": os.environ.get("ANSIBLE_CONFIG", str(REPO / "ansible.cfg")),
            "ANSIBLE_VAULT_PASSWORD_FILE": str(SCENARIO / "vault-password"),
            "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
            "ANSIBLE_FORCE_HANDLERS": "true",
            "ANSIBLE_PIPELINING": "true",
            # Molecule's environment forces colours; the tests read plain text.
            "ANSIBLE_FORCE_COLOR": "false",
            **(environment or {}),
        },
    )
    OUTPUTS.append(result.stdout + result.stderr)
    return result


def vault_vars(path: Path) -> dict:
    """Decrypts one of the scenario's vault files."""
    return yaml.safe_load(vault_view(path, SCENARIO / "vault-password"))


def minio_as(access_key: str, secret_key: str) -> Minio:
    return Minio(f"{GROUP_VARS['fleet_minio_address']}:9000", access_key, secret_key, secure=False)


@pytest.fixture(scope="module")
def root_minio() -> Minio:
    secrets = vault_vars(SCENARIO / "inventory" / "group_vars" / "all" / "vault.yml")
    return minio_as(secrets["vault_minio_root_user"], secrets["vault_minio_root_password"])


@pytest.fixture(scope="module")
def built_image_id() -> str:
    return docker.from_env().images.get("sqlserver-backup:fleet").id


def backup_container(host) -> dict:
    return json.loads(host.check_output(f"docker inspect {CONTAINER}"))[0]


# --- Every host ------------------------------------------------------------------------


def test_the_binaries_and_the_symlink(host) -> None:
    assert "170." in host.check_output(f"docker exec {CONTAINER} sqlpackage /Version")
    assert "3.1.1" in host.check_output(f"docker exec {CONTAINER} gobackup -v")
    assert (
        host.check_output(f"docker exec {CONTAINER} readlink /usr/local/bin/sqlpackage") == "../sqlpackage/sqlpackage"
    )


def test_the_rendered_configuration_is_the_hosts_own(host) -> None:
    name = host.backend.get_hostname()
    config = host.file("/opt/sqlserver-backup/config/gobackup.yml")
    assert config.exists
    assert config.mode == 0o600
    assert config.uid == 10001, "readable by the container's user only"
    models = yaml.safe_load(config.content_string)["models"]
    assert sorted(models) == sorted(MODELS[name])
    for model in models.values():
        assert model["storages"]["minio"]["path"].startswith(f"fleet/{name}/")
    env = host.file("/opt/sqlserver-backup/config/.env")
    assert env.mode == 0o600
    assert f"MINIO_ACCESS_KEY='fleet-backup-{name[-1]}'" in env.content_string


def test_a_healthy_non_root_container_runs_the_built_image_by_digest(host, built_image_id: str) -> None:
    container = backup_container(host)
    assert container["State"]["Health"]["Status"] == "healthy"
    assert container["Config"]["User"] == "10001:10001"
    assert container["Image"] == built_image_id, "the host runs exactly the image built on the controller"
    assert container["Config"]["Image"] == built_image_id or "@sha256:" in container["Config"]["Image"]
    compose = host.file("/opt/sqlserver-backup/compose.yml").content_string
    assert re.search(r"image: \"(sha256:[0-9a-f]{64}|[^\"]+@sha256:[0-9a-f]{64})\"", compose)


def test_proc_hides_other_users_processes_where_the_inventory_asks(host) -> None:
    """backup-3 sets docker_host_proc_hidepid: an unprivileged user there sees
    no other user's process (sqlpackage's command line holds the password)."""
    asked = host.backend.get_hostname() == "backup-3"
    [proc] = [
        line.split() for line in host.file("/proc/mounts").content_string.splitlines() if line.split()[1] == "/proc"
    ]
    assert ("hidepid=invisible" in proc[3] or "hidepid=2" in proc[3]) == asked, proc
    # PID 1 is root's init on every host.
    assert host.run("runuser -u nobody -- test -r /proc/1/cmdline").rc == (1 if asked else 0)


def test_a_backup_lands_under_the_hosts_prefix(host, root_minio: Minio) -> None:
    name = host.backend.get_hostname()
    model = MODELS[name][0]
    host.check_output(f"docker exec {CONTAINER} backup-now --model {model}")
    keys = [
        item.object_name for item in root_minio.list_objects(BUCKET, prefix=f"fleet/{name}/{model}/", recursive=True)
    ]
    assert any(key.endswith(".tar") or ".tar." in key for key in keys), keys


# --- The fleet as a whole (run once, in this order) -----------------------------------


def test_each_hosts_key_reaches_only_its_own_prefix() -> None:
    keys = {name: vault_vars(SCENARIO / "inventory" / "host_vars" / name / "vault.yml") for name in HOSTS}
    for name, secrets in keys.items():
        client = minio_as(secrets["vault_minio_backup_access_key"], secrets["vault_minio_backup_secret_key"])
        assert list(client.list_objects(BUCKET, prefix=f"fleet/{name}/", recursive=True)), name
        for other in HOSTS:
            if other == name:
                continue
            with pytest.raises(S3Error) as denied:
                list(client.list_objects(BUCKET, prefix=f"fleet/{other}/", recursive=True))
            assert denied.value.code == "AccessDenied", (name, other)
            with pytest.raises(S3Error):
                client.put_object(BUCKET, f"fleet/{other}/intruder", io.BytesIO(b"x"), 1)


def databases_on(server: str) -> set[str]:
    """The databases one of the fleet's SQL Servers lists (mssql, the source,
    or mssql-restore), asked as GoBackup's all_databases asks."""
    secrets = vault_vars(SCENARIO / "inventory" / "group_vars" / "all" / "vault.yml")
    container = docker.from_env().containers.get(f"{GROUP_VARS['fleet_network']}-{server}")
    query = "SET NOCOUNT ON; SELECT name FROM sys.databases WHERE name NOT IN ('master', 'tempdb', 'model', 'msdb')"
    result = container.exec_run(
        ["/opt/mssql-tools18/bin/sqlcmd", "-S", "localhost", "-U", "sa", "-C", "-Q", query, "-h-1", "-W"],
        environment={"SQLCMDPASSWORD": secrets["vault_mssql_sa_password"]},
    )
    assert result.exit_code == 0, result.output.decode(errors="replace")
    return {line.strip() for line in result.output.decode().splitlines() if line.strip()}


def test_restore_and_drill_one_host_with_limit() -> None:
    source_before = databases_on("mssql")
    result = playbook(
        "restore.yml",
        "--limit",
        "backup-2",
        "-e",
        "restore_model=inventory",
        "-e",
        "restore_target_database=InventoryRestored",
        "-e",
        "restore_replace=true",
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert set(play_recap(result.stdout)) - {"localhost"} == {"backup-2"}
    restored = databases_on("mssql-restore")
    assert "InventoryRestored" in restored, "the restore went to the restore server"
    drill = playbook("restore.yml", "--limit", "backup-3", "-e", "restore_drill=true", "-e", "restore_model=sales")
    assert drill.returncode == 0, drill.stdout[-3000:]
    assert set(play_recap(drill.stdout)) - {"localhost"} == {"backup-3"}
    assert databases_on("mssql-restore") == restored, "the drill dropped what it imported"
    assert databases_on("mssql") == source_before, "neither the restore nor the drill touched the source server"


def test_an_unchanged_image_is_not_shipped_again() -> None:
    result = playbook("deploy.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert all(counts["changed"] == 0 for counts in play_recap(result.stdout).values()), result.stdout[-3000:]
    copy = re.search(r"TASK \[backup_image : Copy the archive to this host\].*?\n\n", result.stdout, re.S)
    assert copy is None or "changed:" not in copy.group(0)


def test_shipping_by_registry_to_one_host(host_ssh) -> None:
    registry = playbook("registry.yml")
    assert registry.returncode == 0, registry.stdout[-3000:]
    result = playbook("deploy.yml", "--limit", "backup-2", "-e", "backup_image_ship_method=registry")
    assert result.returncode == 0, result.stdout[-3000:]
    assert set(play_recap(result.stdout)) - {"localhost"} == {"backup-2"}
    compose = host_ssh("backup-2", "cat /opt/sqlserver-backup/compose.yml")
    assert f'image: "{GROUP_VARS["fleet_gateway"]}:5443/sqlserver-backup@sha256:' in compose
    assert "Up" in host_ssh("backup-2", f"docker ps --filter name={CONTAINER} --format '{{{{.Status}}}}'")
    # No registry credential stays on the host after the pull.
    assert GROUP_VARS["fleet_gateway"] not in host_ssh("backup-2", "cat /root/.docker/config.json 2>/dev/null || true")
    assert 'image: "sha256:' in host_ssh("backup-1", "cat /opt/sqlserver-backup/compose.yml"), (
        "--limit left backup-1 alone"
    )


def registry_holds(image: str) -> bool:
    """Whether the fleet's registry serves the manifest <registry>/<name>@<digest> names."""
    repository, digest = image.split("@")
    name = repository.split("/", 1)[1]
    secrets = vault_vars(SCENARIO / "inventory" / "group_vars" / "all" / "vault.yml")
    answer = requests.head(
        f"https://{GROUP_VARS['fleet_gateway']}:5443/v2/{name}/manifests/{digest}",
        auth=("fleet-ship", secrets["vault_registry_password"]),
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        verify=f"{GROUP_VARS['fleet_dir']}/tls/ca.crt",
        timeout=30,
    )
    return answer.status_code == 200


def compose_image(host_ssh, name: str) -> str:
    return re.search(r'image: "([^"]+)"', host_ssh(name, "cat /opt/sqlserver-backup/compose.yml")).group(1)


def test_a_registry_rebuilt_empty_is_pushed_to_again(host_ssh) -> None:
    # The controller's engine still remembers the earlier push (RepoDigests);
    # only the registry can say what it holds.
    assert registry_holds(compose_image(host_ssh, "backup-2"))
    client = docker.from_env()
    client.containers.get(f"{GROUP_VARS['fleet_network']}-registry").remove(force=True)
    client.volumes.get(f"{GROUP_VARS['fleet_network']}-registry-data").remove()
    registry = playbook("registry.yml")
    assert registry.returncode == 0, registry.stdout[-3000:]
    assert not registry_holds(compose_image(host_ssh, "backup-2"))
    result = playbook("deploy.yml", "--limit", "backup-2", "-e", "backup_image_ship_method=registry")
    assert result.returncode == 0, result.stdout[-3000:]
    assert registry_holds(compose_image(host_ssh, "backup-2"))
    again = playbook("deploy.yml", "--limit", "backup-2", "-e", "backup_image_ship_method=registry")
    assert again.returncode == 0, again.stdout[-3000:]
    assert all(counts["changed"] == 0 for counts in play_recap(again.stdout).values()), again.stdout[-3000:]


def test_a_failing_host_is_named_and_the_others_finish(host_ssh) -> None:
    # backup-3's Docker is down and cannot start; backup-2 is off the network.
    host_ssh("backup-3", "echo '{not json' > /etc/docker/daemon.json && service docker stop >/dev/null 2>&1; true")
    network = docker.from_env().networks.get(GROUP_VARS["fleet_network"])
    address = GROUP_VARS["fleet_subnet"].rsplit(".", 1)[0] + ".12"
    network.disconnect("sqlserver-backup-fleet-backup-2")
    try:
        # Fresh SSH connections: none reused from before the host went away.
        with tempfile.TemporaryDirectory() as control:
            result = playbook(
                "deploy.yml", "-e", "backup_stack_timezone=UTC", environment={"ANSIBLE_SSH_CONTROL_PATH_DIR": control}
            )
    finally:
        network.connect("sqlserver-backup-fleet-backup-2", ipv4_address=address)
        host_ssh("backup-3", "rm -f /etc/docker/daemon.json")
    assert result.returncode != 0
    counts = play_recap(result.stdout)
    assert counts["backup-1"]["failed"] == 0
    assert counts["backup-1"]["unreachable"] == 0
    assert counts["backup-2"]["unreachable"] == 1
    assert counts["backup-3"]["failed"] == 1
    report = result.stdout[result.stdout.index("TASK [Report each backup host]") :]
    assert "backup-1: deployed" in report
    assert re.search(r"backup-2: NOT DEPLOYED: unreachable", report)
    assert re.search(r"backup-3: FAILED: .*Docker Engine .*down", report, re.S), report
    # Once the hosts are back, a re-run converges the two that failed
    # (backup-1 took the change already).
    again = playbook("deploy.yml", "--limit", "backup-2,backup-3")
    assert again.returncode == 0, again.stdout[-3000:]


def test_a_canary_whose_backup_fails_stops_the_rollout(host_ssh) -> None:
    """The defaults' rollout (a canary, then batches: 25% of 3 hosts is one
    at a time) with the canary's backup: a wrong SQL password passes every
    check, the canary's backup fails, and the other hosts keep the container
    they run. Then the same rollout, right, one host per batch."""

    def container(name: str) -> str:
        return host_ssh(name, f"docker inspect --format '{{{{.Id}}}}' {CONTAINER}").strip()

    before = {name: container(name) for name in ("backup-2", "backup-3")}
    rollout = ("-e", "deploy_canary_hosts=1", "-e", "deploy_serial=25%", "-e", "deploy_canary_backup=true")
    try:
        result = playbook("deploy.yml", *rollout, "-e", "vault_mssql_sa_password=Not-The-Passw0rd-1")
        assert result.returncode != 0, result.stdout[-3000:]
        assert said(result, "the canary's backup failed, so the other hosts keep the container they run")
        assert said(result, "BACKUP-NOW FAIL model=sales"), result.stdout[-3000:]
        # The failed host's own line goes to stderr.
        failure = " ".join(result.stderr.split())
        assert "Past deploy_max_fail_percentage (0) the rollout stops after this batch" in failure, failure[-3000:]
        # The stopped rollout's report, as the final one would have said it.
        assert said(result, "backup-1: FAILED: Stop the rollout when the canary"), result.stdout[-3000:]
        assert said(result, "backup-2: NOT DEPLOYED"), result.stdout[-3000:]
        assert result.stdout.count("PLAY [Ship the image and start the stack on each backup host]") == 1
        assert {name: container(name) for name in before} == before, "no other host took the change"
    finally:
        again = playbook("deploy.yml", *rollout)
    assert again.returncode == 0, again.stdout[-3000:]
    # The canary backed up (backup-now exited 0), in the first batch; the
    # other hosts, one batch each, did not.
    banner = r"TASK \[Back up every model on the canary before the other hosts\][^\n]*\n(.*?)\n\n"
    results = re.findall(
        r"^(changed|ok|skipping): \[(backup-\d)\]", "\n".join(re.findall(banner, again.stdout, re.S)), re.M
    )
    assert results == [("changed", "backup-1"), ("skipping", "backup-2"), ("skipping", "backup-3")], again.stdout[
        -3000:
    ]
    assert again.stdout.count("PLAY [Ship the image and start the stack on each backup host]") == 3


def test_a_removed_host_is_decommissioned_and_its_backups_kept(host_ssh, root_minio: Minio) -> None:
    before = [o.object_name for o in root_minio.list_objects(BUCKET, prefix="fleet/backup-3/", recursive=True)]
    assert before
    generated = yaml.safe_load(Path(os.environ["MOLECULE_INVENTORY_FILE"]).read_text())
    connection = generated["all"]["hosts"]["backup-3"]
    with tempfile.TemporaryDirectory() as directory:
        inventory = Path(directory)
        (inventory / "hosts.yml").write_text(
            yaml.safe_dump(
                {
                    "all": {"hosts": {"backup-3": connection}},
                    "backup_hosts": {"hosts": {"backup-1": None, "backup-2": None}},
                }
            )
        )
        for link in ("group_vars", "host_vars"):
            (inventory / link).symlink_to(SCENARIO / "inventory" / link)
        refused = playbook("decommission.yml", "-e", "decommission_hosts=backup-1")
        assert refused.returncode != 0
        assert re.search(r"remove\s+them\s+from\s+backup_hosts\s+first", refused.stdout + refused.stderr)
        result = playbook("decommission.yml", "-e", "decommission_hosts=backup-3", inventory=inventory)
    assert result.returncode == 0, result.stdout[-3000:]
    assert host_ssh("backup-3", f"docker ps -a --filter name={CONTAINER} --format '{{{{.Names}}}}'") == ""
    assert host_ssh("backup-3", "test -e /opt/sqlserver-backup/config/.env && echo present || echo gone") == "gone"
    after = [o.object_name for o in root_minio.list_objects(BUCKET, prefix="fleet/backup-3/", recursive=True)]
    assert sorted(after) == sorted(before)


@pytest.fixture
def outputs() -> list[str]:
    """What the playbooks of this module printed; when no test before ran one
    (this test alone), a check-mode deploy of its own, so that the sweep always
    has output to check."""
    if not OUTPUTS:
        dry_run = playbook("deploy.yml", "--check")
        assert set(HOSTS) <= set(play_recap(dry_run.stdout)), dry_run.stdout[-3000:]
    return OUTPUTS


def test_no_secret_in_any_output(outputs: list[str]) -> None:
    secrets = vault_vars(SCENARIO / "inventory" / "group_vars" / "all" / "vault.yml")
    values = [v for k, v in secrets.items() if "password" in k]
    for name in HOSTS:
        values.append(
            vault_vars(SCENARIO / "inventory" / "host_vars" / name / "vault.yml")["vault_minio_backup_secret_key"]
        )
    assert values, "secrets to look for"
    assert outputs, "output to look in"
    for output in outputs:
        for value in values:
            assert value not in output


@pytest.fixture(scope="module")
def host_ssh():
    generated = yaml.safe_load(Path(os.environ["MOLECULE_INVENTORY_FILE"]).read_text())["all"]["hosts"]

    def run(name: str, command: str) -> str:
        settings = generated[name]
        return subprocess.run(
            [
                "ssh",
                "-i",
                settings["ansible_private_key_file"],
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                f"root@{settings['ansible_host']}",
                command,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    return run
