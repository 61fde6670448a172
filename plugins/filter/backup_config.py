"""The backup roles' configuration checks, as Ansible filters.

The rules live once, in the image's package (sqlserver_backup): the container
runs the same functions on the files these roles render. The controller needs
the package installed (scripts/setup does it; elsewhere
`pip install <collection path>/image`). restore_secret_problems is the roles'
own rule, with the image's placeholder: the container reads those secrets
only when it restores, so its start does not check them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError


def restore_secret_problems(
    models: Sequence[Mapping[str, Any]], environ: Mapping[str, Any], sources: Mapping[str, str]
) -> list[str]:
    """The secrets only restores read (gobackup.yml does not reference them,
    so gobackup_config_problems does not see them): each model's restore
    password and earlier passphrases must be set, and not to the placeholder.
    `models` as the backup_models filter builds them."""
    problems = []
    for model in models:
        for variable in [model["restore"]["password_variable"], *model["previous_passphrase_variables"]]:
            value = str(environ[variable]).strip()
            if value in ("", PLACEHOLDER):
                state = "is empty" if value == "" else f"still holds the placeholder {value}"
                problems.append(f"{variable} (set by {sources[variable]}) {state}; set the real value")
    return problems


try:
    from sqlserver_backup.container_settings import container_settings_problems
    from sqlserver_backup.gobackup_config import gobackup_config_problems
    from sqlserver_backup.gobackup_env import PLACEHOLDER
    from sqlserver_backup.metrics_web import web_config_problems
    from sqlserver_backup.restore_rules import restore_config_problems
except ImportError as error:  # the filters say how to install it when used
    RULES: dict[str, Callable[..., Any]] = {}
    IMPORT_ERROR: ImportError | None = error
else:
    RULES = {
        rule.__name__: rule
        for rule in (
            gobackup_config_problems,
            container_settings_problems,
            restore_config_problems,
            restore_secret_problems,
            web_config_problems,
        )
    }
    IMPORT_ERROR = None

FILTERS = (
    "gobackup_config_problems",
    "container_settings_problems",
    "restore_config_problems",
    "restore_secret_problems",
    "web_config_problems",
)


def _rule(name: str) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        if not RULES:
            raise AnsibleFilterError(
                f"the filter {name} needs the Python package sqlserver_backup on the controller"
                f" (pip install <the collection's path>/image): {IMPORT_ERROR}"
            )
        return RULES[name](*args, **kwargs)

    run.__name__ = name
    return run


class FilterModule:
    """Ansible filters: the roles check what they render with the image's rules."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {name: _rule(name) for name in FILTERS}
