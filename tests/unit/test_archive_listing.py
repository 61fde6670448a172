"""Which objects under a model's path are its archives, and which is the
latest (image/sqlserver_backup/archives.py): the time in the name, in the
model's filename_format, must not be later than the upload. Anything else is
ignored and named, so a planted object never becomes the latest archive of a
restore, a drill, backup-verify, the status or the metrics."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest
from sqlserver_backup.archives import CLOCK_SKEW_SECONDS, listed_archives, newest_archive
from sqlserver_backup.s3 import StoredObject

pytestmark = pytest.mark.unit

UTC = datetime.timezone.utc
BODY = {"compress_with": {"type": "tar"}}


@pytest.fixture(autouse=True)
def utc_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Archive names are in the container's local time (TZ)."""
    monkeypatch.setenv("TZ", "UTC")


def at(text: str) -> float:
    return datetime.datetime.strptime(text, "%Y.%m.%d.%H.%M.%S").replace(tzinfo=UTC).timestamp()


def uploaded(name: str, when: str, size: int = 10) -> StoredObject:
    return StoredObject(name, size, at(when))


def test_archives_are_ordered_by_the_time_in_their_names() -> None:
    listing = listed_archives(
        [
            uploaded("2026.12.07.02.00.00.tar.gz.enc", "2026.12.07.02.40.00"),
            uploaded("2026.12.05.02.00.00.tar", "2026.12.05.02.31.00"),
            # Copied into this bucket later (a mirror): uploaded after it was made.
            uploaded("2026.12.06.02.00.00.tar.zst", "2026.12.07.09.00.00"),
        ],
        BODY,
    )
    assert listing.names == [
        "2026.12.05.02.00.00.tar",
        "2026.12.06.02.00.00.tar.zst",
        "2026.12.07.02.00.00.tar.gz.enc",
    ]
    assert listing.ignored == {}


def test_an_object_named_later_than_its_upload_is_ignored_and_named() -> None:
    planted = uploaded("2099.01.01.00.00.00.tar", "2026.12.07.10.00.00")
    # Named in a zone east of the one it is read in (a changed TZ): still an archive.
    east = uploaded("2026.12.07.11.00.00.tar", "2026.12.07.02.00.30")
    listing = listed_archives([uploaded("2026.12.07.02.00.00.tar", "2026.12.07.02.30.00"), planted, east], BODY)
    assert listing.names == ["2026.12.07.02.00.00.tar", "2026.12.07.11.00.00.tar"]
    assert listing.ignored == {
        "2099.01.01.00.00.00.tar": "its name is a time later than its upload at 2026-12-07 10:00:00 UTC"
    }


def test_a_name_ahead_of_the_upload_within_the_clock_skew_and_any_utc_offset_is_an_archive() -> None:
    made = at("2026.12.07.02.00.00")
    ahead = StoredObject("2026.12.07.02.00.00.tar", 10, made - CLOCK_SKEW_SECONDS)
    too_far = StoredObject("2026.12.07.02.00.01.tar", 10, made - CLOCK_SKEW_SECONDS)
    listing = listed_archives([ahead, too_far], BODY)
    assert listing.names == ["2026.12.07.02.00.00.tar"]
    assert list(listing.ignored) == ["2026.12.07.02.00.01.tar"]


@pytest.mark.parametrize("name", ["latest.tar", "2026.12.07.02.00.00.bacpac", "2026.13.07.02.00.00.tar", "notes.txt"])
def test_an_object_whose_name_is_no_archive_name_is_ignored_and_named(name: str) -> None:
    listing = listed_archives([uploaded(name, "2026.12.07.10.00.00")], BODY)
    assert listing.archives == []
    assert listing.ignored == {name: "not an archive name (filename_format 2006.01.02.15.04.05)"}


def test_the_models_own_filename_format_is_the_archive_name() -> None:
    body = {"compress_with": {"type": "tgz", "filename_format": "sales-2006-01-02-1504"}}
    listing = listed_archives(
        [
            uploaded("sales-2026-12-07-0200.tar.gz", "2026.12.07.02.30.00"),
            uploaded("2026.12.07.02.00.00.tar", "2026.12.07.02.30.00"),
        ],
        body,
    )
    assert listing.names == ["sales-2026-12-07-0200.tar.gz"]
    assert list(listing.ignored) == ["2026.12.07.02.00.00.tar"]


def test_the_newest_archive_of_a_local_storage_follows_the_same_rule(tmp_path: Path) -> None:
    def put(name: str, when: str, size: int) -> None:
        (tmp_path / name).write_bytes(b"x" * size)
        os.utime(tmp_path / name, (at(when), at(when)))

    put("2026.12.06.02.00.00.tar", "2026.12.06.02.30.00", 3)
    put("2026.12.07.02.00.00.tar", "2026.12.07.02.30.00", 5)
    put("2099.01.01.00.00.00.tar", "2026.12.07.03.00.00", 7)
    body = {"storages": {"disk": {"type": "local", "path": str(tmp_path)}}}
    newest = newest_archive(body, timeout=1)
    assert newest is not None
    assert (newest.name, newest.size) == ("2026.12.07.02.00.00.tar", 5)
    assert newest_archive({"storages": {"disk": {"type": "local", "path": str(tmp_path / "none")}}}, 1) is None
