"""The port of Go's os.Expand (sqlserver_backup.go_os_expand) expands a
config exactly as GoBackup's os.ExpandEnv does, checked against the Go
function itself (tests/standins/cmd/goexpand)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from sqlserver_backup.go_os_expand import go_expand, referenced_names

EXPANSION_CASES = [
    "plain text",
    "${A} and $A",
    "${A:-fallback}",
    "$",
    "trailing $",
    "$$ and $1 and $@x",
    "${} eaten",
    "${unterminated",
    "$A_B-c",
    "${A}${B}",
    "p@ss:w0rd#1",
    "a$Bc d",
]


@pytest.mark.parametrize("text", EXPANSION_CASES)
def test_expansion_matches_go(standin_bin: Path, text: str) -> None:
    environment = {"A": "alpha", "B": "beta", "A_B": "ab", "Bc": "bc"}
    result = subprocess.run(
        [str(standin_bin / "goexpand"), text], env=environment, capture_output=True, text=True, check=True
    )
    assert go_expand(text, lambda name: environment.get(name, "")) == json.loads(result.stdout)[0]


def test_referenced_names_are_what_go_looks_up() -> None:
    assert referenced_names("${A} $A ${A:-x} $1 $$ ${B}") == ["A", "A:-x", "1", "$", "B"]
