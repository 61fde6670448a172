"""The roles' conventions, read from their files: every default documented in
the argument spec and commented, every variable prefixed with its role, the
image's build context complete, the example inventories keeping the pinned
checksums. The roles run for real: tests/integration/test_roles.py."""

from __future__ import annotations

import re

import pytest
import yaml
from sqlserver_backup_testing import REPO

ROLES = sorted(path.name for path in (REPO / "roles").iterdir() if path.is_dir())


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_mirror_the_defaults(role: str) -> None:
    defaults = yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())
    spec = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    assert sorted(options) == sorted(defaults)
    for name, value in defaults.items():
        assert options[name].get("default") == value, name
        assert options[name].get("description"), name


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_commented(role: str) -> None:
    lines = (REPO / "roles" / role / "defaults" / "main.yml").read_text().splitlines()
    uncommented = []
    for index, line in enumerate(lines):
        if not re.match(r"^[a-z_]+:", line):
            continue
        above = index - 1
        # A run of keys shares the comment above the run.
        while above >= 0 and (re.match(r"^[a-z_]+:", lines[above]) or lines[above].startswith(" ")):
            above -= 1
        if above < 0 or not lines[above].startswith("#"):
            uncommented.append(line.split(":")[0])
    assert uncommented == []


@pytest.mark.parametrize("role", ROLES)
def test_role_variables_carry_the_role_prefix(role: str) -> None:
    defaults = yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())
    assert [name for name in defaults if not name.startswith(f"{role}_")] == []


def test_every_file_the_dockerfile_copies_is_in_the_build_context() -> None:
    copied = set()
    for line in (REPO / "image" / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied.update(part for part in line.split()[1:-1] if not part.startswith("artifacts/"))
    context = yaml.safe_load((REPO / "roles" / "backup_image" / "vars" / "main.yml").read_text())
    build_files = set(context["_backup_image_build_files"])
    assert copied - {"sqlserver_backup"} <= build_files
    assert "sqlserver_backup" in copied, "the package's modules follow the fileglob of the role"
    files = {path.name for path in (REPO / "image").iterdir() if path.is_file() and path.suffix != ".md"}
    assert build_files == files, "every image file is used"
    assert "*.py" in context["_backup_image_package_files"]


def test_the_production_example_keeps_the_pinned_checksums() -> None:
    text = (REPO / "inventories" / "production" / "group_vars" / "backup_hosts" / "vars.yml").read_text()
    assert "checksum" not in text, "a checksum is not a secret: the role's pinned default applies"
