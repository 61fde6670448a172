"""The backup container's own settings (its environment in compose.yml:
RUN_MODE, SKIP_HEALTH_CHECK, STOP_GRACE_PERIOD, BACKUP_HEALTH_GRACE,
METRICS_PORT). The entrypoint
checks them at start (`backup-config settings`), the backup_stack role before
it deploys (container_settings_problems, an Ansible filter)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlserver_backup.config_errors import name_sources


def container_settings_problems(
    environ: Mapping[str, Any],
    web_ports: Sequence[Any] = (),
    sources: Mapping[str, str] | None = None,
    empty_is_default: bool = True,
) -> list[str]:
    """The reasons the container's settings are not usable; empty when fine.
    `web_ports` are GoBackup's (one per worker), which the metrics may not
    share; `sources` maps
    a variable to the Ansible variable that sets it. The entrypoint takes an
    empty value for the default; the role, which renders its values into
    compose.yml, does not (empty_is_default false)."""
    settings = {str(key): "" if value is None else str(value) for key, value in environ.items()}
    reasons = []
    for name, allowed, default in (
        ("RUN_MODE", ("once", "daemon"), "daemon"),
        ("SKIP_HEALTH_CHECK", ("true", "false"), "false"),
    ):
        value = settings.get(name, default)
        value = (value or default) if empty_is_default else value
        if value not in allowed:
            reasons.append(f"{name} must be '{allowed[0]}' or '{allowed[1]}', not '{value}'")
    grace = settings.get("STOP_GRACE_PERIOD", "3600")
    grace = (grace or "3600") if empty_is_default else grace
    if not re.fullmatch(r"[0-9]{1,9}", grace):
        reasons.append(f"STOP_GRACE_PERIOD must be a whole number of seconds, not '{grace}'")
    health_grace = settings.get("BACKUP_HEALTH_GRACE", "")
    if health_grace and not re.fullmatch(r"[0-9]{1,9}", health_grace):
        reasons.append(f"BACKUP_HEALTH_GRACE must be a whole number of seconds or empty, not '{health_grace}'")
    metrics_port = settings.get("METRICS_PORT", "")
    if metrics_port and not (re.fullmatch(r"[0-9]{1,5}", metrics_port) and 1 <= int(metrics_port) <= 65535):
        reasons.append(f"METRICS_PORT must be a port number (1-65535) or empty, not '{metrics_port}'")
    elif metrics_port and str(int(metrics_port)) in [str(port).strip() for port in web_ports]:
        reasons.append(
            "METRICS_PORT must differ from web.port, the port of GoBackup's own web server in the container"
            f" ({', '.join(str(port) for port in web_ports)})"
        )
    return name_sources(reasons, sources)
