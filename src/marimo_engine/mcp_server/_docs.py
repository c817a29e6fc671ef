"""The plan-language reference the server offers as a resource.

The text is `docs/plan-language.md` of the repository, one copy: a wheel
carries it as `marimo_engine/docs/plan-language.md` (pyproject.toml,
`[tool.hatch.build.targets.wheel.force-include]`); a source checkout
installed in editable mode reads it from `docs/` directly.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["plan_language_reference"]

_NAME = "plan-language.md"


def plan_language_reference() -> str:
    """Return the plan-language reference (Markdown).

    Raises:
        FileNotFoundError: Neither the installed copy nor the checkout's
            `docs/plan-language.md` exists (a broken install).
    """
    installed = resources.files("marimo_engine") / "docs" / _NAME
    if installed.is_file():
        return installed.read_text(encoding="utf-8")
    checkout = Path(__file__).resolve().parents[3] / "docs" / _NAME
    if checkout.is_file():
        return checkout.read_text(encoding="utf-8")
    raise FileNotFoundError(
        f"The plan-language reference is missing: neither {installed} nor {checkout} exists; "
        "reinstall marimo-engine."
    )
