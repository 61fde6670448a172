"""The backup roles' configuration checks, as Ansible filters.

The rules live once, in the image's package (sqlserver_backup): the container
runs the same functions on the files these roles render. The controller needs
the package installed (scripts/setup does it; elsewhere
`pip install <collection path>/image`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleFilterError

try:
    from sqlserver_backup.container_settings import container_settings_problems
    from sqlserver_backup.gobackup_config import gobackup_config_problems
    from sqlserver_backup.restore_rules import restore_config_problems
except ImportError as error:  # the filters say how to install it when used
    RULES: dict[str, Callable[..., Any]] = {}
    IMPORT_ERROR: ImportError | None = error
else:
    RULES = {
        rule.__name__: rule for rule in (gobackup_config_problems, container_settings_problems, restore_config_problems)
    }
    IMPORT_ERROR = None

FILTERS = ("gobackup_config_problems", "container_settings_problems", "restore_config_problems")


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
