"""Sections 1 and 2 of the benchmark: the backup image built cold through
playbooks/build.yml, and what it is made of (the base, sqlpackage with its
runtime libraries, GoBackup, go-sqlcmd and the rest, per package)."""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import yaml
from common import MB, PREFIX, Bench, Row, log, megabytes, playbook_output, run
from sqlserver_backup_testing import ARTIFACTS, REPO, TEST_VARS, build_standins, role_defaults

# Where tests/playbooks/prepare_standins.yml serves the stand-ins; the
# benchmark reads them from disk instead and starts no artifact server.
STANDIN_SERVER = "http://127.0.0.1:8765/"
# sqlpackage's .NET runtime libraries (README of the image: ICU, OpenSSL,
# Kerberos, zlib, libunwind); counted in sqlpackage's share of the image.
SQLPACKAGE_RUNTIME = re.compile(
    r"^(libicu\d+|libssl\d+(t64)?|libgssapi-krb5-2|libkrb5-3|libk5crypto3|libkrb5support0|libkeyutils1"
    r"|libcom-err2|libunwind\d*|zlib1g|libstdc\+\+6|libgcc-s1)$"
)
REST_TARGET_MB = 60
# The packages of the rest listed one by one in the breakdown; the others are summed.
LISTED_PACKAGES = 12


def standin_overrides(bench: Bench) -> Path:
    """Vars that take the stand-in artifacts from disk (tests/.artifacts)
    instead of the artifact server on 127.0.0.1:8765."""
    overrides: dict[str, str] = {}
    if bench.test_vars.get("test_standins"):
        log("building the stand-in artifacts (tests/standins/build_artifacts.py)")
        build_standins(ARTIFACTS)
        sums = {}
        for listing in ("SHA256SUMS", "checksums.txt"):
            for line in (ARTIFACTS / listing).read_text().splitlines():
                digest, name = line.split()
                sums[name] = digest
        for artifact in ("sqlpackage", "gobackup", "sqlcmd"):
            url = str(bench.test_vars.get(f"backup_image_{artifact}_url", ""))
            if url.startswith(STANDIN_SERVER):
                name = url.removeprefix(STANDIN_SERVER)
                overrides[f"backup_image_{artifact}_url"] = str(ARTIFACTS / name)
                overrides[f"backup_image_{artifact}_checksum"] = f"sha256:{sums[name]}"
    path = bench.tmp / "artifact-vars.yml"
    path.write_text(yaml.safe_dump(overrides))
    return path


def prepare_images(bench: Bench, overrides: Path) -> str:
    """The base image (and the MinIO image when missing); returns the MinIO image."""
    minio_defaults = role_defaults("minio_image")
    minio_image = f"{minio_defaults['minio_image_name']}:{minio_defaults['minio_image_tag']}"
    build_minio = not image_exists(bench, minio_image)
    log(f"preparing the base image {bench.base}" + (f" and building {minio_image}" if build_minio else ""))
    playbook_output(
        "-e", f"@{TEST_VARS}", "-e", f"@{overrides}", "-e", f"backup_image_base={bench.base}",
        "-e", f"bench_build_minio={str(build_minio).lower()}", str(REPO / "bench" / "prepare.yml"),
    )  # fmt: skip
    return minio_image


def image_exists(bench: Bench, name: str) -> bool:
    try:
        bench.docker.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    return True


def remove_image_tree(bench: Bench, root: str) -> None:
    """Removes an image and every image built on it (intermediate and
    multi-stage images of the build included): all of them are this run's."""
    children: dict[str, list[str]] = {}
    for image in bench.docker.api.images(all=True):
        children.setdefault(image.get("ParentId", ""), []).append(image["Id"])
    order: list[str] = []

    def visit(image_id: str) -> None:
        for child in children.get(image_id, []):
            visit(child)
        order.append(image_id)

    visit(root)
    for image_id in order:
        with contextlib.suppress(docker.errors.NotFound):
            bench.docker.api.remove_image(image_id, force=True)


def cold_build(bench: Bench, overrides: Path) -> float:
    """Builds the image through playbooks/build.yml with no layer cache to
    reuse: its base is a copy of the base image under a new image ID (one
    label more), so every step of image/Dockerfile runs. Shipped `local`:
    the build alone is timed, and no image archive is written."""
    cold_base = f"{PREFIX}/cold-base:{bench.id}"
    run(
        "docker", "build", "-q", "--label", f"org.sqlserver-backup.bench-run={bench.id}", "-t", cold_base, "-",
        stdin=f"FROM {bench.base}\n", quiet=True,
    )  # fmt: skip
    bench.on_exit(remove_image_tree, bench, bench.docker.images.get(cold_base).id)
    log(f"cold build of {bench.image} through playbooks/build.yml")
    started = time.monotonic()
    build_image(bench, cold_base, overrides)
    return time.monotonic() - started


def build_image(bench: Bench, base: str, overrides: Path) -> None:
    """Builds bench.built_image from `base` through playbooks/build.yml,
    shipped `local` (no image archive is written)."""
    name, tag = bench.built_image.split(":")
    output = playbook_output(
        "-i", str(REPO / "inventories" / "dev"), "-e", f"@{TEST_VARS}", "-e", f"@{overrides}",
        "-e", "backup_build_base_image=false", "-e", f"backup_image_base={base}",
        "-e", "backup_image_ship_method=local",
        "-e", f"backup_image_name={name}", "-e", f"backup_image_tag={tag}",
        "-e", f"backup_image_build_dir={bench.tmp / 'build'}", str(REPO / "playbooks" / "build.yml"),
    )  # fmt: skip
    if f"{bench.built_image}: " not in output:
        raise RuntimeError(f"playbooks/build.yml did not report {bench.built_image}:\n{output}")
    bench.built_base = base


@dataclass
class ImageMakeup:
    """What the image is made of, in bytes: its layers, its tools, and the
    packages it adds to the base (per package: files and Installed-Size)."""

    image: int
    base: int
    runtime_layer: int
    package_layer: int
    tools: dict[str, int]
    runtime: dict[str, dict[str, int]]
    rest_packages: dict[str, dict[str, int]]
    bytecode: int

    @property
    def sqlpackage_share(self) -> int:
        return self.tools["sqlpackage"] + sum(sizes["files"] for sizes in self.runtime.values())

    @property
    def rest(self) -> int:
        return self.image - self.base - self.sqlpackage_share - self.tools["gobackup"] - self.tools["sqlcmd"]


def image_makeup(bench: Bench) -> ImageMakeup:
    history = bench.docker.api.history(bench.image)

    def layer_size(*words: str) -> int:
        """Size of the image's layer whose command holds every word (0: none)."""
        return next((layer["Size"] for layer in history if all(word in layer["CreatedBy"] for word in words)), 0)

    base_packages = set(
        run("docker", "run", "--rm", "--entrypoint", "dpkg-query", bench.base, "-W", "-f", "${Package}\\n").split()
    )
    measured = bench.in_image("sizes")
    added = {name: sizes for name, sizes in measured["packages"].items() if name not in base_packages}
    runtime = {name: sizes for name, sizes in added.items() if SQLPACKAGE_RUNTIME.match(name)}
    return ImageMakeup(
        image=bench.docker.images.get(bench.image).attrs["Size"],
        base=bench.docker.images.get(bench.base).attrs["Size"],
        runtime_layer=layer_size("apt-get install"),
        # COPY --from=tools: the virtual environment of the sqlserver_backup
        # package and its libraries (minio-py, prometheus_client, PyYAML).
        package_layer=layer_size("COPY", "/opt/sqlserver-backup"),
        tools=measured["tools"],
        runtime=runtime,
        rest_packages={name: sizes for name, sizes in added.items() if name not in runtime},
        bytecode=measured["bytecode"],
    )


def size_rows(bench: Bench, makeup: ImageMakeup) -> list[Row]:
    tools, rest = makeup.tools, makeup.rest
    return [
        Row("1. Image size (total)", megabytes(makeup.image)),
        Row(f"1. Base image ({bench.base})", megabytes(makeup.base)),
        Row(
            "1. sqlpackage: /usr/local/sqlpackage + its runtime libraries (see note)",
            f"{megabytes(makeup.sqlpackage_share)} ({megabytes(tools['sqlpackage'])} + libraries"
            f" {megabytes(makeup.sqlpackage_share - tools['sqlpackage'])})",
        ),
        Row("1. GoBackup: /usr/local/bin/gobackup", megabytes(tools["gobackup"])),
        Row("1. go-sqlcmd: /usr/local/bin/sqlcmd", megabytes(tools["sqlcmd"])),
        Row(
            "1. The rest (image - base - the three above)",
            megabytes(rest),
            f"<= {REST_TARGET_MB} MB",
            "PASS" if rest <= REST_TARGET_MB * MB else "FAIL",
        ),
        Row("1. Runtime layer (the apt-get install RUN of image/Dockerfile)", megabytes(makeup.runtime_layer)),
        Row(
            "1. Python layer (COPY of /opt/sqlserver-backup: the package, minio-py, prometheus_client, PyYAML)",
            f"{megabytes(makeup.package_layer)} ({makeup.package_layer / max(rest, 1):.0%} of the rest)",
            f"part of the rest's {REST_TARGET_MB} MB",
        ),
    ]


def rest_breakdown(makeup: ImageMakeup) -> list[Row]:
    """What the rest holds: its largest packages, the others summed, and
    what no package owns."""
    ranked = sorted(makeup.rest_packages.items(), key=lambda item: -item[1]["files"])
    breakdown = [
        Row(name, megabytes(sizes["files"]), f"Installed-Size {megabytes(sizes['installed_size'])}")
        for name, sizes in ranked[:LISTED_PACKAGES]
    ]
    others = ranked[LISTED_PACKAGES:]
    if others:
        breakdown.append(Row(f"{len(others)} other packages", megabytes(sum(sizes["files"] for _, sizes in others))))
    outside = makeup.rest - sum(sizes["files"] for sizes in makeup.rest_packages.values())
    breakdown.append(
        Row(
            "outside packages: Python bytecode, dpkg database, CA bundle, scripts, layer overhead",
            megabytes(outside),
            f"bytecode {megabytes(makeup.bytecode)}",
        )
    )
    return breakdown


def image_sizes(bench: Bench) -> tuple[list[Row], list[Row], list[str]]:
    """Section 1's rows, the breakdown of the rest, and the note on sqlpackage's share."""
    makeup = image_makeup(bench)
    note = (
        "sqlpackage's share counts the packages the image adds for its .NET runtime: "
        + ", ".join(f"{name} {megabytes(sizes['files'])}" for name, sizes in sorted(makeup.runtime.items()))
        + ". Sizes are bytes of the files (1 MB = 10^6 bytes), of the layers for the totals."
    )
    return size_rows(bench, makeup), rest_breakdown(makeup), [note]
