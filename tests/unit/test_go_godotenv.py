"""The port of godotenv v1.4.0's Parse (sqlserver_backup.go_godotenv), with
which GoBackup v3.1.1 loads the `.env` beside its config: the same values and
the same refusals as godotenv itself (tests/standins/cmd/portref)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlserver_backup.go_godotenv import DotenvError, parse_dotenv_text
from sqlserver_backup_testing import ask_portref

# What godotenv v1.4.0's Parse returns for these lines (asserted against
# godotenv itself below as well).
DOTENV_CASES = [
    ("K='a#b'\n", {"K": "a#b"}),
    ("K=a#b\n", {"K": "a"}),
    ("K=a #b\n", {"K": "a"}),
    ('K="a\\nb"\n', {"K": "a\nb"}),
    ('K="a\\"b"\n', {"K": 'a"b'}),
    ("export K=v\n", {"K": "v"}),
    ("K: v\n", {"K": "v"}),
    ("K='$OTHER'\n", {"K": "$OTHER"}),
    ("OTHER=x\nK=${OTHER}y\n", {"K": "xy", "OTHER": "x"}),
    ('K="$OTHER"\n', {"K": ""}),
    ("K=\\$X\n", {"K": "$X"}),
    ("K='it's'\n", {"K": "it's"}),
    ("K='a\"#b'\n", {"K": 'a"#b'}),
    ("  K  =  v  \n", {"K": "v"}),
    ("K='\n", {"K": "'"}),
    ("K='a\\nb'\n", {"K": "a\\nb"}),
    ("K=a'b#c'\n", {"K": "a'b#c'"}),
    ("K=v\r\n", {"K": "v"}),
    ("K='a'b'#c'\n", {"K": "a'b'#c"}),
    ("K=\t'v'\n", {"K": "\t'v'"}),
    ("K=$lower\n", {"K": "$lower"}),
    ('K="#x" # c\n', {"K": "#x"}),
]

# Lines godotenv refuses: no separator.
REFUSED = ["K\n", "export K\n", "OK=1\nno separator here\n"]


def test_the_cases_are_what_godotenv_returns(portref: Path) -> None:
    answers = ask_portref(portref, "dotenv", [text for text, _ in DOTENV_CASES] + REFUSED)
    assert [(answer["ok"], answer["values"]) for answer in answers] == [
        *((True, values) for _, values in DOTENV_CASES),
        *((False, {}) for _ in REFUSED),
    ]


@pytest.mark.parametrize(("text", "values"), DOTENV_CASES)
def test_dotenv_reads_like_godotenv(text: str, values: dict[str, str]) -> None:
    assert parse_dotenv_text(text) == values


@pytest.mark.parametrize("text", REFUSED)
def test_dotenv_refuses_like_godotenv(text: str) -> None:
    with pytest.raises(DotenvError) as refused:
        parse_dotenv_text(text)
    assert refused.value.line == text.count("\n")
