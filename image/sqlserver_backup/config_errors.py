"""How the configuration checks report: ConfigError carries one line per
reason, and name_sources adds the Ansible variable behind a variable a reason
names (the roles' filters), never a value."""

from __future__ import annotations

import re
from collections.abc import Mapping


class ConfigError(Exception):
    """A configuration problem, reported as one line per reason."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("\n".join(reasons))
        self.reasons = reasons


def name_sources(reasons: list[str], sources: Mapping[str, str] | None) -> list[str]:
    """Each reason with the first mention of a variable followed by the
    Ansible variable that sets it."""
    sources = dict(sources or {})
    if not sources:
        return reasons
    pattern = re.compile(r"\b(" + "|".join(re.escape(name) for name in sorted(sources, key=len, reverse=True)) + r")\b")

    def name_source(reason: str) -> str:
        named: set[str] = set()

        def replace(match: re.Match[str]) -> str:
            if match.group(1) in named:
                return match.group(0)
            named.add(match.group(1))
            return f"{match.group(1)} (set by {sources[match.group(1)]})"

        return pattern.sub(replace, reason)

    return [name_source(reason) for reason in reasons]
