"""Go's unicode.IsSpace and the two functions of package strings built on it
that the ports need: strings.Fields and strings.TrimSpace (Go 1 standard
library, whose behaviour here has not changed across Go 1 releases).

robfig/cron splits a cron spec with strings.Fields and godotenv trims lines
with strings.TrimSpace, so both must split on exactly Go's white space."""

from __future__ import annotations

# unicode.IsSpace: the Latin-1 spaces plus the Unicode White_Space property.
GO_SPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(map(chr, range(0x2000, 0x200B)))
)


def go_fields(text: str) -> list[str]:
    """strings.Fields: the runs of non-space characters."""
    fields, current = [], ""
    for char in text:
        if char in GO_SPACE:
            if current:
                fields.append(current)
            current = ""
        else:
            current += char
    return [*fields, current] if current else fields


def go_trim_space(text: str) -> str:
    """strings.TrimSpace: without leading and trailing Go white space."""
    start, end = 0, len(text)
    while start < end and text[start] in GO_SPACE:
        start += 1
    while end > start and text[end - 1] in GO_SPACE:
        end -= 1
    return text[start:end]
