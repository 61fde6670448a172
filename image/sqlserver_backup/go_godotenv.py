"""godotenv v1.4.0's Parse (github.com/joho/godotenv), with which GoBackup
v3.1.1 loads the `.env` file beside its config.

Its quirks matter for secrets: an unquoted value ends at ` #`, double quotes
take `\\n` escapes and expand `$NAME` from earlier lines, single quotes take
the value literally (the roles write every value single-quoted). Tested
against godotenv itself (tests/standins/cmd/dotenvref)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from sqlserver_backup.go_strings import go_trim_space

_EXPORT = re.compile(r"^[\t\n\f\r ]*(?:export[\t\n\f\r ]+)?(.*?)[\t\n\f\r ]*$")
_EXPAND = re.compile(r"(\\)?(\$)(\()?\{?([A-Z0-9_]+)?\}?")


class DotenvError(ValueError):
    """godotenv refuses a line; `line` is its number (from 1)."""

    def __init__(self, line: int) -> None:
        super().__init__(f"line {line}: Can't separate key from value")
        self.line = line


def _value(value: str, values: Mapping[str, str]) -> str:
    """godotenv's parseValue: quotes, escapes and expansion of earlier names."""
    value = value.strip(" ")
    if len(value) > 1:
        single = re.fullmatch(r"'(.*)'", value)
        double = re.fullmatch(r'"(.*)"', value)
        if single or double:
            value = value[1:-1]
        if double:
            value = re.sub(r"\\.", lambda m: {"n": "\n", "r": "\r"}.get(m.group(0)[1], m.group(0)), value)
            value = re.sub(r"\\([^$])", r"\1", value)
        if not single:

            def expand(match: re.Match[str]) -> str:
                if match.group(1) == "\\":
                    return match.group(0)[1:]
                if match.group(4):
                    return values.get(match.group(4), "")
                return match.group(0)

            value = _EXPAND.sub(expand, value)
    return value


def _without_comment(line: str) -> str:
    """The line without its comment, keeping a '#' inside quotes."""
    keep: list[str] = []
    quotes_open = False
    for segment in line.split("#"):
        if segment.count('"') == 1 or segment.count("'") == 1:
            if quotes_open:
                quotes_open = False
                keep.append(segment)
            else:
                quotes_open = True
        if not keep or quotes_open:
            keep.append(segment)
    return "#".join(keep)


def parse_dotenv_text(text: str) -> dict[str, str]:
    """godotenv v1.4.0's Parse; DotenvError naming the line it refuses."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, raw_line in enumerate(lines, start=1):
        line = raw_line.removesuffix("\r")
        stripped = go_trim_space(line)
        if not stripped or stripped.startswith("#"):
            continue
        if "#" in line:
            line = _without_comment(line)
        equals, colon = line.find("="), line.find(":")
        separator = ":" if colon != -1 and (colon < equals or equals == -1) else "="
        if separator not in line:
            raise DotenvError(number)
        key, value = line.split(separator, 1)
        match = _EXPORT.match(key)
        values[match.group(1) if match else key] = _value(value, values)
    return values
