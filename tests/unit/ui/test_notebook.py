"""The app's notebook: marimo's own loader reads it, and it runs top to bottom as a script."""

from __future__ import annotations

import pytest

from marimo_engine import execute_plan_sync
from marimo_engine.ui import APP_PATH

from .conftest import registry


def test_marimo_loads_the_notebook() -> None:
    from marimo._ast.load import load_app

    app = load_app(str(APP_PATH))
    assert app is not None
    assert len(list(app._cell_manager.cells())) >= 15


def test_the_notebook_runs(journal_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from marimo._ast.load import load_app

    result = execute_plan_sync(
        {"id": "seen", "steps": [{"id": "a", "tool": "scan_hull"}]},
        tools=registry(),
        journal=journal_path,
    )
    monkeypatch.setenv("MARIMO_ENGINE_JOURNAL", journal_path)
    monkeypatch.delenv("MARIMO_ENGINE_UI", raising=False)
    app = load_app(str(APP_PATH))
    assert app is not None
    _, defs = app.run()
    assert defs["journal"].location == journal_path
    assert defs["config"].model is None
    assert [r["run"] for r in defs["get_rows"]()] == [result.run_id]
    defs["journal"].close()
