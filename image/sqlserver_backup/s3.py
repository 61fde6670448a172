"""A model's S3 storage (GoBackup's minio or s3 type) as the restore, the
drills, backup-verify, backup-cleanup, the status and the metrics read it,
through minio-py.

GoBackup v3.1.1 uploads each archive as <path>/<archive name> and keeps its
own state under <path>/.gobackup-state/: the archives are the objects right
under the path. Every request is path-style, signed for the storage's region
(no GetBucketLocation first), with the storage's timeout for the connection
and for each read, never retried, and trusts the CA bundle Python's ssl
module trusts (SSL_CERT_FILE, set by the entrypoint to the bundle with
EXTRA_CA_CERTS, else the system's). Every failure becomes a RestoreError of
one line that names the endpoint and the bucket, never a secret.
"""

from __future__ import annotations

import contextlib
import shutil
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree.ElementTree import ParseError

import urllib3
from minio import Minio
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError
from minio.time import to_iso8601utc

from sqlserver_backup.errors import RestoreError

STATE_FOLDER = ".gobackup-state/"
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class StoredObject:
    """An object right under a model's path: its name, size in bytes and
    upload time (seconds since the epoch)."""

    name: str
    size: int
    modified: float


def http_client(timeout: float) -> urllib3.PoolManager:
    """No retries: a request that fails is reported at once, as a timeout
    bounds each connection and each read rather than the whole request."""
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout, read=timeout),
        retries=False,
        ssl_context=ssl.create_default_context(),
    )


def network_reason(error: Exception) -> str:
    """The socket's own words (`[Errno 111] Connection refused`, `timed out`)
    where urllib3 wraps them."""
    reason = getattr(error, "reason", None) or error
    cause = reason.__cause__ or reason.__context__
    return str(cause) if isinstance(cause, OSError) and str(cause) else str(reason)


@dataclass
class S3Storage:
    """The little of the S3 API a restore needs: listings, versions,
    downloads and the incomplete multipart uploads of one path."""

    endpoint: str
    bucket: str
    path: str
    region: str
    access_key: str
    secret_key: str
    timeout: float
    client: Minio = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        url = urlsplit(self.endpoint)
        try:
            self.client = Minio(
                url.netloc,
                access_key=self.access_key,
                secret_key=self.secret_key,
                secure=url.scheme == "https",
                region=self.region,
                http_client=http_client(self.timeout),
            )
        except ValueError as error:
            raise RestoreError(f"the storage endpoint {self.endpoint} cannot be used: {error}") from None
        # Path-style always (GoBackup's force_path_style), also on AWS hosts.
        self.client.disable_virtual_style_endpoint()

    @property
    def prefix(self) -> str:
        return self.path.strip("/") + "/" if self.path.strip("/") else ""

    def key(self, name: str) -> str:
        return "/".join(part for part in (self.path.strip("/"), name) if part)

    def archive_name(self, key: str) -> str:
        """The archive name of a key right under the path; '' for anything else."""
        name = key[len(self.prefix) :] if key.startswith(self.prefix) else ""
        return "" if name.startswith(STATE_FOLDER) or "/" in name else name

    @contextlib.contextmanager
    def answering(self, key: str = "") -> Iterator[None]:
        """minio-py's and urllib3's errors as one RestoreError line each."""
        try:
            yield
        except S3Error as error:
            raise self.refusal(error.response.status, error.code or "", key) from None
        except ServerError as error:
            raise self.refusal(error.status_code, "", key) from None
        except InvalidResponseError as error:
            # Not XML (a proxy's page): only its status says anything, and
            # minio-py keeps it in _code alone.
            raise self.refusal(getattr(error, "_code", "?"), "", key) from None
        except urllib3.exceptions.HTTPError as error:
            # urllib3 wraps every socket error (refused, reset, timed out,
            # TLS); an OSError is this side's own (a full disk) and goes on.
            raise RestoreError(
                f"cannot reach {self.endpoint} (bucket {self.bucket}): {network_reason(error)}"
            ) from None
        except (MinioException, ParseError, ValueError) as error:
            raise RestoreError(f"{self.endpoint} bucket {self.bucket}: {error} for {key or 'the listing'}") from None

    def refusal(self, status: Any, code: str, key: str) -> RestoreError:
        return RestoreError(
            f"{self.endpoint} bucket {self.bucket} answered HTTP {status} {code}".rstrip()
            + f" for {key or 'the listing'}"
        )

    def objects(self) -> list[StoredObject]:
        """Every object right under the model's path (archives.listed_archives
        tells GoBackup's archives from anything else put there)."""
        found = []
        with self.answering():
            for entry in self.client.list_objects(self.bucket, prefix=self.prefix, recursive=True):
                name = self.archive_name(entry.object_name or "")
                if name and entry.size is not None and entry.last_modified is not None:
                    found.append(StoredObject(name, entry.size, entry.last_modified.timestamp()))
        return found

    def versions(self) -> list[tuple[str, str, str]]:
        """(archive name, version ID, state) of every version under the model's
        path, oldest archive first; state is current, deleted (a delete marker
        hides it) or noncurrent (a later version replaced it)."""
        found, markers = [], set()
        with self.answering():
            listing = self.client.list_objects(self.bucket, prefix=self.prefix, recursive=True, include_version=True)
            for entry in listing:
                name = self.archive_name(entry.object_name or "")
                latest = (entry.is_latest or "").lower() == "true"
                if not name:
                    continue
                if entry.is_delete_marker:
                    if latest:
                        markers.add(name)
                    continue
                found.append((name, entry.version_id or "", latest))
        return [
            (name, version, "current" if latest else "deleted" if name in markers else "noncurrent")
            for name, version, latest in sorted(found, key=lambda item: item[0])
        ]

    def incomplete_uploads(self) -> list[tuple[str, str, str]]:
        """(key, upload ID, initiated) of each multipart upload begun under the
        model's path and neither completed nor aborted.

        minio-py 7.2 has no public call for ListMultipartUploads (nor for
        AbortMultipartUpload, below): these are the underscored methods its own
        put_object uses, so the signing, the query and the XML stay minio-py's;
        minio is pinned (requirements.txt), so they change only with an upgrade
        that tests/e2e/test_e2e.py's cleanup test then checks."""
        found: list[tuple[str, str, str]] = []
        key_marker, upload_marker = "", ""
        with self.answering():
            while True:
                # Listed without a prefix, then filtered: MinIO lists a multipart
                # upload only under a prefix that is its whole key.
                page = self.client._list_multipart_uploads(
                    self.bucket, key_marker=key_marker or None, upload_id_marker=upload_marker or None
                )
                for upload in page.uploads:
                    if upload.object_name.startswith(self.prefix):
                        begun = to_iso8601utc(upload.initiated_time) or ""
                        found.append((upload.object_name, upload.upload_id or "", begun))
                if not page.is_truncated or not page.uploads:
                    return found
                # The next page starts after the last upload of this one (the
                # result's next_upload_id_marker is never filled in by 7.2.20).
                key_marker, upload_marker = page.uploads[-1].object_name, page.uploads[-1].upload_id or ""

    def abort_upload(self, key: str, upload_id: str) -> None:
        with self.answering(key):
            self.client._abort_multipart_upload(self.bucket, key, upload_id)

    def download(self, name: str, target: Path, version_id: str = "") -> None:
        key = self.key(name)
        with self.answering(key):
            response = self.client.get_object(self.bucket, key, version_id=version_id or None)
            try:
                with target.open("wb") as file:
                    shutil.copyfileobj(response, file, length=CHUNK_BYTES)
            finally:
                response.close()
                response.release_conn()


def s3_storage(storage: Mapping[str, Any], timeout: float) -> S3Storage:
    """A model's minio or s3 storage, as GoBackup reads its keys."""
    return S3Storage(
        endpoint=str(storage["endpoint"]).rstrip("/"),
        bucket=str(storage["bucket"]),
        path=str(storage.get("path") or ""),
        region=str(storage.get("region") or "us-east-1"),
        access_key=str(storage.get("access_key_id") or ""),
        secret_key=str(storage.get("secret_access_key") or storage.get("access_key_secret") or ""),
        timeout=timeout,
    )
