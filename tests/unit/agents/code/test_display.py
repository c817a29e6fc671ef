"""The code command's terminal display: text as the person wrote it."""

from __future__ import annotations

import io

import pytest

from marimo_engine.cli.code import _Display


def test_model_names_are_not_turned_into_emoji(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    display = _Display(as_json=False)
    display.line("openai:x: 3 requests, model :smile: [bold]x[/bold]")
    assert out.getvalue().strip() == "openai:x: 3 requests, model :smile: [bold]x[/bold]"
