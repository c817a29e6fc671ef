"""`marimo-engine run --journal`, `runs`, `runs show`, `resume`, `rerun` and `--ask`, in process.

Side effects are counted by the tools in tests/unit/engine/durable_tools.py.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from marimo_engine.cli.main import ExitCode, main
from marimo_engine.engine.events import InterventionInfo
from tests.unit.engine import durable_tools
from tests.unit.engine.durable_tools import counts

TOOLS = str(Path(durable_tools.__file__))
PLAN = {
    "id": "cli-durable",
    "steps": [
        {"id": "a", "tool": "first", "args": {"x": 1}},
        {"id": "b", "tool": "double", "args": {"y": "$a"}, "intervention_if": "$b.v > 3"},
        {"id": "c", "tool": "last", "args": {"z": "$b.v"}, "requires_approval": True},
    ],
}


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    log = tmp_path / "side.log"
    monkeypatch.setenv("SIDE_LOG", str(log))
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLAN))
    return {"log": str(log), "plan": str(plan), "journal": str(tmp_path / "j.sqlite3")}


def _events(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def test_run_resume_approve_then_reject_approval(
    setup: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    j = ["--journal", setup["journal"]]
    code = main(["run", setup["plan"], "--tools", TOOLS, *j, "--run-id", "cli-1"])
    captured = capsys.readouterr()
    assert code == ExitCode.INTERVENTION_NEEDED
    events = _events(captured.out)
    assert {e["run_id"] for e in events} == {"cli-1"}
    needed = next(e for e in events if e["type"] == "INTERVENTION_NEEDED")
    assert "resume with: marimo-engine resume cli-1" in captured.err

    code = main(["resume", "cli-1", "--tools", TOOLS, *j, "--intervention", "stale"])
    assert code == ExitCode.BAD_INPUT
    assert "stale" in capsys.readouterr().err
    code = main(["resume", "cli-1", "--tools", TOOLS, *j])
    assert code == ExitCode.BAD_INPUT
    assert "Pass --approve, --reject or --answer JSON." in capsys.readouterr().err

    code = main(
        [
            "resume",
            "cli-1",
            "--tools",
            TOOLS,
            *j,
            "--approve",
            "--intervention",
            needed["intervention_id"],
        ]
    )
    events = _events(capsys.readouterr().out)
    assert code == ExitCode.INTERVENTION_NEEDED
    approval = next(e for e in events if e["type"] == "INTERVENTION_NEEDED")
    assert approval["kind"] == "approval" and approval["args"] == {"z": 4}

    code = main(["resume", "cli-1", "--tools", TOOLS, *j, "--answer", "5"])
    assert code == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert "takes approve or reject, not answer. Pass --approve or --reject." in err
    code = main(["resume", "cli-1", "--tools", TOOLS, *j, "--reject", "--reason", "no"])
    events = _events(capsys.readouterr().out)
    assert code == ExitCode.OK
    assert events[-1]["verdict"] == "SUCCESS"
    assert counts(setup["log"]) == {"first": 1, "double": 1}

    assert main(["runs", *j, "--json"]) == ExitCode.OK
    rows = json.loads(capsys.readouterr().out)
    assert [(r["run_id"], r["status"]) for r in rows] == [("cli-1", "SUCCESS")]
    assert main(["runs", "show", "cli-1", *j, "--json"]) == ExitCode.OK
    shown = json.loads(capsys.readouterr().out)
    steps = {s["step_id"]: s for s in shown["steps"]}
    assert steps["a"]["output_summary"] == "2"
    assert steps["c"]["status"] == "skipped" and "no" in steps["c"]["reason"]
    assert main(["runs", "show", "cli-1", *j]) == ExitCode.OK
    assert "status SUCCESS" in capsys.readouterr().out


def test_rerun_with_set_runs_only_what_changed(
    setup: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "simple.json"
    plan.write_text(
        json.dumps(
            {
                "steps": [
                    {"id": "a", "tool": "first", "args": {"x": 1}},
                    {"id": "k", "tool": "last", "args": {"z": 3}},
                    {"id": "b", "tool": "double", "args": {"y": "$a"}},
                ]
            }
        )
    )
    j = ["--journal", setup["journal"]]
    assert main(["run", str(plan), "--tools", TOOLS, *j, "--run-id", "base"]) == ExitCode.OK
    capsys.readouterr()
    Path(setup["log"]).unlink()
    code = main(["rerun", "base", "--tools", TOOLS, *j, "--set", "a.args.x=2"])
    events = _events(capsys.readouterr().out)
    assert code == ExitCode.OK
    assert events[-1]["outputs"] == {"a": 3, "k": 3, "b": {"v": 6}}
    assert counts(setup["log"]) == {"first": 1, "double": 1}
    assert main(["rerun", "base", "--tools", TOOLS, *j]) == ExitCode.BAD_INPUT
    assert "--set" in capsys.readouterr().err


def test_no_journal_records_nothing(
    setup: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    j = ["--journal", setup["journal"]]
    monkeypatch.setenv("MARIMO_ENGINE_JOURNAL", setup["journal"])
    code = main(["run", setup["plan"], "--tools", TOOLS, "--no-journal", "--run-id", "x"])
    assert code == ExitCode.INTERVENTION_NEEDED
    capsys.readouterr()
    assert main(["runs", "--json"]) == ExitCode.OK
    assert json.loads(capsys.readouterr().out) == []
    main(["run", setup["plan"], "--tools", TOOLS, "--run-id", "y"])  # the default: journaled
    capsys.readouterr()
    assert main(["runs", "--json"]) == ExitCode.OK
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)] == ["y"]
    assert main(["run", setup["plan"], *j, "--no-journal"]) == ExitCode.BAD_INPUT


def test_corrupt_journal_is_one_line(
    setup: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    Path(setup["journal"]).write_bytes(b"garbage" * 200)
    assert main(["runs", "--journal", setup["journal"]]) == ExitCode.FAILURE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot be used as a journal" in err[0]


@pytest.mark.parametrize(
    ("typed", "action", "value"),
    [
        ("a\n", "approve", None),
        ("r\nbecause\n", "reject", None),
        ('{"v": 1}\n', "answer", {"v": 1}),
        ("", None, None),
    ],
)
def test_ask_prompt_reads_the_answer(
    monkeypatch: pytest.MonkeyPatch, typed: str, action: str | None, value: Any
) -> None:
    from marimo_engine.cli.runs import _prompt

    monkeypatch.setattr("sys.stdin", io.StringIO(typed))
    info = InterventionInfo(
        step_id="b", expression="$b.v > 3", output={"v": 4}, intervention_id="i", kind="condition"
    )
    decision = _prompt(info)
    if action is None:
        assert decision is None
    else:
        assert decision is not None and decision.action == action and decision.value == value
        if action == "reject":
            assert decision.reason == "because"


def test_ask_needs_a_terminal(
    setup: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["run", setup["plan"], "--tools", TOOLS, "--ask"]) == ExitCode.BAD_INPUT
    assert "--ask needs a terminal" in capsys.readouterr().err


def test_resume_and_show_a_run_started_with_inputs(
    setup: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from marimo_engine import execute_plan_sync

    plan = {
        "id": "cli-inputs",
        "inputs": {"x": {"required": False, "default": 1}, "tag": {"required": False}},
        "steps": [
            {"id": "a", "tool": "first", "args": {"x": "$input.x"}, "requires_approval": True},
            {"id": "c", "tool": "last", "args": {"z": "$input.x"}},
        ],
    }
    tools = {"first": durable_tools.first, "last": durable_tools.last}
    started = execute_plan_sync(
        plan, tools, journal=setup["journal"], run_id="cli-in", inputs={"x": 10, "tag": (1,)}
    )
    assert started.intervention is not None
    j = ["--journal", setup["journal"]]
    assert main(["runs", "show", "cli-in", *j]) == ExitCode.OK
    assert "inputs x=10, tag=<pickle>" in capsys.readouterr().out

    # A person resumes it later from a shell: the CLI has no way to give inputs, nor needs one.
    code = main(["resume", "cli-in", "--tools", TOOLS, *j, "--approve"])
    events = _events(capsys.readouterr().out)
    assert code == ExitCode.OK
    assert events[-1]["outputs"] == {"a": 11, "c": 10}


def test_run_takes_plan_inputs_and_says_which_is_missing(
    setup: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "inputs.json"
    plan.write_text(
        json.dumps(
            {
                "id": "with-inputs",
                "inputs": {
                    "n": {"description": "a number"},
                    "m": {"required": False, "default": 7},
                },
                "steps": [
                    {"id": "a", "tool": "first", "args": {"x": "$input.n"}},
                    {"id": "b", "tool": "last", "args": {"z": "$input.m"}},
                ],
            }
        )
    )
    j = ["--journal", setup["journal"]]
    code = main(["run", str(plan), "--tools", TOOLS, *j, "--run-id", "in", "--input", "n=4"])
    assert code == ExitCode.OK
    assert _events(capsys.readouterr().out)[-1]["outputs"] == {"a": 5, "b": 7}  # 4 read as JSON
    # the journal keeps the inputs: a rerun reads them again
    assert main(["rerun", "in", "--tools", TOOLS, *j, "--set", "b.args.z=1"]) == ExitCode.OK
    assert _events(capsys.readouterr().out)[-1]["outputs"] == {"a": 5, "b": 1}

    for given, wanted in [
        ([], "needs the input 'n'; give it (--input n=VALUE)"),
        (["--input", "n"], "--input 'n': write NAME=VALUE."),
        (["--input", "n=1", "--input", "n=2"], "--input gives 'n' twice"),
        (["--input", "n=1", "--input", "k=2"], "has no input 'k'; its inputs: 'n', 'm'"),
    ]:
        assert main(["run", str(plan), "--tools", TOOLS, "--no-journal", *given]) == 2
        captured = capsys.readouterr()
        assert wanted in captured.err and captured.out == "", given  # nothing ran


def test_export_puts_the_given_inputs_in_the_inputs_cell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "inputs.json"
    plan.write_text(
        json.dumps(
            {
                "id": "exported",
                "inputs": {"n": {}},
                "steps": [{"id": "a", "tool": "first", "args": {"x": "$input.n"}}],
            }
        )
    )
    out = tmp_path / "nb.py"
    argv = ["export", str(plan), "-o", str(out), "--tools", TOOLS]
    assert main([*argv, "--input", "n=4"]) == ExitCode.OK
    assert "plan_inputs = plan_run.default_inputs(json.loads('{\"n\": 4}'))" in out.read_text()
    assert main(argv) == ExitCode.OK  # without: the defaults (a sub-plan's parent gives n)
    assert "plan_inputs = plan_run.default_inputs()\n" in out.read_text()
    assert main([*argv, "--input", "m=1"]) == ExitCode.BAD_INPUT
    assert "has no input 'm'" in capsys.readouterr().err
