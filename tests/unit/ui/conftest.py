"""Fixtures of the runs UI tests: a journal in the test's folder, and its tools."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from marimo_engine.tools.examples import example_registry
from marimo_engine.tools.registry import ToolRegistry

from . import ui_tools

TOOLS_FILE = Path(ui_tools.__file__)


def registry() -> ToolRegistry:
    """The example tools and the UI test tools."""
    tools = example_registry()
    for function in (ui_tools.wait_for_file, ui_tools.fail_once, ui_tools.scale):
        tools.register(function)
    return tools


@pytest.fixture
def journal_path(tmp_path: Path) -> str:
    return str(tmp_path / "journal.sqlite3")


def wait_until(check: Callable[[], Any], *, timeout_s: float = 90.0, what: str = "") -> Any:
    """Poll `check` until it returns something true; fail after `timeout_s` (a loaded machine)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(0.05)
