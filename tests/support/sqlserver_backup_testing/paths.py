"""Where things are: the repository, the venv's programs, the test vars (the
stand-ins or the real tools) and the roles' defaults."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

# This package lies in tests/support/ of the repository (installed editable).
REPO = Path(__file__).resolve().parents[3]
if not (REPO / "galaxy.yml").is_file():
    raise ImportError(f"sqlserver_backup_testing must be installed editable from the repository, not from {REPO}")
# The stand-in binaries and artifacts that tests/standins/build_artifacts.py builds.
ARTIFACTS = REPO / "tests" / ".artifacts"
# The programs of the Python that runs the tests: ansible-playbook, the
# image package's console scripts.
VENV_BIN = Path(sys.executable).parent
# The one switch between the stand-ins (default) and the real upstream
# artifacts: a vars file, relative to the repository (README: "Testing against
# the real tools").
TEST_VARS = REPO / os.environ.get("SQLSERVER_BACKUP_TEST_VARS", "tests/offline-vars.yml")


def load_test_vars() -> dict[str, Any]:
    """The contents of TEST_VARS."""
    return yaml.safe_load(TEST_VARS.read_text())


USES_STANDINS = bool(load_test_vars().get("test_standins"))


def role_defaults(role: str) -> dict[str, Any]:
    """roles/<role>/defaults/main.yml."""
    return yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())


def base_image(role: str = "backup_image") -> str:
    """The base the tests build an image on: the test vars' choice, else the
    role's default (<role>_base)."""
    return load_test_vars().get("backup_image_base", role_defaults(role)[f"{role}_base"])


def collection_plugin(kind: str, name: str) -> ModuleType:
    """plugins/<kind>/<name>.py of the collection, loaded as a module of its own
    (the filters and modules are plain Python beside what Ansible calls)."""
    spec = importlib.util.spec_from_file_location(f"_collection_{kind}_{name}", REPO / "plugins" / kind / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"no plugins/{kind}/{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
