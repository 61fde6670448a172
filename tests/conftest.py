"""Fixtures every test folder uses, and each test's marker from its folder:
tests/unit, tests/integration and tests/e2e (README: Tests). The helpers are
the package sqlserver_backup_testing (tests/support)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlserver_backup_testing import build_standins

LANES = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks each test with its folder's lane; a test module outside the
    three folders is an error, so no test goes without a lane."""
    tests = Path(__file__).parent
    for item in items:
        if not item.path.is_relative_to(tests):
            continue
        lane = item.path.relative_to(tests).parts[0]
        if lane not in LANES:
            raise pytest.UsageError(f"{item.path}: a test module belongs in tests/unit, tests/integration or tests/e2e")
        item.add_marker(lane)


@pytest.fixture(scope="session")
def standin_bin() -> Path:
    """Builds the stand-in binaries (quick when nothing changed)."""
    return build_standins()
