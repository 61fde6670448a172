"""The image's entrypoint run on this machine: its command, and the values the
bundled template needs."""

from __future__ import annotations

from .paths import REPO

ENTRYPOINT = ["bash", str(REPO / "image" / "docker-entrypoint.sh")]

# Values the bundled template needs; tests remove or change one at a time.
REQUIRED_ENV = {
    "MSSQL_HOST": "127.0.0.1",
    "MSSQL_DATABASE": "SalesDemo",
    "MSSQL_PASSWORD": "Str0ngSecretPassw0rd",
    "MINIO_ENDPOINT": "http://127.0.0.1:9",
    "MINIO_BUCKET": "sqlserver-backups",
    "MINIO_ACCESS_KEY": "backup-key",
    "MINIO_SECRET_KEY": "Sup3rSecretMinioKey",
}
