"""YAML as GoBackup reads it, and what can go wrong on the way.

GoBackup expands `${VAR}` in the text first and parses the result with viper
(go-yaml v3, YAML 1.2). A value spliced into the YAML can therefore change
type or shape (`0123`, `yes`, `#x`, a quote): the helpers here find each whole
`${VAR}` leaf and say whether its value would reach GoBackup unchanged. The
loader refuses duplicate keys, which YAML keeps silently (the last wins)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml

WHOLE_REFERENCE = re.compile(r"^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))$")
# A plain (unquoted) scalar YAML 1.1 (PyYAML) or 1.2 (go-yaml v3, viper) may
# read as something other than the same string.
_NOT_A_PLAIN_STRING = re.compile(
    r"~|null|Null|NULL|true|True|TRUE|false|False|FALSE|y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF"
    r"|[-+]?[0-9_]+|0o[0-7_]+|0x[0-9a-fA-F_]+|0b[01_]+"
    r"|[-+]?(\.[0-9_]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)"
    r"|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt ].*)?|[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?"
)


def viper_string(value: Any) -> str:
    """A scalar as GoBackup's viper.GetString returns it ('' for none)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML keeps the last silently,
    so would GoBackup's viper: two models with one name become one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # unhashable: the base class explains
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}' (YAML keeps only the last one)", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def yaml_problem(error: yaml.YAMLError) -> tuple[str, int | None]:
    """(problem, line) of a YAML error, without the snippet PyYAML quotes."""
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        return str(error.problem or error.context), (mark.line + 1 if mark else None)
    return type(error).__name__, None


def parse_yaml(text: str) -> Any:
    """The document, refusing duplicate keys."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def scalar_nodes(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], yaml.ScalarNode]]:
    """(path, node) of every scalar leaf of a composed document."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            yield from scalar_nodes(value_node, (*path, str(getattr(key_node, "value", key_node))))
    elif isinstance(node, yaml.SequenceNode):
        for position, item in enumerate(node.value):
            yield from scalar_nodes(item, (*path, f"[{position}]"))
    elif isinstance(node, yaml.ScalarNode):
        yield path, node


def value_at(document: Any, path: tuple[str, ...]) -> Any:
    """The value at a path of scalar_nodes in a loaded document (None: absent)."""
    for step in path:
        if isinstance(document, dict):
            document = next((value for key, value in document.items() if viper_string(key) == step), None)
        elif isinstance(document, list) and step.startswith("[") and int(step[1:-1]) < len(document):
            document = document[int(step[1:-1])]
        else:
            return None
    return document


def path_text(path: tuple[str, ...]) -> str:
    """A path as messages show it: models.sales.storages[0]."""
    return ".".join(path).replace(".[", "[")


def _plain_is_safe(value: str) -> bool:
    if not value or _NOT_A_PLAIN_STRING.fullmatch(value):
        return False
    try:
        return yaml.safe_load(f"key: {value}\n") == {"key": value}
    except yaml.YAMLError:
        return False


class Reference:
    """A leaf whose whole value is `${NAME}` (or `$NAME`), with its quoting."""

    def __init__(self, path: tuple[str, ...], name: str, style: str | None) -> None:
        self.path, self.name, self.style = path, name, style

    @property
    def where(self) -> str:
        return path_text(self.path)


def whole_references(raw_text: str) -> list[Reference]:
    """Every leaf of the unexpanded text that is a whole reference."""
    references = []
    for path, node in scalar_nodes(yaml.compose(raw_text, Loader=yaml.SafeLoader)):
        match = WHOLE_REFERENCE.match(node.value)
        if match and node.tag == "tag:yaml.org,2002:str":
            references.append(Reference(path, match.group(1) or match.group(2), node.style))
    return references


def reference_reasons(reference: Reference, value: str) -> list[str]:
    """A whole `${VAR}` leaf must reach GoBackup as exactly VAR's value."""
    name, where = reference.name, reference.where
    if "\n" in value or "\r" in value:
        return [f"{where}: the value of {name} contains a line break, which YAML would alter"]
    if reference.style == "'" and "'" in value:
        return [f"{where}: the value of {name} contains a ' but is referenced inside single quotes ('${{{name}}}')"]
    if reference.style == '"' and ('"' in value or "\\" in value):
        return [f'{where}: the value of {name} contains a " or \\ but is referenced inside double quotes']
    if reference.style not in ("'", '"') and not _plain_is_safe(value):
        return [
            f"{where}: the value of {name} would reach GoBackup altered or as a non-string by YAML"
            f" (it looks like a number, boolean or null, or starts with or contains YAML syntax);"
            f" quote the reference: '${{{name}}}'"
        ]
    return []
