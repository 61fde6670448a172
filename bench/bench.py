"""The benchmark behind `./bench/run`: builds the backup image cold through
playbooks/build.yml, then measures, on this machine's Docker engine, what the
image is made of, how the compress types compare on a .bacpac, and what the
backup pipeline after the export costs next to the disk's own speed, and how long
playbooks/deploy.yml takes on 1 and 3 test hosts (tests/fleet/hosts.yml), and
how 40 models due at one minute run in 1, 2 and 4 GoBackup workers.
Prints one table: figure | measured | target | verdict. The sections are
measured by image_figures.py (1, 2), pipeline_figures.py (3, 4),
deploy_figures.py (5) and parallel_figures.py (6); common.py holds the run and
what they share.

Like the tests, it builds from the stand-ins (tests/offline-vars.yml) unless
SQLSERVER_BACKUP_TEST_VARS names another vars file (tests/upstream-vars.yml
for the real tools). BENCH_GIB sets the size of the .bacpac (default 1);
BENCH_IMAGE=<image> measures that image instead of building one;
BENCH_SECTIONS=6 (a comma-separated list) measures only those sections.
Everything it starts (containers, network, volume, images, temp files) is
named sqlserver-backup-bench-<run id> (the deploy's test hosts
sqlserver-backup-benchfleet-<run id>) and removed at the end, also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator

import docker
from common import BACPAC, Bench, Row, gibibytes, log, quietly, run
from deploy_figures import deploy_rows
from image_figures import cold_build, image_sizes, prepare_images, standin_overrides
from parallel_figures import parallel_rows
from pipeline_figures import archive_rows, pipeline_rows
from sqlserver_backup_testing import REPO, TEST_VARS


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


def print_report(rows: list[Row], breakdown: list[Row], notes: list[str]) -> None:
    print(table(rows))
    if breakdown:
        print()
        print("What the rest holds (packages the image adds beyond the base and sqlpackage's runtime):")
        print()
        print(table(breakdown, ("Package", "Files", "Note", "")))
    print()
    for note in notes:
        print(f"- {note}")


def chosen_sections() -> set[str]:
    """BENCH_SECTIONS: the sections to measure, e.g. "1,6" (default: all)."""
    chosen = {part.strip() for part in os.environ.get("BENCH_SECTIONS", "").split(",") if part.strip()}
    unknown = chosen - set(SECTIONS)
    if unknown:
        known = ", ".join(SECTIONS)
        raise SystemExit(f"BENCH_SECTIONS names no section {', '.join(sorted(unknown))} (sections: {known})")
    return chosen or set(SECTIONS)


SECTIONS = ("1", "2", "3", "4", "5", "6")


def main() -> int:
    sections = chosen_sections()
    succeeded = True
    with terminated_cleanly(), contextlib.ExitStack() as stack:
        bench = Bench(stack)
        stack.callback(lambda: [log(f"left behind: {item}") for item in leftovers(bench.name, bench.fleet_network)])
        log(f"run {bench.id}: {gibibytes(bench.size)} bacpac, vars {TEST_VARS.relative_to(REPO)}")
        overrides = standin_overrides(bench)
        minio_image = prepare_images(bench, overrides)
        if os.environ.get("BENCH_IMAGE"):
            bench.image = os.environ["BENCH_IMAGE"]
            built = "not measured: BENCH_IMAGE names an image"
        else:
            built = f"{cold_build(bench, overrides):.0f} s"
        rows: list[Row] = []
        breakdown: list[Row] = []
        notes: list[str] = []

        def sizes() -> list[Row]:
            size_rows, more, size_notes = image_sizes(bench)
            breakdown.extend(more)
            notes.extend(size_notes)
            return size_rows

        if "1" in sections:
            succeeded &= measured(rows, "1. Image size", sizes)
        if "2" in sections:
            rows.append(Row("2. Cold build of the backup image (playbooks/build.yml, no layer cache)", built))
        run("docker", "volume", "create", bench.volume, quiet=True)
        bench.on_exit(quietly, "docker", "volume", "rm", bench.volume)
        if sections & {"3", "4"}:
            log(f"making a {gibibytes(bench.size)} bacpac-like file of random data on the work volume")
            bench.in_image("make-bacpac", BACPAC, str(bench.size))
        if "3" in sections:
            log("archiving it with GoBackup's tar command per compress type, 3 rounds")
            succeeded &= measured(rows, "3. Archive", lambda: archive_rows(bench))
        if "4" in sections:
            succeeded &= measured(rows, "4. Pipeline after the export", lambda: pipeline_rows(bench, minio_image))

        def deploys() -> list[Row]:
            rows_of_deploys, deploy_notes = deploy_rows(bench, overrides, minio_image)
            notes.extend(deploy_notes)
            return rows_of_deploys

        if "5" in sections:
            succeeded &= measured(rows, "5. Deploy", deploys)
        if "6" in sections:
            succeeded &= measured(rows, "6. Parallel models", lambda: parallel_rows(bench, minio_image))
        if bench.minio_storage:
            notes.append(f"MinIO ran beside the backup container with its data on {bench.minio_storage}.")
        if sections & {"4", "6"}:
            notes.append(
                "The export is a stand-in for sqlpackage: in section 4 a hard link of the prepared .bacpac (first on"
                " GoBackup's PATH), so it times what follows the export; in section 6 a copy of a 50 MiB file, what an"
                " export writes (mounted over the image's sqlpackage, behind its wrapper)."
                " Work volume: a Docker volume on the engine's data root."
            )
        print_report(rows, breakdown, notes)
    return 0 if succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
