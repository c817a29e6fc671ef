"""Importing the live bridge and its CLI stays light: no httpx, websockets or marimo."""

from __future__ import annotations

import json
import sys

import pytest

from tests.processes import run_process

HEAVY = ["marimo", "httpx", "websockets", "pandas", "polars", "rich", "pydantic_ai"]


@pytest.mark.integration
def test_importing_live_and_its_cli_loads_nothing_heavy() -> None:
    code = (
        "import json, sys\n"
        "import marimo_engine.live, marimo_engine.cli.live\n"
        "import marimo_engine.live.session, marimo_engine.live.client\n"
        "import marimo_engine.live.discovery, marimo_engine.live.server\n"
        "import marimo_engine.live.sync_client\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    result = run_process([sys.executable, "-c", code], timeout_s=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_the_public_names_resolve() -> None:
    import marimo_engine.live as live

    for name in live.__all__:
        assert getattr(live, name) is not None


def test_the_live_package_imports_nothing_of_the_engine() -> None:
    """`live` is a client of marimo: the engine drives it, never the reverse."""
    import ast
    from pathlib import Path

    import marimo_engine.live as live

    offenders = []
    for path in sorted(Path(live.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}:{node.lineno} {name}"
                for name in names
                if name.startswith(("marimo_engine.engine", "marimo_engine.agents"))
            ]
    assert offenders == []
