"""Example plans shipped with the package, as JSON files in this folder.

Every `*.json` file here is one plan; its name without `.json` is the
example's name. `hull-check-7` is the plan language spec's own example;
`breach-response` and `oxygen-watch` add `depends_on`, interpolation,
`key_finding`, `intervention_if`, retries and timeouts; `air-report` adds
output contracts (`expect`, `schema`) and a markdown step. The hull and air
plans call the tools of `marimo_engine.tools.examples`
(`example_registry()`).

    from marimo_engine.examples import load_example
    from marimo_engine.tools.examples import example_registry

    plan = load_example("hull-check-7")
"""

from __future__ import annotations

import difflib
import json
from importlib import resources
from typing import Any

from marimo_engine.errors import UsageError

__all__ = ["example_names", "load_example"]


def _files() -> dict[str, Any]:
    folder = resources.files(__name__)
    return {
        entry.name.removesuffix(".json"): entry
        for entry in folder.iterdir()
        if entry.name.endswith(".json") and entry.is_file()
    }


def example_names() -> list[str]:
    """Return the names of the example plans, sorted (file names without `.json`)."""
    return sorted(_files())


def load_example(name: str) -> dict[str, Any]:
    """Return example plan `name` as a new dict, as parsed from its JSON file.

    Args:
        name: One of `example_names()`, such as `"hull-check-7"`; a trailing
            `.json` is accepted.

    Returns:
        The plan as plain JSON (a fresh dict on each call, safe to change);
        pass it to `validate_plan`, `load_plan` or `execute_plan`.

    Raises:
        UsageError: There is no example of that name; the message lists
            close names, or all of them.
    """
    files = _files()
    key = name.removesuffix(".json") if isinstance(name, str) else name
    entry = files.get(key)
    if entry is None:
        close = difflib.get_close_matches(str(name), list(files), n=3, cutoff=0.5)
        hint = (
            "Did you mean " + " or ".join(repr(c) for c in close) + "?"
            if close
            else "Examples: " + ", ".join(repr(n) for n in sorted(files)) + "."
        )
        raise UsageError(f"There is no example plan {name!r}. {hint}")
    data = json.loads(entry.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise UsageError(f"Example {key!r} is not a JSON object; the file is broken.")
    return data
