#!/usr/bin/env python3
"""Writes the variable table of each role's README from meta/argument_specs.yml
(between the BEGIN/END VARIABLES markers). With --check, only reports READMEs
that are out of date and exits 1."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

ROLES = Path(__file__).resolve().parents[1] / "roles"
BLOCK = re.compile(r"(<!-- BEGIN VARIABLES -->\n).*?(<!-- END VARIABLES -->)", re.DOTALL)


def cell(value: object) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    text = text.removesuffix("\n...").removesuffix("...").strip()
    return "`" + text.replace("|", "\\|") + "`"


def table(role: Path) -> str:
    spec = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]
    rows = ["| Variable | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for name, option in spec["options"].items():
        kind = option.get("type", "str")
        if option.get("elements"):
            kind += f" of {option['elements']}"
        description = option["description"]
        if option.get("choices"):
            description += " One of " + ", ".join(f"`{choice}`" for choice in option["choices"]) + "."
        if option.get("no_log"):
            description += " Secret: keep it in a vault."
        rows.append(f"| `{name}` | {kind} | {cell(option.get('default'))} | {description} |")
    return "\n".join(rows) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    arguments = parser.parse_args()
    stale = []
    for role in sorted(path for path in ROLES.iterdir() if (path / "meta" / "argument_specs.yml").is_file()):
        readme = role / "README.md"
        current = readme.read_text()
        updated = BLOCK.sub(lambda match, role=role: match.group(1) + table(role) + match.group(2), current)
        if updated != current:
            stale.append(str(readme))
            if not arguments.check:
                readme.write_text(updated)
    if arguments.check and stale:
        print("out of date (run scripts/role_docs.py):", *stale, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
