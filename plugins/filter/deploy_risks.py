"""The risks a deploy refuses unless the inventory accepts each one by name.

A host whose archives are readable by anyone who can read the bucket, whose
own backup key can delete its archives for good, or whose exports and
restores log in as `sa`, is one stolen secret away from losing or leaking
every backup. Each risk has an opt-out variable of its own (RISKS), and the
refusal names it; the development inventory sets all three.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ansible.plugins.filter.core import to_bool

# The opt-out variables, one per risk; each message says what it accepts.
RISKS = ("deploy_accept_unencrypted_backups", "deploy_accept_unlocked_bucket", "deploy_accept_sa_login")


def _sa_logins(models: Sequence[Mapping[str, Any]]) -> list[str]:
    logins = []
    for model in models:
        if str(model["username"]).strip().lower() == "sa":
            logins.append(f"{model['name']} (export)")
        if str(model["restore"]["username"]).strip().lower() == "sa":
            logins.append(f"{model['name']} (restore)")
    return logins


def deploy_risk_problems(
    models: Sequence[Mapping[str, Any]], object_lock: Any, accepted: Mapping[str, Any]
) -> list[str]:
    """Why the host may not be deployed as it is; empty when every risk is
    absent or accepted. `models` as the backup_models filter builds them,
    `object_lock` the bucket's (minio_setup_object_lock), `accepted` each
    variable of RISKS with its value."""
    problems = []
    unencrypted = [str(model["name"]) for model in models if not model["encryption_passphrase"]]
    if unencrypted and not to_bool(accepted.get("deploy_accept_unencrypted_backups", False)):
        problems.append(
            f"models {', '.join(unencrypted)} would upload unencrypted archives: set"
            " backup_config_encryption_passphrase (or encryption_passphrase of the database entry), or set"
            " deploy_accept_unencrypted_backups: true to accept archives anyone who can read the bucket can read"
        )
    if not to_bool(object_lock) and not to_bool(accepted.get("deploy_accept_unlocked_bucket", False)):
        problems.append(
            "the bucket has no Object Lock (minio_setup_object_lock is false), so this host's backup key can"
            ' delete its archives for good: set minio_setup_object_lock: true (README "Immutable backups") and'
            " run playbooks/minio_setup.yml, or set deploy_accept_unlocked_bucket: true to accept that"
        )
    logins = _sa_logins(models)
    if logins and not to_bool(accepted.get("deploy_accept_sa_login", False)):
        problems.append(
            f"{', '.join(logins)} would log in as sa, which can do anything on the server: give the model a login"
            " of its own (username of the database entry, backup_config_username, backup_config_restore_username;"
            ' README "Safe by default"), or set deploy_accept_sa_login: true to accept that'
        )
    return problems


class FilterModule:
    """deploy.yml's refusal of the risks a host has not accepted."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"deploy_risk_problems": deploy_risk_problems}
