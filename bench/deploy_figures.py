"""Section 5 of the benchmark: playbooks/deploy.yml over SSH to 1, then to 3
fresh test hosts (tests/fleet/hosts.yml), each time once more with nothing to
change, and last with a config-only change."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from common import DATABASE, MODEL, Bench, Row, log, playbook_output, quietly, run, verdict
from image_figures import build_image
from sqlserver_backup_testing import (
    FLEET_PLAYBOOK,
    REPO,
    TEST_VARS,
    answers,
    fleet_connection,
    fleet_vars,
    play_recap,
    role_defaults,
    wait_until,
)

# The deploy's test hosts, each a container with its own sshd and Docker
# engine, on a subnet of their own; MinIO beside them.
FLEET_SUBNET = "10.213.79.0/24"
FLEET_MINIO_ADDRESS = "10.213.79.5"
FLEET_SIZES = (1, 3)
NOOP_TARGET_SECONDS = 10
FIRST_RUN_RATIO = 2.0
NOOP_RATIO = 1.5
# Once a year, so that no backup starts while the benchmark runs; the second
# is the config-only change.
SCHEDULES = ("0 3 1 1 *", "30 3 1 1 *")


@dataclass
class Deploy:
    """One run of playbooks/deploy.yml: its wall clock, output, per-host
    recap and each host's backup container (started at, health) after it."""

    image: str
    seconds: float
    output: str
    recap: dict[str, dict[str, int]]
    containers: dict[str, tuple[str, str]]

    def changed(self) -> int:
        return sum(counts["changed"] for counts in self.recap.values())

    def task_results(self, header: str) -> list[str]:
        """The result lines (ok: / changed: / skipping: ...) of the task or
        handler named `header` (role : name)."""
        results: list[str] = []
        inside = False
        for line in self.output.splitlines():
            if line.startswith(("TASK [", "RUNNING HANDLER [", "PLAY [", "PLAY RECAP")):
                inside = line.startswith((f"TASK [{header}]", f"RUNNING HANDLER [{header}]"))
            elif inside and re.match(r"^(ok|changed|skipping|failed|fatal): \[", line):
                results.append(line.strip())
        return results

    def slowest_tasks(self, count: int = 6) -> list[tuple[str, float]]:
        """The slowest tasks of the run, as profile_tasks sums them up at the end."""
        found = re.findall(r"^(\S.*?) -{2,} (\d+\.\d+)s$", self.output, re.MULTILINE)
        return [(name.strip(), float(seconds)) for name, seconds in found][:count]

    def build_results(self) -> list[str]:
        return self.task_results(f"backup_image : Build {self.image}")

    def rebuilt(self) -> str:
        """A warning for the table when this deploy built the image again
        instead of shipping the one built before it."""
        built = any(not line.startswith("skipping:") for line in self.build_results())
        return " (built the image again: not comparable)" if built else ""


@dataclass
class FleetDeploys:
    """Per number of hosts, the first deploy and its no-op re-run; and the
    re-deploy to the most hosts after a config-only change."""

    first: dict[int, Deploy]
    again: dict[int, Deploy]
    changed: Deploy


class Fleet:
    """The run's test hosts (tests/fleet/hosts.yml), MinIO beside them, and
    the deploys to them."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.network = bench.fleet_network

    def hosts(self, count: int) -> list[dict[str, str]]:
        network = FLEET_SUBNET.rsplit(".", 1)[0]
        return [
            {"name": f"backup-{n}", "address": f"{network}.{10 + n}", "kind": "docker"} for n in range(1, count + 1)
        ]

    def set_state(self, count: int, state: str) -> None:
        """Starts (present) or removes (absent) `count` test hosts with
        tests/fleet/hosts.yml; kind docker: a deploy finds Docker installed."""
        settings = self.bench.tmp / f"fleet-{count}.yml"
        settings.write_text(
            yaml.safe_dump(fleet_vars(self.bench.tmp / "fleet", self.network, FLEET_SUBNET, self.hosts(count)))
        )
        playbook_output(str(FLEET_PLAYBOOK), "-e", f"@{settings}", "-e", f"fleet_state={state}")
        if state == "present":
            for host in self.hosts(count):
                self.wait_for_engine(f"{self.network}-{host['name']}")

    def wait_for_engine(self, container: str) -> None:
        """A real host's Docker engine runs before the deploy; a test host
        starts its own with sshd, and the deploy must not be timed waiting for it."""
        info = ["docker", "exec", container, "docker", "info"]
        wait_until(
            lambda: subprocess.run(info, capture_output=True, check=False).returncode == 0,
            f"the Docker engine of {container} to start",
            60,
            interval=0.5,
        )

    def start_minio(self, minio_image: str) -> None:
        """MinIO on the test hosts' network: the backup container's start-up
        check reaches it, as it reaches MinIO in production."""
        container = f"{self.network}-minio"
        self.bench.on_exit(quietly, "docker", "rm", "-f", "-v", container)
        environment = self.bench.tmp / "fleet-minio.env"
        environment.touch(mode=0o600)
        environment.write_text(f"MINIO_ROOT_USER=bench-root\nMINIO_ROOT_PASSWORD={secrets.token_hex(20)}\n")
        run(
            "docker", "run", "-d", "--name", container, "--network", self.network, "--ip", FLEET_MINIO_ADDRESS,
            "--env-file", str(environment), minio_image, quiet=True,
        )  # fmt: skip
        wait_until(
            lambda: answers(f"http://{FLEET_MINIO_ADDRESS}:9000/minio/health/live"),
            "MinIO on the test hosts' network to start",
            60,
            interval=0.5,
        )

    def inventory(self, count: int, schedule: str, settings: dict[str, Any]) -> Path:
        """An inventory shaped like molecule/fleet's: the hosts reached over
        SSH with the fleet's key, their settings in group_vars (mode 0600:
        it holds the run's throwaway secrets)."""
        directory = self.bench.tmp / f"inventory-{count}"
        (directory / "group_vars").mkdir(parents=True, exist_ok=True)
        hosts = {host["name"]: {"ansible_host": host["address"]} for host in self.hosts(count)}
        connection = fleet_connection(self.bench.tmp / "fleet")
        (directory / "hosts.yml").write_text(yaml.safe_dump({"backup_hosts": {"hosts": hosts, "vars": connection}}))
        group_vars = directory / "group_vars" / "backup_hosts.yml"
        group_vars.touch(mode=0o600)
        group_vars.write_text(yaml.safe_dump({**settings, "backup_config_schedule": schedule}))
        return directory / "hosts.yml"

    def deploy(self, count: int, schedule: str, settings: dict[str, Any], arguments: list[str]) -> Deploy:
        """Runs playbooks/deploy.yml on `count` test hosts; stops unless every
        host reports itself deployed."""
        inventory = self.inventory(count, schedule, settings)
        environment = {
            "ANSIBLE_PIPELINING": "true",
            "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
            # Per set of hosts: a recreated host must not meet the SSH master
            # connection of the one it replaces (same address).
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.bench.tmp / f"ssh-{count}"),
            # Each task's time, and the slowest at the end (slowest_tasks).
            "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
        }
        started = time.monotonic()
        output = playbook_output(
            "-i", str(inventory), *arguments, "-e", f"backup_image_archive_dir={self.bench.tmp / f'images-{count}'}",
            str(REPO / "playbooks" / "deploy.yml"), environment=environment,
        )  # fmt: skip
        seconds = time.monotonic() - started
        recap = play_recap(output)
        names = [host["name"] for host in self.hosts(count)]
        for name in names:
            counts = recap.get(name, {})
            if counts.get("failed", 1) or counts.get("unreachable", 1) or f"{name}: deployed " not in output:
                raise RuntimeError(f"playbooks/deploy.yml did not deploy {name}:\n{output}")
        states = {name: self.backup_container(name) for name in names}
        unhealthy = {name: state for name, state in states.items() if state[1] != "healthy"}
        if unhealthy:
            raise RuntimeError(f"the backup container is not healthy: {unhealthy}")
        return Deploy(self.bench.built_image, seconds, output, {name: recap[name] for name in names}, states)

    def backup_container(self, host: str) -> tuple[str, str]:
        """When the backup container on a test host started, and its health."""
        container = f"{role_defaults('backup_stack')['backup_stack_project']}-backup-1"
        state = run(
            "docker", "exec", f"{self.network}-{host}", "docker", "inspect", "--format",
            "{{.State.StartedAt}} {{if .State.Health}}{{.State.Health.Status}}{{end}}", container, quiet=True,
        )  # fmt: skip
        started, _, health = state.strip().partition(" ")
        return started, health


def deploy_arguments(bench: Bench, overrides: Path) -> list[str]:
    """The deploys' extra vars: the test vars, the stand-ins' overrides and
    the image built by this run, so that the deploys find it current."""
    if not bench.built_base:
        # BENCH_IMAGE names an image no deploy of this run built: build the
        # run's own (from the layer cache when the base has been built on).
        log(f"building {bench.built_image} for the deploys (BENCH_IMAGE is not a deploy's own build)")
        bench.on_exit(quietly, "docker", "rmi", bench.built_image)
        build_image(bench, bench.base, overrides)
    name, tag = bench.built_image.split(":")
    image_vars = bench.tmp / "deploy-image.yml"
    image_vars.write_text(
        yaml.safe_dump(
            {
                # The inputs of the build above, so the deploys find the image current.
                "backup_build_base_image": False,
                "backup_image_base": bench.built_base,
                "backup_image_name": name,
                "backup_image_tag": tag,
                "backup_image_build_dir": str(bench.tmp / "build"),
                "backup_image_build_host": "localhost",
                "backup_image_ship_method": "archive",
            }
        )
    )
    # Every host at once: the figures are the parallel deploy's. Extra vars:
    # the rollout's batches are the play's, which no inventory reaches.
    rollout = ["-e", "deploy_canary_hosts=0", "-e", "deploy_serial=0"]
    return ["-e", f"@{TEST_VARS}", "-e", f"@{overrides}", "-e", f"@{image_vars}", *rollout]


def deploy_settings() -> dict[str, Any]:
    """The hosts' backup settings. No SQL Server: a deploy exports nothing.
    Its address is MinIO's, whose port 1433 refuses at once, so the
    container's start-up check does not wait out its timeout. The secrets are
    this run's only."""
    return {
        "backup_config_databases": [
            {
                "name": MODEL,
                "database": DATABASE,
                "host": FLEET_MINIO_ADDRESS,
                "password": secrets.token_hex(16),
                "trust_server_certificate": True,
            }
        ],
        # Never reached: the benchmark restores nothing, but every model needs one.
        "backup_config_restore_host": "bench-restore",
        "backup_config_minio_endpoint": f"http://{FLEET_MINIO_ADDRESS}:9000",
        "backup_config_minio_bucket": "bench",
        "backup_config_minio_access_key": f"bench-{secrets.token_hex(4)}",
        "backup_config_minio_secret_key": secrets.token_hex(20),
        # Throwaway data in a test MinIO, through a stand-in that has only sa.
        "deploy_accept_unencrypted_backups": True,
        "deploy_accept_unlocked_bucket": True,
        "deploy_accept_sa_login": True,
    }


def run_deploys(bench: Bench, minio_image: str, arguments: list[str]) -> FleetDeploys:
    """Starts the test hosts for each number of them and deploys to them."""
    fleet = Fleet(bench)
    settings = deploy_settings()
    # Removed last to first: MinIO, the hosts, then the network the
    # fleet's playbook leaves.
    bench.on_exit(quietly, "docker", "network", "rm", fleet.network)
    bench.on_exit(fleet.set_state, max(FLEET_SIZES), "absent")
    first: dict[int, Deploy] = {}
    again: dict[int, Deploy] = {}
    for count in FLEET_SIZES:
        hosts = f"{count} host{'s' if count > 1 else ''}"
        log(f"starting {hosts} with Docker (tests/fleet/hosts.yml)")
        fleet.set_state(count, "present")
        if not first:
            fleet.start_minio(minio_image)
        log(f"deploy to {hosts}: first run, then no-op re-run")
        first[count] = fleet.deploy(count, SCHEDULES[0], settings, arguments)
        again[count] = fleet.deploy(count, SCHEDULES[0], settings, arguments)
        if count != max(FLEET_SIZES):
            fleet.set_state(count, "absent")
    count = max(FLEET_SIZES)
    log(f"re-deploy to {count} hosts after a config-only change (backup_config_schedule)")
    return FleetDeploys(first, again, fleet.deploy(count, SCHEDULES[1], settings, arguments))


def config_change_row(changed: Deploy, before: Deploy) -> Row:
    """The re-deploy after a config-only change: no image build, and every
    host's backup container recreated (a new container) with the new files."""
    build = changed.build_results()
    hosts = sorted(changed.recap)
    restarted = [host for host in hosts if changed.containers[host][0] != before.containers[host][0]]
    build_skipped = bool(build) and all(line.startswith("skipping:") for line in build)
    found = [
        "image build skipped" if build_skipped else f"image build: {build or 'task not in the output'}",
        f"backup container recreated on {len(restarted)}/{len(hosts)} hosts",
    ]
    return Row(
        f"5. Re-deploy to {len(hosts)} hosts after a config-only change (backup_config_schedule)",
        f"{changed.seconds:.1f} s ({', '.join(found)}; changed={changed.changed()})",
        "no image build, the backup container recreated",
        verdict(build_skipped and len(restarted) == len(hosts)),
    )


def deploy_figure_rows(deploys: FleetDeploys) -> list[Row]:
    first, again = deploys.first, deploys.again
    one, many = min(FLEET_SIZES), max(FLEET_SIZES)
    hosts_one = "1 host (backup-1)"
    no_op = again[one]
    counts = no_op.recap["backup-1"]
    return [
        Row(f"5. Deploy to {hosts_one}, first run", f"{first[one].seconds:.1f} s{first[one].rebuilt()}"),
        Row(
            f"5. Deploy to {hosts_one}, no-op re-run",
            f"{no_op.seconds:.1f} s (ok={counts['ok']} changed={counts['changed']} skipped={counts['skipped']})",
            f"<= {NOOP_TARGET_SECONDS} s, changed=0",
            verdict(no_op.seconds <= NOOP_TARGET_SECONDS and no_op.changed() == 0),
        ),
        Row(
            f"5. Deploy to {many} hosts, first run",
            f"{first[many].seconds:.1f} s (x{first[many].seconds / first[one].seconds:.2f} of 1 host)"
            f"{first[many].rebuilt()}",
            f"<= {FIRST_RUN_RATIO:g}x 1 host ({FIRST_RUN_RATIO * first[one].seconds:.1f} s)",
            verdict(first[many].seconds <= FIRST_RUN_RATIO * first[one].seconds),
        ),
        Row(
            f"5. Deploy to {many} hosts, no-op re-run",
            f"{again[many].seconds:.1f} s (x{again[many].seconds / no_op.seconds:.2f} of 1 host,"
            f" changed={again[many].changed()})",
            f"<= {NOOP_RATIO:g}x 1 host ({NOOP_RATIO * no_op.seconds:.1f} s), changed=0",
            verdict(again[many].seconds <= NOOP_RATIO * no_op.seconds and again[many].changed() == 0),
        ),
        config_change_row(deploys.changed, again[many]),
    ]


def deploy_rows(bench: Bench, overrides: Path, minio_image: str) -> tuple[list[Row], list[str]]:
    """Deploys the image built above with playbooks/deploy.yml to 1, then
    to 3 fresh test hosts, each time once more with nothing to change,
    and last with a config-only change."""
    arguments = deploy_arguments(bench, overrides)
    deploys = run_deploys(bench, minio_image, arguments)
    many = max(FLEET_SIZES)
    notes = [
        f"Section 5 deploys with playbooks/deploy.yml over SSH to test hosts that are containers on this"
        f" machine (tests/fleet/hosts.yml: own sshd and Docker engine), sharing its {os.cpu_count()} CPUs and"
        f" disk: {many} hosts copy and load the image archive at the same time. Each first run starts on fresh"
        " hosts and with no image archive (the docker save is in it); the image is this run's own build, so"
        " the deploys find it current and build nothing. A no-op re-run follows its first run within seconds,"
        " so it reuses the SSH connections (ControlPersist). A (re)started backup container reports healthy at"
        " its first health check, 10 s after its start, and the deploy waits for that.",
    ]
    notes.append(no_op_note(deploys.again[min(FLEET_SIZES)]))
    return deploy_figure_rows(deploys), notes


def no_op_note(no_op: Deploy) -> str:
    """Where the 1-host no-op's time goes: its slowest tasks, and the rest
    spread over every other task."""
    slowest = no_op.slowest_tasks()
    counts = no_op.recap["backup-1"]
    tasks = counts["ok"] + counts["skipped"]
    top = sum(seconds for _, seconds in slowest)
    rest = max(no_op.seconds - top, 0.0)
    return (
        f"Where the 1-host no-op's {no_op.seconds:.1f} s go: {counts['ok']} tasks run (each a module sent over SSH"
        f" and run on the host) and {counts['skipped']} are skipped. The {len(slowest)} slowest (profile_tasks)"
        f" take {top:.1f} s together: " + "; ".join(f"{name} {seconds:.1f} s" for name, seconds in slowest) + "."
        f" The other {rest:.1f} s are spread over the other {max(tasks - len(slowest), 1)} tasks, about"
        f" {rest / max(tasks - len(slowest), 1):.2f} s each: Ansible's own cost per task, and the start of the"
        " playbook. None of the tasks that run can go: each is a check or a lookup a re-run needs to know that"
        " nothing changed (the settings as GoBackup and the container read them, the image on the host, the"
        " rendered files, the stack and its health, the coverage and work-volume warnings)."
    )
