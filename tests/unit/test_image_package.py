"""The image's Python package: its console scripts exist, and the libraries
the image and the controller both use are pinned to the same versions."""

from __future__ import annotations

import importlib
import re

import pytest
import tomllib
from sqlserver_backup_testing import REPO

PYPROJECT = tomllib.loads((REPO / "image" / "pyproject.toml").read_text())
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)", re.MULTILINE)


def pins(text: str) -> dict[str, str]:
    return {name.lower().replace("_", "-"): version for name, version in PIN.findall(text)}


@pytest.mark.parametrize("script", sorted(PYPROJECT["project"]["scripts"]))
def test_each_console_script_names_a_function(script: str) -> None:
    module, function = PYPROJECT["project"]["scripts"][script].split(":")
    assert callable(getattr(importlib.import_module(module), function))


def test_the_image_and_the_controller_pin_the_same_versions() -> None:
    image = pins((REPO / "image" / "requirements.txt").read_text())
    controller = pins((REPO / "requirements.txt").read_text())
    shared = image.keys() & controller.keys()
    assert {"minio", "prometheus-client", "pyyaml"} <= shared
    assert {name: image[name] for name in shared} == {name: controller[name] for name in shared}


def test_every_dependency_of_the_package_is_pinned_for_the_image() -> None:
    image = pins((REPO / "image" / "requirements.txt").read_text())
    for requirement in PYPROJECT["project"]["dependencies"]:
        name = re.split(r"[<>=!~ ]", requirement)[0].lower().replace("_", "-")
        assert name in image, f"{name} is not pinned in image/requirements.txt"
