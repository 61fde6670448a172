"""backup-cleanup: aborts the multipart uploads a run cut off (the container
killed mid-upload) left under each model's path. The entrypoint runs it
before GoBackup starts, when no upload of this host can be under way."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sqlserver_backup import config_errors, gobackup_config, gobackup_env, gobackup_rules
from sqlserver_backup.errors import RestoreError
from sqlserver_backup.models import active_config
from sqlserver_backup.s3 import s3_storage


def main(argv: list[str] | None = None) -> int:
    """Aborts the multipart uploads a run cut off (the container killed
    mid-upload) left under each model's path: the entrypoint runs it before
    GoBackup starts, when no upload of this host can be under way."""
    parser = argparse.ArgumentParser(prog="backup-cleanup", description=(main.__doc__ or "").split(":")[0])
    parser.add_argument("--config", type=Path, help="GoBackup configuration (default: the active one)")
    parser.add_argument("--timeout", type=float, default=60, help="seconds for each MinIO request")
    arguments = parser.parse_args(argv)
    try:
        document, _ = gobackup_config.load(active_config(arguments.config), gobackup_env.resolve_file_env(os.environ))
        for model, body in sorted(document["models"].items()):
            for storage in (body.get("storages") or {}).values():
                if storage.get("type") not in gobackup_rules.S3_STORAGE_TYPES:
                    continue
                target = s3_storage(storage, arguments.timeout)
                for key, upload_id, initiated in target.incomplete_uploads():
                    target.abort_upload(key, upload_id)
                    print(f"backup-cleanup: model {model}: aborted the incomplete upload of {key} (begun {initiated})")
    except config_errors.ConfigError as error:
        print(f"backup-cleanup: {'; '.join(error.reasons)}", file=sys.stderr)
        return 2
    except (RestoreError, OSError) as error:
        print(f"backup-cleanup: {error}", file=sys.stderr)
        return 1
    return 0
