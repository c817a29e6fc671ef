"""`marimo-engine code` and `eda`: registration, arguments and bad input (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from marimo_engine.cli.main import build_parser, main


def test_code_and_eda_are_registered() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert {"code", "eda"} <= set(commands)
    args = parser.parse_args(
        ["code", "sum it", "nb.py", "--data", "a.csv", "--data", "b.csv", "--approve", "auto",
         "--max-turns", "5", "--budget-usd", "0.5", "--sandbox"]
    )  # fmt: skip
    assert (args.goal, args.notebook, args.data) == ("sum it", "nb.py", ["a.csv", "b.csv"])
    assert (args.approve, args.max_turns, args.budget_usd, args.sandbox) == ("auto", 5, 0.5, True)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["code", "do it", "nb.py"], "Give --model"),
        (["code", "--model", "openai:x"], "Give a GOAL"),
        (["code", "--undo"], "Give the NOTEBOOK.py"),
        (["code", "do it", "nb.py", "--model", "openai:x", "--data", "missing.csv"],
         "does not exist"),
        (["code", "do it", "nb.py", "--model", "nope"], "PROVIDER:NAME"),
        (["eda", "missing.csv", "--model", "openai:x"], "does not exist"),
        # A --url no server answers on names nothing: bad input, as a --session that matches none.
        (["code", "do it", "--url", "http://127.0.0.1:9", "--model", "openai:x"],
         "Could not list sessions at http://127.0.0.1:9"),
        (["code", "--undo", "nb.py", "--url", "http://127.0.0.1:9"], "Could not list sessions"),
        (["eda", "weather", "--url", "http://127.0.0.1:9", "--model", "openai:x"],
         "Could not list sessions"),
        (["live", "cells", "--url", "http://127.0.0.1:9"], "Could not list sessions"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_sandbox_is_refused_for_a_persons_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    argv = ["code", "x", "--url", "http://127.0.0.1:9", "--sandbox", "--model", "openai:x"]
    assert main(argv) == 2
    assert "never sandboxed by us" in capsys.readouterr().err
