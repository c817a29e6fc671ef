"""Small real tools for planner tests (importable by module path)."""

from __future__ import annotations

from typing_extensions import TypedDict

from marimo_engine.tools.registry import ToolRegistry


class OxygenLevel(TypedDict):
    """An oxygen reading: its declared type lets validation check `$step.level`."""

    level: float


def divide(a: float, b: float) -> float:
    """Divide a by b.

    Args:
        a: The dividend.
        b: The divisor; 0 raises ZeroDivisionError.
    """
    return a / b


def read_oxygen(level: float) -> OxygenLevel:
    """Read the oxygen level, in percent.

    Args:
        level: The simulated level to report, 0-100.
    """
    return {"level": level}


def summarize(value: float, label: str = "result") -> str:
    """Write one line about a number.

    Args:
        value: The number.
        label: What it is.
    """
    return f"{label}: {value:g}"


def planner_registry() -> ToolRegistry:
    """The registry the planner tests use (and `--tools` finds): divide, read_oxygen, summarize."""
    return ToolRegistry.from_mapping(
        {"divide": divide, "read_oxygen": read_oxygen, "summarize": summarize}
    )


GOOD = {
    "name": "quarter",
    "steps": [
        {"id": "s1", "tool": "divide", "args": {"a": 1, "b": 4}},
        {"id": "s2", "tool": "summarize", "args": {"value": "$s1", "label": "quarter"}},
    ],
}
"""A plan that validates and succeeds with `planner_registry()`."""

MISSPELT = {"name": "typo", "steps": [{"id": "s1", "tool": "divde", "args": {"a": 1, "b": 4}}]}
"""A plan with an unknown tool (`divde`), for repair tests."""
