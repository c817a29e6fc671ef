"""`marimo-engine` commands run in process: exit codes, messages, outputs.

stdout is captured (not a terminal), so `run` writes JSON lines here; the
subprocess tests in tests/integration/cli run the installed command.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pytest

from marimo_engine.cli.main import ExitCode, build_parser, main

INVALID_PLAN = {
    "steps": [
        {"id": "a", "tool": "scan_hul"},
        {"id": "b", "tool": "check_oxygen", "run_if": "$zz.level < 3"},
        {"id": "c", "tool": "check_oxygen", "args": {"simulated_level": "high"}},
    ]
}
INVALID_LINES = [
    "step 'a', field 'tool': Tool 'scan_hul' is not registered. Did you mean 'scan_hull'? "
    "[unknown_tool]",
    "step 'b', field 'run_if': Step 'b' refers to '$zz.level', but there is no step 'zz'.",
    "step 'c', field 'args.simulated_level': ",
]


def _write(tmp_path: Path, plan: object, name: str = "plan.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(plan), encoding="utf-8")
    return str(path)


def _events(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


@dataclass(frozen=True)
class RunCase:
    id: str
    plan: dict[str, object]
    code: ExitCode
    verdict: str


RUN_CASES = [
    RunCase(
        "success",
        {"steps": [{"id": "o2", "tool": "check_oxygen", "args": {"read_delay_s": 0}}]},
        ExitCode.OK,
        "SUCCESS",
    ),
    RunCase(
        "failure",
        {"steps": [{"id": "o2", "tool": "check_oxygen", "args": {"simulated_level": 150.0}}]},
        ExitCode.FAILURE,
        "FAILURE",
    ),
    RunCase(
        "intervention",
        {
            "steps": [
                {
                    "id": "o2",
                    "tool": "check_oxygen",
                    "args": {"simulated_level": 14.0, "read_delay_s": 0},
                    "intervention_if": "$o2.level < 15",
                }
            ]
        },
        ExitCode.INTERVENTION_NEEDED,
        "INTERVENTION_NEEDED",
    ),
]


@pytest.mark.parametrize("case", RUN_CASES, ids=[c.id for c in RUN_CASES])
def test_run_exit_code_follows_the_verdict(
    case: RunCase, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", _write(tmp_path, case.plan)])
    events = _events(capsys.readouterr().out)
    assert code == case.code
    assert events[0]["type"] == "START"
    assert events[-1]["type"] == "FINISH"
    assert events[-1]["verdict"] == case.verdict


def test_run_failure_event_names_the_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["run", _write(tmp_path, RUN_CASES[1].plan)])
    errors = [e for e in _events(capsys.readouterr().out) if e["type"] == "ERROR"]
    assert errors[0]["step_id"] == "o2"
    assert errors[0]["error"]["type"] == "ValueError"  # type: ignore[index]


def test_run_writes_the_notebook(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "nb.py"
    code = main(["run", "example:hull-check-7", "--notebook", str(out)])
    captured = capsys.readouterr()
    assert code == ExitCode.OK
    assert "app = marimo.App(" in out.read_text(encoding="utf-8")
    assert f"wrote the notebook of the run to {out}" in captured.err
    assert not [p for p in tmp_path.iterdir() if p.name != "nb.py"]  # no temporary left


def test_run_invalid_plan_lists_every_problem_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, INVALID_PLAN)
    code = main(["run", path])
    captured = capsys.readouterr()
    assert code == ExitCode.BAD_INPUT
    err = captured.err.splitlines()
    assert err[0] == f"error: {path} has 3 problems; nothing was run:"
    for line, expected in zip(err[1:], INVALID_LINES, strict=True):
        assert line.strip().startswith(expected)
    events = _events(captured.out)
    assert [e["type"] for e in events] == ["START", "ERROR", "FINISH"]
    assert len(events[1]["error"]["problems"]) == 3  # type: ignore[index]
    assert events[2]["verdict"] == "FAILURE"
    assert "Traceback" not in captured.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "{tmp}/missing.json"], "error: Plan file '{tmp}/missing.json' does not exist"),
        (["validate", "{tmp}/not.json"], "error: Plan file '{tmp}/not.json' is not valid JSON"),
        (
            ["run", "example:hull-check-7", "--tools", "no_such_tools_mod"],
            "error: Cannot import tools module 'no_such_tools_mod'",
        ),
        (
            ["export", "example:hull-check-7", "-o", "{tmp}/no/dir/x.py"],
            "error: Cannot write the notebook '{tmp}/no/dir/x.py': folder",
        ),
        (["run", "example:nope"], "error: There is no example plan 'nope'"),
    ],
    ids=["missing-file", "not-json", "unknown-tools-module", "bad-output-folder", "no-example"],
)
def test_bad_input_is_one_line_and_exit_code_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "not.json").write_text("steps: [a, b]", encoding="utf-8")
    code = main([arg.format(tmp=tmp_path) for arg in argv])
    err = capsys.readouterr().err
    assert code == ExitCode.BAD_INPUT
    assert err.startswith(message.format(tmp=tmp_path))
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--debug", "run", str(tmp_path / "missing.json")])
    err = capsys.readouterr().err
    assert code == ExitCode.BAD_INPUT
    assert "Traceback (most recent call last)" in err
    assert "UsageError: Plan file" in err


def test_debug_after_the_command_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(tmp_path / "missing.json"), "--debug"]) == ExitCode.BAD_INPUT
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize("debug", [True, False], ids=["debug", "no-debug"])
def test_debug_shows_a_failing_tools_traceback(
    debug: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tools = tmp_path / f"cli_exploding_tools_{debug}.py"
    tools.write_text(
        "def explode() -> dict:\n"
        "    return _inner()\n"
        "\n"
        "def _inner():\n"
        "    raise ValueError('sensor offline')\n",
        encoding="utf-8",
    )
    plan = _write(tmp_path, {"id": "p", "steps": [{"id": "s1", "tool": "explode"}]})
    argv = ["run", plan, "--tools", str(tools), *(["--debug"] if debug else [])]
    logger = logging.getLogger("marimo_engine")
    before = (logger.level, list(logger.handlers))
    assert main(argv) == ExitCode.FAILURE
    assert (logger.level, logger.handlers) == before  # the debug log ends with the command
    out, err = capsys.readouterr()
    assert _events(out)[-1]["verdict"] == "FAILURE"
    if debug:
        assert "Step 's1' failed: ValueError" in err
        assert "Traceback (most recent call last)" in err
        assert f'File "{tools}", line 5, in _inner' in err
        assert "no running event loop" not in err  # no unrelated exception context
    else:
        assert "Traceback" not in err


def test_validate_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "example:seattle-weather"]) == ExitCode.OK
    assert capsys.readouterr().out == "valid\n"


def test_validate_prints_every_problem_one_per_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, INVALID_PLAN)
    assert main(["validate", path]) == ExitCode.BAD_INPUT
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{path}: 3 problems"
    for line, expected in zip(out[1:], INVALID_LINES, strict=True):
        assert line.startswith(expected)


def test_validate_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", _write(tmp_path, INVALID_PLAN), "--json"]) == ExitCode.BAD_INPUT
    problems = json.loads(capsys.readouterr().out)
    assert [(p["step_id"], p["field"], p["code"]) for p in problems] == [
        ("a", "tool", "unknown_tool"),
        ("b", "run_if", "unknown_reference"),
        ("c", "args.simulated_level", "invalid_args"),
    ]
    assert main(["validate", "example:hull-check-7", "--json"]) == ExitCode.OK
    assert json.loads(capsys.readouterr().out) == []


def test_validate_with_a_tools_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tools = tmp_path / "cli_validate_tools.py"
    tools.write_text("def greet(name: str) -> str:\n    return 'hi ' + name\n", encoding="utf-8")
    plan = _write(tmp_path, {"steps": [{"id": "g", "tool": "greet", "args": {"name": 3}}]})
    assert main(["validate", plan, "--tools", str(tools)]) == ExitCode.BAD_INPUT
    assert "expects str" in capsys.readouterr().out
    assert main(["validate", plan]) == ExitCode.BAD_INPUT
    assert "Tool 'greet' is not registered" in capsys.readouterr().out


def test_export_writes_a_notebook_marimo_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from marimo._ast.load import load_app

    out = tmp_path / "weather.py"
    assert main(["export", "example:seattle-weather", "-o", str(out)]) == ExitCode.OK
    assert f"wrote {out} (8 steps)" in capsys.readouterr().out
    app = load_app(str(out))
    assert app is not None
    names = {cell.name for cell in app._cell_manager.cells()}
    assert {"load_weather", "headline", "temperature_chart"} <= names


def test_export_invalid_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.py"
    assert main(["export", _write(tmp_path, INVALID_PLAN), "-o", str(out)]) == ExitCode.BAD_INPUT
    assert "has 3 problems" in capsys.readouterr().err
    assert not out.exists()


def test_tools_lists_names_and_schemas(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tools"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert out.startswith("scan_hull: Scan the ship's hull")
    assert "load_table: Load a table from a CSV or Parquet file" in out
    assert '    "type": "object"' in out
    assert main(["tools", "--json"]) == ExitCode.OK
    schemas = json.loads(capsys.readouterr().out)
    by_name = {s["name"]: s for s in schemas}
    assert by_name["query_tables"]["parameters"]["required"] == ["query", "tables"]


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == ExitCode.BAD_INPUT
    assert "usage: marimo-engine" in capsys.readouterr().err


def test_unknown_option_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "x.json", "--max-workers", "0"])
    assert exc.value.code == 2
    assert "expected 1 or more, got 0" in capsys.readouterr().err


def test_parser_has_every_command() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert {"run", "validate", "export", "tools"} <= set(commands)


@pytest.mark.parametrize(
    "argv",
    [
        ["tools"],
        ["validate", "example:hull-check-7"],
        # `live` catches every exception itself: the guard must act before it does.
        ["live", "servers", "--registry-dir", "{tmp}"],
    ],
    ids=["tools", "validate", "live-servers"],
)
def test_a_reader_that_went_away_ends_the_command_quietly(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    import contextlib
    import io
    import os
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head -1` after head exited: every write is EPIPE
    stdout = io.TextIOWrapper(io.FileIO(write_end, "w"), encoding="utf-8", line_buffering=True)
    monkeypatch.setattr(sys, "stdout", stdout)
    try:
        code = main([arg.format(tmp=tmp_path) for arg in argv])
        assert sys.stdout is stdout
        assert code == ExitCode.OK
        assert capfd.readouterr().err == ""
        stdout.write("written after the pipe broke: goes to /dev/null\n")
    finally:
        with contextlib.suppress(BrokenPipeError):
            stdout.close()
