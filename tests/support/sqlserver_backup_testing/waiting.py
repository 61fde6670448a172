"""Waiting for something to happen, and the free ports things listen on."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class TimedOut(AssertionError, RuntimeError):
    """A wait that ran out: a failed assertion in a test, a runtime error in
    the benchmark (which reports a section that failed and goes on)."""


def wait_until(
    condition: Callable[[], T], what: str | Callable[[], str], timeout: float = 60, interval: float = 0.1
) -> T:
    """Calls condition every `interval` seconds until it returns something
    true, and returns that; after `timeout` seconds raises TimedOut naming
    `what` (a callable is asked only then, e.g. for a container's log)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimedOut(f"timed out after {timeout:g} s waiting for {what() if callable(what) else what}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port of the loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
