"""The benchmark behind `./bench/run`: builds the backup image cold through
playbooks/build.yml, then measures, on this machine's Docker engine, what the
image is made of, how the compress types compare on a .bacpac, and what the
backup pipeline after the export costs next to the disk's own speed, and how long
playbooks/deploy.yml takes on 1 and 3 test hosts (tests/fleet/hosts.yml).
Prints one table: figure | measured | target | verdict.

Like the tests, it builds from the stand-ins (tests/offline-vars.yml) unless
SQLSERVER_BACKUP_TEST_VARS names another vars file (tests/upstream-vars.yml
for the real tools). BENCH_GIB sets the size of the .bacpac (default 1);
BENCH_IMAGE=<image> measures that image instead of building one.
Everything it starts (containers, network, volume, images, temp files) is
named sqlserver-backup-bench-<run id> (the deploy's test hosts
sqlserver-backup-benchfleet-<run id>) and removed at the end, also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import yaml
from minio import Minio
from sqlserver_backup_testing import (
    ARTIFACTS,
    FLEET_PLAYBOOK,
    REPO,
    TEST_VARS,
    answers,
    base_image,
    build_standins,
    fleet_connection,
    fleet_vars,
    load_test_vars,
    play_recap,
    role_defaults,
    wait_until,
)

# Where tests/playbooks/prepare_standins.yml serves the stand-ins; the
# benchmark reads them from disk instead and starts no artifact server.
STANDIN_SERVER = "http://127.0.0.1:8765/"
PREFIX = "sqlserver-backup-bench"
MINIO_PORTS = range(29500, 29511)
GIB = 1024**3
MB = 1000**2
# Inside the backup image: its work-dir volume and the benchmark's folder on it.
WORK = "/tmp/gobackup"  # noqa: S108 - the image's VOLUME, not a temp file of this host
BENCH_ROOT = f"{WORK}/bench"
SOURCE_DIR = f"{BENCH_ROOT}/source"
MODEL = "sales"
DATABASE = "Sales"
BACPAC = f"{SOURCE_DIR}/{MODEL}/mssql/{MODEL}/{DATABASE}.bacpac"
ARCHIVE_TYPES = ("tar", "tgz", "zst")
PIPELINE_RUNS = 3
# sqlpackage's .NET runtime libraries (README of the image: ICU, OpenSSL,
# Kerberos, zlib, libunwind); counted in sqlpackage's share of the image.
SQLPACKAGE_RUNTIME = re.compile(
    r"^(libicu\d+|libssl\d+(t64)?|libgssapi-krb5-2|libkrb5-3|libk5crypto3|libkrb5support0|libkeyutils1"
    r"|libcom-err2|libunwind\d*|zlib1g|libstdc\+\+6|libgcc-s1)$"
)
REST_TARGET_MB = 60
# Section 5: the deploy's test hosts, each a container with its own sshd and
# Docker engine, on a subnet of their own; MinIO beside them.
FLEET_PREFIX = f"{PREFIX}fleet"
FLEET_SUBNET = "10.213.79.0/24"
FLEET_MINIO_ADDRESS = "10.213.79.5"
FLEET_SIZES = (1, 3)
NOOP_TARGET_SECONDS = 10
FIRST_RUN_RATIO = 2.0
NOOP_RATIO = 1.5
# Once a year, so that no backup starts while the benchmark runs; the second
# is the config-only change.
SCHEDULES = ("0 3 1 1 *", "30 3 1 1 *")


def log(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


@dataclass
class Row:
    figure: str
    measured: str
    target: str = "-"
    verdict: str = "info"


def megabytes(size: float) -> str:
    return f"{size / MB:.1f} MB"


def gibibytes(size: float) -> str:
    return f"{size / GIB:.2f} GiB"


def run(*command: str, stdin: str | None = None, quiet: bool = False) -> str:
    """Runs a command, returns its stdout; on failure shows its output and stops."""
    result = subprocess.run(command, input=stdin, capture_output=True, text=True, cwd=REPO, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ... failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    if not quiet and result.stderr.strip():
        print(result.stderr.rstrip(), file=sys.stderr)
    return result.stdout


def quietly(*command: str) -> None:
    """A clean-up command: what it removes may already be gone."""
    subprocess.run(command, capture_output=True, check=False)


def playbook_output(*arguments: str, environment: dict[str, str] | None = None) -> str:
    """Runs ansible-playbook; its output, or on failure a stop showing it."""
    result = playbook_output(*arguments, environment=environment)
    if result.returncode != 0:
        raise RuntimeError(f"ansible-playbook {' '.join(arguments)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


class Bench:
    """One run: its id, its temp folder, and what it must remove at the end."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self.id = secrets.token_hex(4)
        self.name = f"{PREFIX}-{self.id}"
        self.stack = stack
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        stack.callback(shutil.rmtree, self.tmp, ignore_errors=True)
        self.docker = docker.from_env()
        self.test_vars: dict[str, Any] = load_test_vars()
        self.base = base_image()
        self.size = int(float(os.environ.get("BENCH_GIB", "1")) * GIB)
        if self.size <= 0:
            raise SystemExit("BENCH_GIB must be a positive number of GiB")
        self.image = f"{PREFIX}/backup:{self.id}"
        # What playbooks/build.yml built as self.image, from which base: the
        # deploys must ask for the same image, or they would build again.
        self.built_image = self.image
        self.built_base = ""
        self.fleet_network = f"{FLEET_PREFIX}-{self.id}"
        self.volume = f"{self.name}-work"
        self.minio_storage = ""

    def on_exit(self, action: Callable[..., Any], *arguments: Any) -> None:
        """Registers a clean-up step that must not stop the other clean-ups."""

        def guarded() -> None:
            try:
                action(*arguments)
            except Exception as error:  # report it and go on cleaning up
                log(f"clean-up step failed: {error}")

        self.stack.callback(guarded)

    # --- images ---------------------------------------------------------------------

    def standin_overrides(self) -> Path:
        """Vars that take the stand-in artifacts from disk (tests/.artifacts)
        instead of the artifact server on 127.0.0.1:8765."""
        overrides: dict[str, str] = {}
        if self.test_vars.get("test_standins"):
            log("building the stand-in artifacts (tests/standins/build_artifacts.py)")
            build_standins(ARTIFACTS)
            sums = {}
            for listing in ("SHA256SUMS", "checksums.txt"):
                for line in (ARTIFACTS / listing).read_text().splitlines():
                    digest, name = line.split()
                    sums[name] = digest
            for artifact in ("sqlpackage", "gobackup", "sqlcmd"):
                url = str(self.test_vars.get(f"backup_image_{artifact}_url", ""))
                if url.startswith(STANDIN_SERVER):
                    name = url.removeprefix(STANDIN_SERVER)
                    overrides[f"backup_image_{artifact}_url"] = str(ARTIFACTS / name)
                    overrides[f"backup_image_{artifact}_checksum"] = f"sha256:{sums[name]}"
        path = self.tmp / "artifact-vars.yml"
        path.write_text(yaml.safe_dump(overrides))
        return path

    def prepare_images(self, overrides: Path) -> str:
        """The base image (and the MinIO image when missing); returns the MinIO image."""
        minio_defaults = role_defaults("minio_image")
        minio_image = f"{minio_defaults['minio_image_name']}:{minio_defaults['minio_image_tag']}"
        build_minio = not self.image_exists(minio_image)
        log(f"preparing the base image {self.base}" + (f" and building {minio_image}" if build_minio else ""))
        playbook_output(
            "-e", f"@{TEST_VARS}", "-e", f"@{overrides}", "-e", f"backup_image_base={self.base}",
            "-e", f"bench_build_minio={str(build_minio).lower()}", str(REPO / "bench" / "prepare.yml"),
        )  # fmt: skip
        return minio_image

    def image_exists(self, name: str) -> bool:
        try:
            self.docker.images.get(name)
        except docker.errors.ImageNotFound:
            return False
        return True

    def remove_image_tree(self, root: str) -> None:
        """Removes an image and every image built on it (intermediate and
        multi-stage images of the build included): all of them are this run's."""
        children: dict[str, list[str]] = {}
        for image in self.docker.api.images(all=True):
            children.setdefault(image.get("ParentId", ""), []).append(image["Id"])
        order: list[str] = []

        def visit(image_id: str) -> None:
            for child in children.get(image_id, []):
                visit(child)
            order.append(image_id)

        visit(root)
        for image_id in order:
            with contextlib.suppress(docker.errors.NotFound):
                self.docker.api.remove_image(image_id, force=True)

    def cold_build(self, overrides: Path) -> float:
        """Builds the image through playbooks/build.yml with no layer cache to
        reuse: its base is a copy of the base image under a new image ID (one
        label more), so every step of image/Dockerfile runs. Shipped `local`:
        the build alone is timed, and no image archive is written."""
        cold_base = f"{PREFIX}/cold-base:{self.id}"
        run(
            "docker", "build", "-q", "--label", f"org.sqlserver-backup.bench-run={self.id}", "-t", cold_base, "-",
            stdin=f"FROM {self.base}\n", quiet=True,
        )  # fmt: skip
        self.on_exit(self.remove_image_tree, self.docker.images.get(cold_base).id)
        log(f"cold build of {self.image} through playbooks/build.yml")
        started = time.monotonic()
        self.build(cold_base, overrides)
        return time.monotonic() - started

    def build(self, base: str, overrides: Path) -> None:
        """Builds self.built_image from `base` through playbooks/build.yml,
        shipped `local` (no image archive is written)."""
        name, tag = self.built_image.split(":")
        output = playbook_output(
            "-i", str(REPO / "inventories" / "dev"), "-e", f"@{TEST_VARS}", "-e", f"@{overrides}",
            "-e", "backup_build_base_image=false", "-e", f"backup_image_base={base}",
            "-e", "backup_image_ship_method=local",
            "-e", f"backup_image_name={name}", "-e", f"backup_image_tag={tag}",
            "-e", f"backup_image_build_dir={self.tmp / 'build'}", str(REPO / "playbooks" / "build.yml"),
        )  # fmt: skip
        if f"{self.built_image}: " not in output:
            raise RuntimeError(f"playbooks/build.yml did not report {self.built_image}:\n{output}")
        self.built_base = base

    # --- inside the backup image ------------------------------------------------------

    def in_image(self, *arguments: str, stdin: str | None = None, network: str | None = None) -> Any:
        """Runs bench/in_image.py in the backup image, as its own user, with
        the benchmark's volume as the work dir; returns its JSON."""
        container = f"{self.name}-{arguments[0]}"
        self.on_exit(quietly, "docker", "rm", "-f", "-v", container)
        command = ["docker", "run", "--rm", "-i", "--name", container]
        command += ["--mount", f"type=volume,src={self.volume},dst={WORK}"]
        command += ["--mount", f"type=bind,src={REPO / 'bench' / 'in_image.py'},dst=/bench/in_image.py,readonly"]
        if network:
            command += ["--network", network]
        command += ["--entrypoint", "python3", self.image, "/bench/in_image.py", *arguments]
        return json.loads(run(*command, stdin=stdin or ""))

    def image_sizes(self) -> tuple[list[Row], list[Row], list[str]]:
        image_size = self.docker.images.get(self.image).attrs["Size"]
        base_size = self.docker.images.get(self.base).attrs["Size"]
        history = self.docker.api.history(self.image)

        def layer_size(*words: str) -> int:
            """Size of the image's layer whose command holds every word (0: none)."""
            return next((layer["Size"] for layer in history if all(word in layer["CreatedBy"] for word in words)), 0)

        runtime_layer = layer_size("apt-get install")
        # COPY --from=tools: the virtual environment of the sqlserver_backup
        # package and its libraries (minio-py, prometheus_client, PyYAML).
        package_layer = layer_size("COPY", "/opt/sqlserver-backup")
        base_packages = set(
            run("docker", "run", "--rm", "--entrypoint", "dpkg-query", self.base, "-W", "-f", "${Package}\\n").split()
        )
        measured = self.in_image("sizes")
        tools: dict[str, int] = measured["tools"]
        added = {name: sizes for name, sizes in measured["packages"].items() if name not in base_packages}
        runtime = {name: sizes for name, sizes in added.items() if SQLPACKAGE_RUNTIME.match(name)}
        rest_packages = {name: sizes for name, sizes in added.items() if name not in runtime}
        sqlpackage_share = tools["sqlpackage"] + sum(sizes["files"] for sizes in runtime.values())
        rest = image_size - base_size - sqlpackage_share - tools["gobackup"] - tools["sqlcmd"]
        rows = [
            Row("1. Image size (total)", megabytes(image_size)),
            Row(f"1. Base image ({self.base})", megabytes(base_size)),
            Row(
                "1. sqlpackage: /usr/local/sqlpackage + its runtime libraries (see note)",
                f"{megabytes(sqlpackage_share)} ({megabytes(tools['sqlpackage'])} + libraries"
                f" {megabytes(sqlpackage_share - tools['sqlpackage'])})",
            ),
            Row("1. GoBackup: /usr/local/bin/gobackup", megabytes(tools["gobackup"])),
            Row("1. go-sqlcmd: /usr/local/bin/sqlcmd", megabytes(tools["sqlcmd"])),
            Row(
                "1. The rest (image - base - the three above)",
                megabytes(rest),
                f"<= {REST_TARGET_MB} MB",
                "PASS" if rest <= REST_TARGET_MB * MB else "FAIL",
            ),
            Row("1. Runtime layer (the apt-get install RUN of image/Dockerfile)", megabytes(runtime_layer)),
            Row(
                "1. Python layer (COPY of /opt/sqlserver-backup: the package, minio-py, prometheus_client, PyYAML)",
                f"{megabytes(package_layer)} ({package_layer / max(rest, 1):.0%} of the rest)",
                f"part of the rest's {REST_TARGET_MB} MB",
            ),
        ]
        ranked = sorted(rest_packages.items(), key=lambda item: -item[1]["files"])
        breakdown = [
            Row(name, megabytes(sizes["files"]), f"Installed-Size {megabytes(sizes['installed_size'])}")
            for name, sizes in ranked[:12]
        ]
        others = ranked[12:]
        if others:
            breakdown.append(
                Row(f"{len(others)} other packages", megabytes(sum(sizes["files"] for _, sizes in others)))
            )
        outside = rest - sum(sizes["files"] for sizes in rest_packages.values())
        breakdown.append(
            Row(
                "outside packages: Python bytecode, dpkg database, CA bundle, scripts, layer overhead",
                megabytes(outside),
                f"bytecode {megabytes(measured['bytecode'])}",
            )
        )
        note = (
            "sqlpackage's share counts the packages the image adds for its .NET runtime: "
            + ", ".join(f"{name} {megabytes(sizes['files'])}" for name, sizes in sorted(runtime.items()))
            + ". Sizes are bytes of the files (1 MB = 10^6 bytes), of the layers for the totals."
        )
        return rows, breakdown, [note]

    # --- the work volume -----------------------------------------------------------------

    def archive_rows(self) -> list[Row]:
        results = self.in_image("archive", SOURCE_DIR, MODEL, *ARCHIVE_TYPES)
        winner = archive_winner(results)
        compress_defaults = {
            "roles/backup_config (backup_config_compress)": role_defaults("backup_config")["backup_config_compress"],
            "image/gobackup.yml.template (BACKUP_COMPRESS)": re.search(
                r"type: \$\{BACKUP_COMPRESS:-([^}]+)\}", (REPO / "image" / "gobackup.yml.template").read_text()
            ).group(1),
        }
        per_gib = self.size / GIB
        rows = [
            Row(
                f"3. Archive a {gibibytes(self.size)} bacpac, compress type {result['type']}",
                f"{result['seconds']:.1f} s ({result['seconds'] / per_gib:.1f} s/GiB,"
                f" CPU {result['cpu_seconds']:.1f} s),"
                f" {gibibytes(result['bytes'])} ({(result['bytes'] / self.size - 1) * 100:+.2f} %)",
                WINNER_RULE,
                "winner" if result["type"] == winner else "-",
            )
            for result in results
        ]
        defaults = sorted(set(compress_defaults.values()))
        rows.append(
            Row(
                "3. Project default compress type",
                ", ".join(f"{value} ({where})" for where, value in compress_defaults.items()),
                f"= winner ({winner})",
                "PASS" if defaults == [winner] else "FAIL",
            )
        )
        return rows

    def start_minio(self, minio_image: str) -> tuple[str, str, str, str]:
        """A MinIO of the stack's image on a network of this run; returns the
        network, the host port and the root credentials."""
        network = f"{self.name}-net"
        run("docker", "network", "create", network, quiet=True)
        self.on_exit(quietly, "docker", "network", "rm", network)
        user, password = "bench-root", secrets.token_hex(20)
        environment = self.tmp / "minio.env"
        environment.touch(mode=0o600)
        environment.write_text(f"MINIO_ROOT_USER={user}\nMINIO_ROOT_PASSWORD={password}\n")
        port = minio_port()
        container = f"{self.name}-minio"
        self.on_exit(quietly, "docker", "rm", "-f", "-v", container)
        command = ["docker", "run", "-d", "--name", container, "--network", network, "--network-alias", "minio"]
        command += ["-p", f"127.0.0.1:{port}:9000", "--env-file", str(environment)]
        # MinIO keeps the object in memory when it fits, so that its writes do
        # not compete with the backup host's own for the same disk.
        # Room for every run's archive (keep: 7) and one more part.
        size = (PIPELINE_RUNS + 1) * self.size + 512 * 1024**2
        if available_memory() > 2 * size:
            self.minio_storage = "tmpfs"
            uid, _, gid = str(self.docker.images.get(minio_image).attrs["Config"]["User"]).partition(":")
            command += ["--tmpfs", f"/data:rw,size={size},uid={uid},gid={gid or uid},mode=0750"]
        else:
            self.minio_storage = "a Docker volume on the same disk"
            command += ["--mount", f"type=volume,src={self.name}-minio,dst=/data"]
            self.on_exit(quietly, "docker", "volume", "rm", f"{self.name}-minio")
        run(*command, minio_image, quiet=True)

        def its_log() -> str:
            logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True, check=False)
            return f"MinIO to start; its log:\n{logs.stdout}{logs.stderr}"

        wait_until(lambda: answers(f"http://127.0.0.1:{port}/minio/health/live"), its_log, 60, interval=0.5)
        return network, str(port), user, password

    def pipeline_rows(self, minio_image: str) -> list[Row]:
        network, port, user, password = self.start_minio(minio_image)
        client = Minio(f"127.0.0.1:{port}", access_key=user, secret_key=password, secure=False)
        client.make_bucket("bench")
        compress = role_defaults("backup_config")["backup_config_compress"]
        settings = {
            "root": BENCH_ROOT,
            "runs": PIPELINE_RUNS,
            "model": MODEL,
            "database": DATABASE,
            "bacpac": BACPAC,
            "compress": compress,
            "endpoint": "http://minio:9000",
            "bucket": "bench",
            "path": f"bench/{MODEL}",
            "access_key": user,
            "secret_key": password,
        }
        log(f"backup pipeline: gobackup perform, 3 runs ({compress}; MinIO and local storages)")
        result = self.in_image("pipeline", stdin=json.dumps(settings), network=network)
        if "error" in result:
            raise RuntimeError(f"gobackup perform failed:\n{result['error']}")
        runs = result["runs"]
        uploaded = {
            item.object_name.rsplit("/", 1)[-1]: item.size
            for item in client.list_objects("bench", prefix=f"bench/{MODEL}/", recursive=True)
            if ".gobackup-state" not in item.object_name
        }
        copies = {name: size for each in runs for name, size in each["local_copies"].items()}
        if len(uploaded) != len(runs) or any(uploaded.get(name) != size for name, size in copies.items()):
            raise RuntimeError(f"unexpected result: uploaded {uploaded}, local copies {copies}")
        archive_bytes = max(copies.values())
        log("physical floor: sequential write and read of the same size on the same volume")
        floor = self.in_image("floor", f"{BENCH_ROOT}/floor", str(self.size))
        gib = self.size / GIB
        floor_seconds = floor["write_seconds"] + floor["read_seconds"]
        seconds = statistics.median(each["seconds"] for each in runs)
        durable = statistics.median(each["seconds"] + each["sync_seconds"] for each in runs)
        steady = max(runs[1:], key=lambda each: each["peak_bytes"])
        # The moment before GoBackup removes its temp dir: the bacpac, the
        # archive, the new local copy and the previous one (pruned just after).
        needed = self.size + 3 * archive_bytes
        run_times = ", ".join(f"{each['seconds']:.1f}" for each in runs)
        uploads = [each["upload_seconds"] for each in runs if each["upload_seconds"] is not None]
        upload = statistics.median(uploads) if uploads else None
        return [
            Row(
                f"4. Pipeline after the export, per GiB: archive ({compress}) + upload to MinIO + local copy"
                " (median of 3 runs; runs 2 and 3 prune the previous local copy)",
                f"{seconds / gib:.1f} s/GiB (runs: {run_times} s for {gibibytes(self.size)})",
            ),
            Row(
                "4. ... of which the upload to MinIO (GoBackup's log: Uploaded ... Duration)",
                f"{upload / gib:.1f} s/GiB" if upload is not None else "not in GoBackup's log",
            ),
            Row(
                "4. ... until written to disk (GoBackup does not flush: sync -f of the volume after each run)",
                f"{durable / gib:.1f} s/GiB",
            ),
            Row(
                "4. Floor on the same volume, per GiB: 1 sequential write (fdatasync) + 1 read (page cache dropped),"
                " median of 3",
                f"{floor_seconds / gib:.1f} s/GiB (write {floor['write_seconds'] / gib:.1f}"
                f" + read {floor['read_seconds'] / gib:.1f})",
            ),
            Row(
                "4. Pipeline beyond the floor: as GoBackup returns / until on disk",
                f"x{seconds / floor_seconds:.2f}, {(seconds - floor_seconds) / gib:+.1f} s/GiB"
                f" / x{durable / floor_seconds:.2f}, {(durable - floor_seconds) / gib:+.1f} s/GiB",
            ),
            Row(
                "4. Peak work-volume use per GiB of bacpac, sampled every 100 ms (runs 2 and 3)",
                f"{steady['peak_bytes'] / self.size:.2f} GiB/GiB ({steady['samples']} samples; before the run"
                f" {steady['baseline_bytes'] / self.size:.2f}: the bacpac and the previous local copy)",
            ),
            Row(
                "4. Work volume needed per GiB of bacpac: bacpac + archive + new and previous local copy",
                f"{needed / self.size:.2f} GiB/GiB (exists for a moment at the end of each run)",
            ),
        ]

    # --- section 5: deploy to test hosts ------------------------------------------------

    def fleet_hosts(self, count: int) -> list[dict[str, str]]:
        network = FLEET_SUBNET.rsplit(".", 1)[0]
        return [
            {"name": f"backup-{n}", "address": f"{network}.{10 + n}", "kind": "docker"} for n in range(1, count + 1)
        ]

    def fleet(self, count: int, state: str) -> None:
        """Starts (present) or removes (absent) `count` test hosts with
        tests/fleet/hosts.yml; kind docker: a deploy finds Docker installed."""
        settings = self.tmp / f"fleet-{count}.yml"
        settings.write_text(
            yaml.safe_dump(fleet_vars(self.tmp / "fleet", self.fleet_network, FLEET_SUBNET, self.fleet_hosts(count)))
        )
        playbook_output(str(FLEET_PLAYBOOK), "-e", f"@{settings}", "-e", f"fleet_state={state}")
        if state == "present":
            for host in self.fleet_hosts(count):
                self.wait_for_engine(f"{self.fleet_network}-{host['name']}")

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

    def start_fleet_minio(self, minio_image: str) -> None:
        """MinIO on the test hosts' network: the backup container's start-up
        check reaches it, as it reaches MinIO in production."""
        container = f"{self.fleet_network}-minio"
        self.on_exit(quietly, "docker", "rm", "-f", "-v", container)
        environment = self.tmp / "fleet-minio.env"
        environment.touch(mode=0o600)
        environment.write_text(f"MINIO_ROOT_USER=bench-root\nMINIO_ROOT_PASSWORD={secrets.token_hex(20)}\n")
        run(
            "docker", "run", "-d", "--name", container, "--network", self.fleet_network, "--ip", FLEET_MINIO_ADDRESS,
            "--env-file", str(environment), minio_image, quiet=True,
        )  # fmt: skip
        wait_until(
            lambda: answers(f"http://{FLEET_MINIO_ADDRESS}:9000/minio/health/live"),
            "MinIO on the test hosts' network to start",
            60,
            interval=0.5,
        )

    def deploy_inventory(self, count: int, schedule: str, settings: dict[str, Any]) -> Path:
        """An inventory shaped like molecule/fleet's: the hosts reached over
        SSH with the fleet's key, their settings in group_vars (mode 0600:
        it holds the run's throwaway secrets)."""
        directory = self.tmp / f"inventory-{count}"
        (directory / "group_vars").mkdir(parents=True, exist_ok=True)
        hosts = {host["name"]: {"ansible_host": host["address"]} for host in self.fleet_hosts(count)}
        connection = fleet_connection(self.tmp / "fleet")
        (directory / "hosts.yml").write_text(yaml.safe_dump({"backup_hosts": {"hosts": hosts, "vars": connection}}))
        group_vars = directory / "group_vars" / "backup_hosts.yml"
        group_vars.touch(mode=0o600)
        group_vars.write_text(yaml.safe_dump({**settings, "backup_config_schedule": schedule}))
        return directory / "hosts.yml"

    def deploy(self, count: int, schedule: str, settings: dict[str, Any], arguments: list[str]) -> Deploy:
        """Runs playbooks/deploy.yml on `count` test hosts; stops unless every
        host reports itself deployed."""
        inventory = self.deploy_inventory(count, schedule, settings)
        environment = {
            "ANSIBLE_PIPELINING": "true",
            "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
            # Per set of hosts: a recreated host must not meet the SSH master
            # connection of the one it replaces (same address).
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.tmp / f"ssh-{count}"),
        }
        started = time.monotonic()
        output = playbook_output(
            "-i", str(inventory), *arguments, "-e", f"backup_image_archive_dir={self.tmp / f'images-{count}'}",
            str(REPO / "playbooks" / "deploy.yml"), environment=environment,
        )  # fmt: skip
        seconds = time.monotonic() - started
        recap = play_recap(output)
        names = [host["name"] for host in self.fleet_hosts(count)]
        for name in names:
            counts = recap.get(name, {})
            if counts.get("failed", 1) or counts.get("unreachable", 1) or f"{name}: deployed " not in output:
                raise RuntimeError(f"playbooks/deploy.yml did not deploy {name}:\n{output}")
        states = {name: self.backup_container(name) for name in names}
        unhealthy = {name: state for name, state in states.items() if state[1] != "healthy"}
        if unhealthy:
            raise RuntimeError(f"the backup container is not healthy: {unhealthy}")
        return Deploy(self.built_image, seconds, output, {name: recap[name] for name in names}, states)

    def backup_container(self, host: str) -> tuple[str, str]:
        """When the backup container on a test host started, and its health."""
        container = f"{role_defaults('backup_stack')['backup_stack_project']}-backup-1"
        state = run(
            "docker", "exec", f"{self.fleet_network}-{host}", "docker", "inspect", "--format",
            "{{.State.StartedAt}} {{if .State.Health}}{{.State.Health.Status}}{{end}}", container, quiet=True,
        )  # fmt: skip
        started, _, health = state.strip().partition(" ")
        return started, health

    def deploy_rows(self, overrides: Path, minio_image: str) -> tuple[list[Row], list[str]]:
        """Deploys the image built above with playbooks/deploy.yml to 1, then
        to 3 fresh test hosts, each time once more with nothing to change,
        and last with a config-only change."""
        if not self.built_base:
            # BENCH_IMAGE names an image no deploy of this run built: build the
            # run's own (from the layer cache when the base has been built on).
            log(f"building {self.built_image} for the deploys (BENCH_IMAGE is not a deploy's own build)")
            self.on_exit(quietly, "docker", "rmi", self.built_image)
            self.build(self.base, overrides)
        name, tag = self.built_image.split(":")
        image_vars = self.tmp / "deploy-image.yml"
        image_vars.write_text(
            yaml.safe_dump(
                {
                    # The inputs of the build above, so the deploys find the image current.
                    "backup_build_base_image": False,
                    "backup_image_base": self.built_base,
                    "backup_image_name": name,
                    "backup_image_tag": tag,
                    "backup_image_build_dir": str(self.tmp / "build"),
                    "backup_image_build_host": "localhost",
                    "backup_image_ship_method": "archive",
                }
            )
        )
        arguments = ["-e", f"@{TEST_VARS}", "-e", f"@{overrides}", "-e", f"@{image_vars}"]
        # No SQL Server: a deploy exports nothing. Its address is MinIO's,
        # whose port 1433 refuses at once, so the container's start-up check
        # does not wait out its timeout. The secrets are this run's only.
        settings = {
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
        }
        # Removed last to first: MinIO, the hosts, then the network the
        # fleet's playbook leaves.
        self.on_exit(quietly, "docker", "network", "rm", self.fleet_network)
        self.on_exit(self.fleet, max(FLEET_SIZES), "absent")
        first: dict[int, Deploy] = {}
        again: dict[int, Deploy] = {}
        for count in FLEET_SIZES:
            hosts = f"{count} host{'s' if count > 1 else ''}"
            log(f"starting {hosts} with Docker (tests/fleet/hosts.yml)")
            self.fleet(count, "present")
            if not first:
                self.start_fleet_minio(minio_image)
            log(f"deploy to {hosts}: first run, then no-op re-run")
            first[count] = self.deploy(count, SCHEDULES[0], settings, arguments)
            again[count] = self.deploy(count, SCHEDULES[0], settings, arguments)
            if count != max(FLEET_SIZES):
                self.fleet(count, "absent")
        count = max(FLEET_SIZES)
        log(f"re-deploy to {count} hosts after a config-only change (backup_config_schedule)")
        changed = self.deploy(count, SCHEDULES[1], settings, arguments)
        one, many = min(FLEET_SIZES), max(FLEET_SIZES)
        hosts_one = "1 host (backup-1)"
        no_op = again[one]
        counts = no_op.recap["backup-1"]
        rows = [
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
            self.config_change_row(changed, again[many]),
        ]
        notes = [
            f"Section 5 deploys with playbooks/deploy.yml over SSH to test hosts that are containers on this"
            f" machine (tests/fleet/hosts.yml: own sshd and Docker engine), sharing its {os.cpu_count()} CPUs and"
            f" disk: {many} hosts copy and load the image archive at the same time. Each first run starts on fresh"
            " hosts and with no image archive (the docker save is in it); the image is this run's own build, so"
            " the deploys find it current and build nothing. A no-op re-run follows its first run within seconds,"
            " so it reuses the SSH connections (ControlPersist). A (re)started backup container reports healthy at"
            " its first health check, 10 s after its start, and the deploy waits for that.",
        ]
        return rows, notes

    def config_change_row(self, changed: Deploy, before: Deploy) -> Row:
        """The re-deploy after a config-only change: no image build, and every
        host's backup container restarted by the config's handler."""
        build = changed.build_results()
        restart = changed.task_results("backup_config : Restart backup container")
        hosts = sorted(changed.recap)
        restarted = [
            host
            for host in hosts
            if f"changed: [{host}]" in restart and changed.containers[host][0] != before.containers[host][0]
        ]
        build_skipped = bool(build) and all(line.startswith("skipping:") for line in build)
        found = [
            "image build skipped" if build_skipped else f"image build: {build or 'task not in the output'}",
            f"backup container restarted on {len(restarted)}/{len(hosts)} hosts",
        ]
        return Row(
            f"5. Re-deploy to {len(hosts)} hosts after a config-only change (backup_config_schedule)",
            f"{changed.seconds:.1f} s ({', '.join(found)}; changed={changed.changed()})",
            "no image build, the backup container restarted",
            verdict(build_skipped and len(restarted) == len(hosts)),
        )


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

    def build_results(self) -> list[str]:
        return self.task_results(f"backup_image : Build {self.image}")

    def rebuilt(self) -> str:
        """A warning for the table when this deploy built the image again
        instead of shipping the one built before it."""
        built = any(not line.startswith("skipping:") for line in self.build_results())
        return " (built the image again: not comparable)" if built else ""


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


WINNER_RULE = "smallest (1 % = equal), then fastest (10 % = equal), then least CPU"


def archive_winner(results: list[dict[str, Any]]) -> str:
    """The compress type that wins: the smallest archive; among archives
    within 1 % of it, the shortest time; among times within 10 % of that
    (noise on a shared machine), the least CPU."""
    smallest = min(result["bytes"] for result in results)
    small = [result for result in results if result["bytes"] <= smallest * 1.01]
    fastest = min(result["seconds"] for result in small)
    fast = [result for result in small if result["seconds"] <= fastest * 1.10]
    return min(fast, key=lambda result: result["cpu_seconds"])["type"]


def minio_port() -> int:
    """A free port of MINIO_PORTS, where the benchmark publishes its MinIO."""
    for port in MINIO_PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {MINIO_PORTS.start}-{MINIO_PORTS.stop - 1}")


def available_memory() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def table(rows: list[Row], header: tuple[str, ...] = ("Figure", "Measured", "Target", "Verdict")) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += [f"| {row.figure} | {row.measured} | {row.target} | {row.verdict} |" for row in rows]
    return "\n".join(lines)


@contextlib.contextmanager
def terminated_cleanly() -> Iterator[None]:
    """A SIGTERM unwinds like Ctrl-C, so the clean-up runs."""

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def leftovers(*names: str) -> list[str]:
    """What of this run is still on the Docker engine after the clean-up."""
    found = []
    for name in names:
        for kind in ("container", "volume", "network"):
            listed = run(
                "docker", kind, "ls", *(["-a"] if kind == "container" else []), "-q", "--filter", f"name={name}"
            )
            found += [f"{kind} {item}" for item in listed.split()]
    return found


def measured(rows: list[Row], figure: str, measure: Callable[[], list[Row]]) -> bool:
    """Adds a section's rows, or one ERROR row when it failed (the reason on stderr)."""
    try:
        rows += measure()
    except (RuntimeError, KeyError, ValueError, docker.errors.DockerException) as error:
        log(f"{figure} failed: {error}")
        rows.append(Row(figure, f"failed: {str(error).splitlines()[0][:120]}", "-", "ERROR"))
        return False
    return True


def main() -> int:
    succeeded = True
    with terminated_cleanly(), contextlib.ExitStack() as stack:
        bench = Bench(stack)
        stack.callback(lambda: [log(f"left behind: {item}") for item in leftovers(bench.name, bench.fleet_network)])
        log(f"run {bench.id}: {gibibytes(bench.size)} bacpac, vars {TEST_VARS.relative_to(REPO)}")
        overrides = bench.standin_overrides()
        minio_image = bench.prepare_images(overrides)
        if os.environ.get("BENCH_IMAGE"):
            bench.image = os.environ["BENCH_IMAGE"]
            built = "not measured: BENCH_IMAGE names an image"
        else:
            built = f"{bench.cold_build(overrides):.0f} s"
        rows: list[Row] = []
        breakdown: list[Row] = []
        notes: list[str] = []

        def sizes() -> list[Row]:
            size_rows, more, size_notes = bench.image_sizes()
            breakdown.extend(more)
            notes.extend(size_notes)
            return size_rows

        succeeded &= measured(rows, "1. Image size", sizes)
        rows.append(Row("2. Cold build of the backup image (playbooks/build.yml, no layer cache)", built))
        run("docker", "volume", "create", bench.volume, quiet=True)
        bench.on_exit(quietly, "docker", "volume", "rm", bench.volume)
        log(f"making a {gibibytes(bench.size)} bacpac-like file of random data on the work volume")
        bench.in_image("make-bacpac", BACPAC, str(bench.size))
        log("archiving it with GoBackup's tar command per compress type, 3 rounds")
        succeeded &= measured(rows, "3. Archive", bench.archive_rows)
        succeeded &= measured(rows, "4. Pipeline after the export", lambda: bench.pipeline_rows(minio_image))

        def deploys() -> list[Row]:
            deploy_rows, deploy_notes = bench.deploy_rows(overrides, minio_image)
            notes.extend(deploy_notes)
            return deploy_rows

        succeeded &= measured(rows, "5. Deploy", deploys)
        if bench.minio_storage:
            notes.append(f"MinIO ran beside the backup container with its data on {bench.minio_storage}.")
        notes.append(
            "The export is a hard link of the prepared .bacpac (a sqlpackage shim first on GoBackup's PATH), so"
            " section 4 times what follows the export. Work volume: a Docker volume on the engine's data root."
        )
        print(table(rows))
        if breakdown:
            print()
            print("What the rest holds (packages the image adds beyond the base and sqlpackage's runtime):")
            print()
            print(table(breakdown, ("Package", "Files", "Note", "")))
        print()
        for note in notes:
            print(f"- {note}")
    return 0 if succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
