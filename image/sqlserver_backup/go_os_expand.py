"""Go's os.Expand (standard library, Go 1.x), the function GoBackup v3.1.1
applies to its whole config file through os.ExpandEnv after loading `.env`.

It knows `${VAR}` and `$VAR` only: `${VAR:-default}` looks up a variable
literally named `VAR:-default`, a `$` before a special character (`$1`, `$@`)
names that one-character variable, and invalid syntax such as `${}` is eaten.
Tested against os.ExpandEnv itself (tests/standins/cmd/goexpand)."""

from __future__ import annotations

from collections.abc import Callable

# The one-character names os.Expand reads after a `$` (isShellSpecialVar).
GO_SPECIAL_NAMES = frozenset("*#$@!?-0123456789")


def _go_shell_name(text: str) -> tuple[str, int]:
    """Return (name, width) like Go's os.getShellName for the text after a `$`."""
    if text[0] == "{":
        if len(text) > 2 and text[1] in GO_SPECIAL_NAMES and text[2] == "}":
            return text[1:2], 3
        for index in range(1, len(text)):
            if text[index] == "}":
                if index == 1:
                    return "", 2
                return text[1:index], index + 1
        return "", 1
    if text[0] in GO_SPECIAL_NAMES:
        return text[0:1], 1
    width = 0
    while width < len(text) and (text[width] == "_" or (text[width].isascii() and text[width].isalnum())):
        width += 1
    return text[:width], width


def go_expand(text: str, mapping: Callable[[str], str]) -> str:
    """Expand like Go's os.Expand."""
    out: list[str] = []
    start = 0
    index = 0
    while index < len(text):
        if text[index] == "$" and index + 1 < len(text):
            out.append(text[start:index])
            name, width = _go_shell_name(text[index + 1 :])
            if name == "" and width > 0:
                pass  # invalid syntax: Go eats the characters
            elif name == "":
                out.append("$")
            else:
                out.append(mapping(name))
            index += width
            start = index + 1
        index += 1
    out.append(text[start:])
    return "".join(out)


def referenced_names(text: str) -> list[str]:
    """The names os.Expand looks up in `text`, in order of appearance."""
    names: list[str] = []

    def collect(name: str) -> str:
        if name not in names:
            names.append(name)
        return ""

    go_expand(text, collect)
    return names
