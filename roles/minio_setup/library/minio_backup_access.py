#!/usr/bin/python
"""Ansible module: the bucket and the dedicated, prefix-scoped access key the
backup container uses, created through MinIO's S3 and admin APIs."""

from __future__ import annotations

import json

DOCUMENTATION = r"""
module: minio_backup_access
short_description: Create a bucket and a backup access key limited to one prefix
description:
  - Creates the bucket (optionally with versioning), a policy that allows only what GoBackup needs under
    the prefix (put, get, list, delete, multipart, including its .gobackup-state/ key), a user whose access
    key and secret are the backup key, and attaches the policy to that user. Idempotent; supports check mode.
options:
  endpoint: {description: MinIO URL as seen from where the module runs., type: str, required: true}
  root_user: {description: MinIO root (admin) user., type: str, required: true}
  root_password: {description: MinIO root password., type: str, required: true, no_log: true}
  bucket: {description: Bucket name., type: str, required: true}
  prefix: {description: Object prefix the key may use (no leading or trailing slash)., type: str, required: true}
  access_key: {description: Access key of the backup user., type: str, required: true}
  secret_key: {description: Secret key of the backup user., type: str, required: true, no_log: true}
  policy_name: {description: Name of the policy., type: str, required: true}
  versioning: {description: Enable bucket versioning., type: bool, default: false}
requirements: [minio (Python SDK)]
"""

EXAMPLES = r"""
- name: Create the backup bucket and key
  minio_backup_access:
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
actions: {description: What was (or in check mode would be) changed., type: list, returned: always}
"""

from urllib.parse import urlsplit  # noqa: E402

from ansible.module_utils.basic import AnsibleModule, missing_required_lib  # noqa: E402

try:
    import urllib3
    from minio import Minio
    from minio.commonconfig import ENABLED
    from minio.credentials import StaticProvider
    from minio.error import MinioAdminException, S3Error
    from minio.minioadmin import MinioAdmin
    from minio.versioningconfig import VersioningConfig

    IMPORT_ERROR = None
except ImportError as error:  # pragma: no cover - reported by the module
    IMPORT_ERROR = error


class KeyShared(Exception):
    """The backup key is already scoped to another prefix."""


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
        ],
    }


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


def run(module: AnsibleModule) -> list[str]:
    params = module.params
    url = urlsplit(params["endpoint"])
    secure = url.scheme == "https"
    root = Minio(url.netloc, access_key=params["root_user"], secret_key=params["root_password"], secure=secure)
    admin = MinioAdmin(
        endpoint=url.netloc, credentials=StaticProvider(params["root_user"], params["root_password"]), secure=secure
    )
    apply = not module.check_mode
    actions = []
    bucket, prefix = params["bucket"], params["prefix"].strip("/")

    created = not root.bucket_exists(bucket)
    if created:
        actions.append(f"create bucket {bucket}")
        if apply:
            try:
                root.make_bucket(bucket)
            except S3Error as error:
                # Several hosts set up at once race to create the one bucket;
                # the loser finds it made, which is what it wanted.
                if error.code != "BucketAlreadyOwnedByYou":
                    raise
    if params["versioning"] and (created or root.get_bucket_versioning(bucket).status != ENABLED):
        actions.append(f"enable versioning on {bucket}")
        if apply:
            root.set_bucket_versioning(bucket, VersioningConfig(ENABLED))

    wanted = backup_policy(bucket, prefix)
    try:
        current = json.loads(admin.policy_info(params["policy_name"]))
        current = current.get("Policy", current)
    except MinioAdminException:
        current = None
    if current is None or normalised(current) != normalised(wanted):
        actions.append(f"write policy {params['policy_name']}")
        if apply:
            admin.policy_add(params["policy_name"], policy=wanted)

    try:
        user = json.loads(admin.user_info(params["access_key"]))
    except MinioAdminException:
        user = None
    if user is None:
        actions.append("create the backup user")
        if apply:
            admin.user_add(params["access_key"], params["secret_key"])
    elif not key_works(url.netloc, secure, params["access_key"], params["secret_key"], bucket, prefix):
        # The secret cannot be read back; a key that no longer authenticates gets the vaulted secret again.
        actions.append("reset the backup user's secret")
        if apply:
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


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "endpoint": {"type": "str", "required": True},
            "root_user": {"type": "str", "required": True},
            "root_password": {"type": "str", "required": True, "no_log": True},
            "bucket": {"type": "str", "required": True},
            "prefix": {"type": "str", "required": True},
            "access_key": {"type": "str", "required": True},
            "secret_key": {"type": "str", "required": True, "no_log": True},
            "policy_name": {"type": "str", "required": True},
            "versioning": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    if IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("minio"), exception=str(IMPORT_ERROR))
    try:
        actions = run(module)
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
