"""Every environment variable the image reads, and the refusal of a name it
would otherwise ignore without a word.

A variable the image does not read changes nothing: an operator who sets
`MSSQL_USERNAME` (the name of the image's first design) still exports as
`sa`. The entrypoint (`backup-config settings`) refuses such a name when it
was renamed or is close to a known one, naming the variable to set instead.
The README's environment table lists KNOWN; a test compares the two, and the
names the package and the entrypoint read with KNOWN.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

# The variables the image reads, in the order of the README's table.
KNOWN = (
    "MSSQL_HOST",
    "MSSQL_DATABASE",
    "MSSQL_PASSWORD",
    "MINIO_ENDPOINT",
    "MINIO_BUCKET",
    "MINIO_ACCESS_KEY",
    "MINIO_SECRET_KEY",
    "MSSQL_PORT",
    "MSSQL_USER",
    "MSSQL_TRUST_SERVER_CERTIFICATE",
    "SQLPACKAGE_ARGS",
    "BACKUP_MODEL",
    "BACKUP_CRON",
    "BACKUP_COMPRESS",
    "BACKUP_KEEP",
    "BACKUP_LOCAL_KEEP",
    "MINIO_PATH",
    "MINIO_REGION",
    "MINIO_TIMEOUT",
    "RUN_MODE",
    "SKIP_HEALTH_CHECK",
    "CONNECT_TIMEOUT",
    "STOP_GRACE_PERIOD",
    "EXTRA_CA_CERTS",
    "RESTORE_MSSQL_HOST",
    "RESTORE_MSSQL_PORT",
    "RESTORE_MSSQL_USER",
    "RESTORE_MSSQL_PASSWORD",
    "RESTORE_MSSQL_TRUST_SERVER_CERTIFICATE",
    "NOTIFY_WEBHOOK_URL",
    "NOTIFY_WEBHOOK_HEADERS",
    "NOTIFY_SLACK_URL",
    "NOTIFY_SMTP_HOST",
    "NOTIFY_SMTP_PORT",
    "NOTIFY_SMTP_SECURITY",
    "NOTIFY_SMTP_FROM",
    "NOTIFY_SMTP_TO",
    "NOTIFY_SMTP_USERNAME",
    "NOTIFY_SMTP_PASSWORD",
    "METRICS_PORT",
    "BACKUP_HEALTH_GRACE",
    "BACKUP_HOST",
    "WORK_VOLUME",
    "TZ",
    "GOBACKUP_WEB_PORT",
    "GOBACKUP_CONFIG",
    "GOBACKUP_TEMPLATE",
    "GOBACKUP_STATE_DIR",
    "GOBACKUP_DIR",
    "HOME",
    "TMPDIR",
    "SSL_CERT_FILE",
)

# Names an operator may expect from the image's first design or from other
# images, with the variable the image reads instead.
RENAMED = {
    "MSSQL_USERNAME": "MSSQL_USER",
    "MSSQL_TRUST_CERT": "MSSQL_TRUST_SERVER_CERTIFICATE",
    "MSSQL_TRUST_SERVER_CERT": "MSSQL_TRUST_SERVER_CERTIFICATE",
    "MSSQL_SERVER": "MSSQL_HOST",
    "MSSQL_DB": "MSSQL_DATABASE",
    "RESTORE_MSSQL_USERNAME": "RESTORE_MSSQL_USER",
    "RESTORE_MSSQL_TRUST_CERT": "RESTORE_MSSQL_TRUST_SERVER_CERTIFICATE",
    "MINIO_ACCESS_KEY_ID": "MINIO_ACCESS_KEY",
    "MINIO_SECRET_ACCESS_KEY": "MINIO_SECRET_KEY",
    "MINIO_URL": "MINIO_ENDPOINT",
    "BACKUP_SCHEDULE": "BACKUP_CRON",
}

# What the image reads under names of the operator's choosing: each model's
# secrets in the .env Ansible writes, and any secret given as a file.
PATTERNS = (
    re.compile(r"MSSQL_(RESTORE_)?PASSWORD_[A-Z0-9_]+"),
    re.compile(r"ENCRYPTION_PASSPHRASE(_[A-Z0-9_]+)?"),
    re.compile(r"[A-Z0-9_]+_FILE"),
)

# Variables of the images beside it (a shared env_file): not typos of ours.
NEIGHBOURS = frozenset(
    {"MSSQL_SA_PASSWORD", "MSSQL_PID", "ACCEPT_EULA", "MSSQL_COLLATION", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"}
)

# How alike a name must be to a known one to be taken for a typo of it.
CLOSENESS = 0.88


def _instead(name: str) -> str | None:
    """The known variable an unknown name was most likely meant to be."""
    if name in RENAMED:
        return RENAMED[name]
    if name in KNOWN or name in NEIGHBOURS or any(pattern.fullmatch(name) for pattern in PATTERNS):
        return None
    close = difflib.get_close_matches(name, KNOWN, n=1, cutoff=CLOSENESS)
    return close[0] if close else None


def ignored_variable_problems(names: Iterable[str]) -> list[str]:
    """A reason for each variable set that the image would ignore although it
    was meant for one it reads; empty when there is none."""
    return [
        f"{name} is not read by this image: set {instead} instead"
        for name in sorted(names)
        if (instead := _instead(name)) is not None
    ]
