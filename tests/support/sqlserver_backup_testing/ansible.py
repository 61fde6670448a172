"""The project's playbooks run for real with the venv's ansible-playbook and
the project's ansible.cfg, and what their output says."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from .paths import REPO, TEST_VARS, VENV_BIN

RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)", re.M)


def ansible_program(
    program: str,
    *arguments: str,
    environment: dict[str, str] | None = None,
    cwd: Path = REPO,
    project_config: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Runs one of the venv's Ansible programs (ansible-playbook,
    ansible-galaxy, ansible-vault) without colours, in the repository with the
    project's ansible.cfg unless told otherwise; `environment` adds to (or
    overrides) the variables."""
    config = {"ANSIBLE_CONFIG": str(REPO / "ansible.cfg")} if project_config else {}
    return subprocess.run(
        [str(VENV_BIN / program), *arguments],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env={**os.environ, **config, "ANSIBLE_NOCOLOR": "1", **(environment or {})},
    )


def ansible_playbook(*arguments: str, environment: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Runs ansible-playbook in the repository with the project's ansible.cfg."""
    return ansible_program("ansible-playbook", *arguments, environment=environment)


def dev_playbook(playbook: str, *arguments: dict[str, object] | str, verbose: bool = False):
    """Runs playbooks/<playbook> on the dev inventory with the test vars (the
    stand-ins, or the real tools), then each argument: a mapping as extra vars
    (JSON), a string as it is ("-e", "key=value", "--check"); later extra vars
    win."""
    command = ["-v"] if verbose else []
    command += ["-i", str(REPO / "inventories" / "dev"), "-e", f"@{TEST_VARS}"]
    for argument in arguments:
        command += [argument] if isinstance(argument, str) else ["-e", json.dumps(argument)]
    return ansible_playbook(*command, str(REPO / "playbooks" / playbook))


def local_playbook(playbook: str, inventory: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Runs playbooks/<playbook> on an inventory whose every host is this
    machine: a local connection, no become, this Python."""
    locally = ["ansible_connection=local", "ansible_become=false", f"ansible_python_interpreter={sys.executable}"]
    extra_vars = [part for variable in locally for part in ("-e", variable)]
    return ansible_playbook("-i", str(inventory), *arguments, *extra_vars, str(REPO / "playbooks" / playbook))


def play_recap(output: str) -> dict[str, dict[str, int]]:
    """Host -> {ok, changed, unreachable, failed, skipped} of a PLAY RECAP."""
    keys = ("ok", "changed", "unreachable", "failed", "skipped")
    return {found[0]: dict(zip(keys, map(int, found[1:]), strict=True)) for found in RECAP.findall(output)}


def said(result: subprocess.CompletedProcess[str], phrase: str) -> bool:
    """The phrase appears in Ansible's output, however the YAML callback wrapped it."""
    return " ".join(phrase.split()) in " ".join(result.stdout.split())


def vault_view(path: Path, password_file: Path) -> str:
    """The plain text of a vault file."""
    viewed = ansible_program("ansible-vault", "view", "--vault-password-file", str(password_file), str(path))
    assert viewed.returncode == 0, viewed.stderr
    return viewed.stdout
