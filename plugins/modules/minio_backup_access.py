#!/usr/bin/python
# Copyright: sqlserver-backup maintainers
# MIT License (see galaxy.yml)
"""Ansible module: the bucket and the dedicated, prefix-scoped access key the
backup container uses, created through MinIO's S3 and admin APIs."""

from __future__ import annotations

DOCUMENTATION = r"""
module: minio_backup_access
short_description: Create a bucket and a backup access key limited to one prefix
version_added: 1.0.0
author: sqlserver-backup maintainers (!UNKNOWN)
description:
  - Creates the bucket (optionally with versioning, or with object lock and a default retention), a
    lifecycle rule expiring noncurrent versions, MinIO's expiry of incomplete multipart uploads, a policy
    that allows only what GoBackup needs under the prefix (put, get, list, delete, multipart, including its
    .gobackup-state/ key) and denies what would defeat versioning and retention, a user whose access key
    and secret are the backup key, and attaches the policy to that user. Idempotent; supports check mode.
  - Object lock can only be enabled when a bucket is created; an existing bucket without it fails.
options:
  endpoint: {description: MinIO URL as seen from where the module runs., type: str, required: true}
  root_user: {description: MinIO root (admin) user., type: str, required: true}
  root_password: {description: MinIO root password., type: str, required: true}
  bucket: {description: Bucket name., type: str, required: true}
  prefix: {description: Object prefix the key may use (no leading or trailing slash)., type: str, required: true}
  access_key: {description: Access key of the backup user., type: str, required: true}
  secret_key: {description: Secret key of the backup user., type: str, required: true}
  policy_name: {description: Name of the policy., type: str, required: true}
  versioning: {description: Enable bucket versioning., type: bool, default: false}
  object_lock: {description: Create the bucket with object lock (implies versioning)., type: bool, default: false}
  object_lock_mode:
    {description: Default retention mode., type: str, choices: [GOVERNANCE, COMPLIANCE], default: GOVERNANCE}
  object_lock_days: {description: Default retention in days., type: int, default: 30}
  noncurrent_version_days: {description: Days until noncurrent versions expire (0 - never)., type: int, default: 14}
  incomplete_upload_days:
    description:
      - Days after which MinIO aborts incomplete multipart uploads (0 - leave MinIO's setting, 24 hours by default).
      - MinIO ignores AbortIncompleteMultipartUpload in lifecycle rules; this sets its server-wide
        api stale_uploads_expiry instead.
    type: int
    default: 0
  bucket_quota_mb:
    description:
      - MinIO's hard quota on the bucket, in MiB (0 - leave the bucket's quota as it is).
      - It limits the whole bucket, every prefix in it; MinIO enforces it against its scanned usage, which lags
        behind the writes by minutes.
    type: int
    default: 0
requirements: [minio (Python SDK)]
"""

EXAMPLES = r"""
- name: Create the backup bucket and key
  sqlserver_backup.backups.minio_backup_access:
    endpoint: http://127.0.0.1:9000
    root_user: "{{ vault_minio_root_user }}"
    root_password: "{{ vault_minio_root_password }}"
    bucket: sqlserver-backups
    prefix: sqlserver/host-a
    access_key: sqlserver-backup-host-a
    secret_key: "{{ vault_minio_backup_secret_key }}"
    policy_name: sqlserver-backup-host-a
"""

RETURN = r"""
actions: {description: What was (or in check mode would be) changed., type: list, elements: str, returned: always}
"""

import json
import re
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import urllib3
    from minio import Minio
    from minio.commonconfig import ENABLED, Filter
    from minio.credentials import StaticProvider
    from minio.error import MinioAdminException, S3Error
    from minio.lifecycleconfig import (
        Expiration,
        LifecycleConfig,
        NoncurrentVersionExpiration,
        Rule,
    )
    from minio.minioadmin import MinioAdmin
    from minio.objectlockconfig import DAYS, ObjectLockConfig
    from minio.versioningconfig import VersioningConfig

    IMPORT_ERROR = None
except ImportError as error:  # pragma: no cover - reported by the module
    IMPORT_ERROR = error


# The one lifecycle rule this module owns; other rules of the bucket are kept.
LIFECYCLE_RULE_ID = "sqlserver-backup-versions"

# Denied explicitly: MinIO lets s3:DeleteObject remove a version unless
# s3:DeleteObjectVersion is denied, and a deny also wins over any group policy.
DENIED_ACTIONS = [
    "s3:BypassGovernanceRetention",
    "s3:PutObjectRetention",
    "s3:PutObjectLegalHold",
    "s3:PutBucketObjectLockConfiguration",
    "s3:DeleteObjectVersion",
    "s3:PutBucketVersioning",
    "s3:PutLifecycleConfiguration",
    "s3:DeleteBucket",
    "s3:ForceDeleteBucket",
]


class KeyShared(Exception):
    """The backup key is already scoped to another prefix."""


class LockUnavailable(Exception):
    """Object lock was asked for on a bucket created without it."""


def backup_policy(bucket: str, prefix: str) -> dict:
    """Only what GoBackup's S3 storage and keep-cycler do under the prefix."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetBucketLocation", "s3:ListBucketMultipartUploads"],
                "Resource": [f"arn:aws:s3:::{bucket}"],
            },
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{bucket}"],
                "Condition": {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}},
            },
            {
                "Effect": "Allow",
                "Action": [
                    "s3:PutObject",
                    "s3:GetObject",
                    "s3:DeleteObject",
                    "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts",
                ],
                "Resource": [f"arn:aws:s3:::{bucket}/{prefix}/*"],
            },
            {
                # GoBackup's keep deletes without a version ID: a delete
                # marker. Versions and their retention stay out of reach.
                "Effect": "Deny",
                "Action": DENIED_ACTIONS,
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            },
        ],
    }


def lifecycle_rule(noncurrent_days: int):
    """The bucket-wide rule: noncurrent versions (those keep deleted or a run
    overwrote) expire, locked ones once their retention has ended, and a
    delete marker left with no version behind it goes too. None when off."""
    if noncurrent_days <= 0:
        return None
    return Rule(
        ENABLED,
        rule_filter=Filter(prefix=""),
        rule_id=LIFECYCLE_RULE_ID,
        noncurrent_version_expiration=NoncurrentVersionExpiration(noncurrent_days),
        expiration=Expiration(expired_object_delete_marker=True),
    )


def stale_uploads(admin, days: int, apply: bool) -> list[str]:
    """MinIO drops AbortIncompleteMultipartUpload from lifecycle rules and
    aborts incomplete uploads after its own api stale_uploads_expiry."""
    if days <= 0:
        return []
    wanted = f"{days * 24}h"
    current = re.search(r"\bstale_uploads_expiry=(\S+)", admin.config_get("api"))
    if current and current.group(1) == wanted:
        return []
    if apply:
        admin.config_set("api", {"stale_uploads_expiry": wanted})
    return [f"abort incomplete multipart uploads after {wanted} (MinIO api stale_uploads_expiry)"]


def bucket_quota(admin, bucket: str, quota_mb: int, created: bool, apply: bool) -> list[str]:
    """MinIO's hard quota on the bucket (0: left as it is)."""
    if quota_mb <= 0:
        return []
    wanted = quota_mb * 1024 * 1024
    # A bucket a dry run would create has no quota to read yet.
    current = {} if created and not apply else json.loads(admin.bucket_quota_get(bucket) or "{}")
    if current.get("quota") == wanted and current.get("quotatype", "hard") == "hard":
        return []
    if apply:
        admin.bucket_quota_set(bucket, wanted)
    return [f"set a hard quota of {quota_mb} MiB on bucket {bucket}"]


def bucket_settings(root, bucket: str, params: dict, created: bool, apply: bool) -> list[str]:
    """Versioning, object lock retention and the lifecycle rule of the bucket."""
    actions = []
    if params["object_lock"] and not created:
        try:
            current_lock = root.get_object_lock_config(bucket)
        except S3Error as error:
            if error.code != "ObjectLockConfigurationNotFoundError":
                raise
            raise LockUnavailable(
                f"bucket {bucket} exists without object lock, and object lock can only be enabled when a bucket"
                f" is created. minio_setup_object_lock is true: name a new bucket (backup_config_minio_bucket,"
                f" which the playbooks pass as minio_setup_bucket) and copy the archives to keep into it"
                f" (mc mirror), or set minio_setup_object_lock to false for {bucket}"
            ) from None
    else:
        current_lock = None
    # Object lock implies versioning: MinIO turns it on with the lock.
    wants_versioning = (params["versioning"] or params["object_lock"]) and not (created and params["object_lock"])
    if wants_versioning and (created or root.get_bucket_versioning(bucket).status != ENABLED):
        actions.append(f"enable versioning on {bucket}")
        if apply:
            root.set_bucket_versioning(bucket, VersioningConfig(ENABLED))
    if params["object_lock"]:
        mode, days = params["object_lock_mode"], params["object_lock_days"]
        wanted_lock = ObjectLockConfig(mode, days, DAYS)
        if current_lock != wanted_lock:
            actions.append(f"set the default retention of {bucket} to {mode} {days} days")
            if apply:
                root.set_object_lock_config(bucket, wanted_lock)

    wanted_rule = lifecycle_rule(params["noncurrent_version_days"])
    current = None if created else root.get_bucket_lifecycle(bucket)
    others = [rule for rule in (current.rules if current else []) if rule.rule_id != LIFECYCLE_RULE_ID]
    ours = [rule for rule in (current.rules if current else []) if rule.rule_id == LIFECYCLE_RULE_ID]
    if ours != ([wanted_rule] if wanted_rule else []):
        actions.append(f"{'write' if wanted_rule else 'remove'} lifecycle rule {LIFECYCLE_RULE_ID} on {bucket}")
        if apply:
            rules = others + ([wanted_rule] if wanted_rule else [])
            if rules:
                root.set_bucket_lifecycle(bucket, LifecycleConfig(rules))
            else:
                root.delete_bucket_lifecycle(bucket)
    return actions


def normalised(policy: dict) -> str:
    """MinIO returns lists sorted: compare with every list of strings sorted."""

    def canonical(node):
        if isinstance(node, dict):
            return {key: canonical(value) for key, value in node.items()}
        if isinstance(node, list):
            items = [canonical(item) for item in node]
            return sorted(items) if all(isinstance(item, str) for item in items) else items
        return node

    return json.dumps(canonical(policy), sort_keys=True)


def key_works(endpoint, secure: bool, access_key: str, secret_key: str, bucket: str, prefix: str) -> bool:
    client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure)
    try:
        list(client.list_objects(bucket, prefix=f"{prefix}/", recursive=False))
    except S3Error:
        return False
    return True


def ensure_bucket(root: Minio, params: dict, apply: bool) -> tuple[list[str], bool]:
    """The bucket, created when missing: (actions, whether it was missing)."""
    bucket = params["bucket"]
    if root.bucket_exists(bucket):
        return [], False
    if apply:
        try:
            root.make_bucket(bucket, object_lock=params["object_lock"])
        except S3Error as error:
            # Several hosts set up at once race to create the one bucket;
            # the loser finds it made, which is what it wanted.
            if error.code != "BucketAlreadyOwnedByYou":
                raise
    return [f"create bucket {bucket}" + (" with object lock" if params["object_lock"] else "")], True


def ensure_policy(admin: MinioAdmin, params: dict, apply: bool) -> list[str]:
    """The policy limiting the backup key to the host's prefix."""
    wanted = backup_policy(params["bucket"], params["prefix"].strip("/"))
    try:
        current = json.loads(admin.policy_info(params["policy_name"]))
        current = current.get("Policy", current)
    except MinioAdminException:
        current = None
    if current is not None and normalised(current) == normalised(wanted):
        return []
    if apply:
        admin.policy_add(params["policy_name"], policy=wanted)
    return [f"write policy {params['policy_name']}"]


def ensure_user(admin: MinioAdmin, params: dict, netloc: str, secure: bool, apply: bool) -> list[str]:
    """The backup user, with its vaulted secret and only the host's policy."""
    actions = []
    try:
        user = json.loads(admin.user_info(params["access_key"]))
    except MinioAdminException:
        user = None
    prefix = params["prefix"].strip("/")
    if user is None:
        actions.append("create the backup user")
    elif not key_works(netloc, secure, params["access_key"], params["secret_key"], params["bucket"], prefix):
        # The secret cannot be read back; a key that no longer authenticates gets the vaulted secret again.
        actions.append("reset the backup user's secret")
    if actions and apply:
        admin.user_add(params["access_key"], params["secret_key"])
    attached = [name for name in (user or {}).get("policyName", "").split(",") if name]
    others = [name for name in attached if name != params["policy_name"]]
    if others:
        # A key shared by two hosts would carry both prefixes: either host could
        # read and delete the other's backups.
        raise KeyShared(
            f"access key {params['access_key']} already carries policy {', '.join(others)}: "
            "give each host its own key (backup_config_minio_access_key in its host_vars vault)"
        )
    if params["policy_name"] not in attached:
        actions.append(f"attach policy {params['policy_name']}")
        if apply:
            admin.attach_policy([params["policy_name"]], user=params["access_key"])
    return actions


def run(module: AnsibleModule) -> list[str]:
    params = module.params
    url = urlsplit(params["endpoint"])
    secure = url.scheme == "https"
    root = Minio(url.netloc, access_key=params["root_user"], secret_key=params["root_password"], secure=secure)
    admin = MinioAdmin(
        endpoint=url.netloc, credentials=StaticProvider(params["root_user"], params["root_password"]), secure=secure
    )
    apply = not module.check_mode
    actions, created = ensure_bucket(root, params, apply)
    actions += bucket_settings(root, params["bucket"], params, created, apply)
    actions += stale_uploads(admin, params["incomplete_upload_days"], apply)
    actions += bucket_quota(admin, params["bucket"], params["bucket_quota_mb"], created, apply)
    actions += ensure_policy(admin, params, apply)
    return actions + ensure_user(admin, params, url.netloc, secure, apply)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "endpoint": {"type": "str", "required": True},
            "root_user": {"type": "str", "required": True},
            "root_password": {"type": "str", "required": True, "no_log": True},
            "bucket": {"type": "str", "required": True},
            "prefix": {"type": "str", "required": True},
            # A user name, not a secret.
            "access_key": {"type": "str", "required": True, "no_log": False},
            "secret_key": {"type": "str", "required": True, "no_log": True},
            "policy_name": {"type": "str", "required": True},
            "versioning": {"type": "bool", "default": False},
            "object_lock": {"type": "bool", "default": False},
            "object_lock_mode": {"type": "str", "choices": ["GOVERNANCE", "COMPLIANCE"], "default": "GOVERNANCE"},
            "object_lock_days": {"type": "int", "default": 30},
            "noncurrent_version_days": {"type": "int", "default": 14},
            "incomplete_upload_days": {"type": "int", "default": 0},
            "bucket_quota_mb": {"type": "int", "default": 0},
        },
        supports_check_mode=True,
    )
    if IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("minio"), exception=str(IMPORT_ERROR))
    try:
        actions = run(module)
    except (KeyShared, LockUnavailable) as error:
        module.fail_json(msg=str(error))
    except (OSError, urllib3.exceptions.HTTPError) as error:
        if not module.check_mode:
            module.fail_json(msg=f"MinIO at {module.params['endpoint']} (bucket {module.params['bucket']}): {error}")
        # A dry run before the first deploy: the stack's MinIO does not run yet.
        actions = [
            f"create bucket {module.params['bucket']}, policy {module.params['policy_name']} and the backup user"
            f" (MinIO at {module.params['endpoint']} does not answer yet)"
        ]
    # Any other SDK error is reported with the endpoint and bucket.
    except Exception as error:
        module.fail_json(msg=f"MinIO at {module.params['endpoint']} (bucket {module.params['bucket']}): {error}")
    module.exit_json(changed=bool(actions), actions=actions)


if __name__ == "__main__":
    main()
