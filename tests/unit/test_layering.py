"""The layering of docs/architecture.md: `tools` imports `plans`, never the reverse."""

from __future__ import annotations

import ast
from pathlib import Path

import marimo_engine.plans as plans


def _imports(package_dir: Path) -> list[tuple[str, int, str]]:
    found = []
    for path in sorted(package_dir.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [(path.name, node.lineno, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.append((path.name, node.lineno, node.module))
    return found


def test_plans_imports_nothing_of_tools_engine_or_agents() -> None:
    upper = ("marimo_engine.tools", "marimo_engine.engine", "marimo_engine.agents")
    offenders = [
        f"{name}:{line} {module}"
        for name, line, module in _imports(Path(plans.__file__).parent)
        if module.startswith(upper)
    ]
    assert offenders == []
