"""The CLI's one place for exit codes and error reporting (`cli/exits.py`)."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

import marimo_engine.cli as cli_package
from marimo_engine.cli.exits import ExitCode, exit_code_for, report_error, run_handler
from marimo_engine.engine.events import Verdict
from marimo_engine.errors import EngineError, LiveSelectionError, ModelConfigError, UsageError


@pytest.mark.parametrize(
    ("verdict", "code"),
    [
        (Verdict.SUCCESS, ExitCode.OK),
        ("SUCCESS", ExitCode.OK),
        (Verdict.FAILURE, ExitCode.FAILURE),
        (Verdict.INTERVENTION_NEEDED, ExitCode.INTERVENTION_NEEDED),
        (None, ExitCode.FAILURE),
    ],
)
def test_exit_code_for_a_verdict(verdict: object, code: ExitCode) -> None:
    assert exit_code_for(verdict) is code


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (UsageError("bad  flag\nvalue"), ExitCode.BAD_INPUT, "error: bad flag value"),
        (ModelConfigError("no key"), ExitCode.BAD_INPUT, "error: no key"),
        (LiveSelectionError("two servers"), ExitCode.BAD_INPUT, "error: two servers"),
        (EngineError("it broke"), ExitCode.FAILURE, "error: it broke"),
        (
            ValueError("odd"),
            ExitCode.FAILURE,
            "error: unexpected ValueError: odd (run again with --debug for the traceback)",
        ),
    ],
)
def test_errors_are_one_line_with_their_exit_code(
    exc: Exception, code: ExitCode, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report_error(exc, debug=False) is code
    assert capsys.readouterr().err.strip() == line


def test_run_handler_turns_ctrl_c_into_130(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import marimo_engine.cli.exits as exits

    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    # With a non-daemon worker busy the process would leave at once (os._exit).
    monkeypatch.setattr(exits, "_busy_threads", lambda: False)

    assert run_handler(interrupted, None, debug=False) == ExitCode.INTERRUPTED
    assert capsys.readouterr().err.strip() == "error: interrupted"


def test_a_broken_command_group_is_an_error_not_a_missing_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from marimo_engine.cli import main as cli_main

    real_import = importlib.import_module

    def broken(name: str, package: str | None = None) -> object:
        if name == "marimo_engine.cli.agent":
            raise ImportError("cannot import name 'gone' from 'somewhere'")
        return real_import(name, package)

    monkeypatch.setattr(cli_main.importlib, "import_module", broken)
    monkeypatch.delitem(sys.modules, "marimo_engine.cli.agent", raising=False)
    with pytest.raises(ImportError, match="gone"):
        cli_main.build_parser()


def test_no_command_module_has_its_own_exit_codes_or_error_reporting() -> None:
    """Exit codes and `error:` lines for exceptions live in cli/exits.py only."""
    offenders = []
    for path in sorted(Path(cli_package.__file__).parent.glob("*.py")):
        if path.name == "exits.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name == "ExitCode":
                offenders.append(f"{path.name}: class ExitCode")
            if isinstance(node, ast.Name) and node.id.startswith("_EXIT"):
                offenders.append(f"{path.name}:{node.lineno}: {node.id}")
            if isinstance(node, ast.Constant) and node.value == 130:
                offenders.append(f"{path.name}:{node.lineno}: 130")
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and text.startswith("error: unexpected"):
                offenders.append(f"{path.name}:{node.lineno}: its own error report")
    assert offenders == []


def test_selecting_makes_an_unreachable_server_bad_input_but_not_an_ended_kernel() -> None:
    from marimo_engine.cli.exits import selecting
    from marimo_engine.errors import (
        LiveConnectionError,
        LiveSelectionError,
        LiveSessionEndedError,
    )

    with pytest.raises(LiveSelectionError, match="refused"), selecting():
        raise LiveConnectionError("refused")
    ended = LiveSessionEndedError("ended", session_id="s1", reason="kernel-stopped")
    with pytest.raises(LiveSessionEndedError), selecting():
        raise ended
