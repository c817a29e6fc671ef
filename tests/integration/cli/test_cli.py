"""The installed `marimo-engine` command in a subprocess, on the real-data example and more."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.processes import run_process, start_process

pytestmark = pytest.mark.integration

SCRIPT = Path(sys.executable).with_name("marimo-engine")
EXAMPLE_STEPS = [
    "load_weather",
    "profile",
    "weather_mix",
    "yearly",
    "headline",
    "monthly",
    "temperature_chart",
    "weather_chart",
]
HEAVY = ["marimo", "pydantic_ai", "httpx", "rich", "duckdb", "pandas", "altair", "polars"]


def _command() -> list[str]:
    if SCRIPT.exists():
        return [str(SCRIPT)]
    return [sys.executable, "-m", "marimo_engine.cli.main"]


def _cli(*args: str, cwd: Path, timeout: float = 110.0) -> subprocess.CompletedProcess[str]:
    return run_process([*_command(), *args], cwd=cwd, timeout_s=timeout)


def _events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_help_is_fast_and_imports_nothing_heavy() -> None:
    probe = textwrap.dedent(
        f"""
        import contextlib, io, sys
        from marimo_engine.cli.main import main
        with contextlib.redirect_stdout(io.StringIO()) as out:
            try:
                main(["--help"])
            except SystemExit:
                pass
        assert "usage: marimo-engine" in out.getvalue()
        print(sorted(m for m in {HEAVY!r} if m in sys.modules))
        """
    )
    done = run_process([sys.executable, "-c", probe], timeout_s=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    helped = run_process([*_command(), "--help"], timeout_s=60)
    assert helped.returncode == 0
    assert "run" in helped.stdout and "validate" in helped.stdout


def test_real_data_example_json_stream_html_report_and_notebook(tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    notebook = tmp_path / "weather.py"
    done = _cli(
        "run",
        "example:seattle-weather",
        "--json",
        "--html",
        str(html),
        "--notebook",
        str(notebook),
        "--max-workers",
        "4",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr

    events = _events(done.stdout)
    assert events[0]["type"] == "START"
    assert events[-1]["type"] == "FINISH"
    assert events[-1]["verdict"] == "SUCCESS"
    assert [e["type"] for e in events].count("FINISH") == 1
    completed = [e["step_id"] for e in events if e["type"] == "STEP_COMPLETE"]
    assert sorted(completed) == sorted(EXAMPLE_STEPS)
    by_step = {e["step_id"]: e for e in events if e["type"] == "STEP_COMPLETE"}
    assert by_step["headline"]["key_finding"] is True
    assert by_step["headline"]["output"]["wettest_year"] == 2014
    assert by_step["load_weather"]["output"]["shape"] == [1461, 6]
    chart = by_step["temperature_chart"]["output"]
    assert chart["spec"]["mark"]["type"] == "line"
    # Every step starts before it completes, and after its inputs completed.
    order = [(e["type"], e.get("step_id")) for e in events]
    for step in EXAMPLE_STEPS:
        assert order.index(("STEP_START", step)) < order.index(("STEP_COMPLETE", step))
    assert order.index(("STEP_COMPLETE", "yearly")) < order.index(("STEP_START", "headline"))
    assert not [e for e in events if e["type"] in ("ERROR", "STEP_SKIPPED")]
    assert set(events[-1]["outputs"]) == set(EXAMPLE_STEPS)

    report = html.read_text(encoding="utf-8")
    for step in EXAMPLE_STEPS:
        assert step in report
    assert report.count("application/vnd.vegalite") >= 2  # both charts, as charts
    assert "Seattle: mean daily high by month" in report  # the line chart's own spec
    # The four tables (load_weather, weather_mix, yearly, monthly), as marimo tables.
    assert report.count("\\u003Cmarimo-table") == 4
    assert "SUCCESS" in report
    assert "1461" in report  # the loaded table's data is in the report
    assert "marimo.App(" in notebook.read_text(encoding="utf-8")
    assert f"wrote the HTML report to {html}" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "weather.py"]


def test_example_plan_written_to_a_file_runs_with_python(tmp_path: Path) -> None:
    notebook = tmp_path / "weather.py"
    exported = _cli("export", "example:seattle-weather", "-o", str(notebook), cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    ran = run_process([sys.executable, str(notebook)], cwd=tmp_path, timeout_s=110)
    assert ran.returncode == 0, ran.stderr


@pytest.mark.parametrize(
    ("plan", "code", "verdict"),
    [
        (
            {"steps": [{"id": "o2", "tool": "check_oxygen", "args": {"read_delay_s": 0}}]},
            0,
            "SUCCESS",
        ),
        (
            {"steps": [{"id": "t", "tool": "load_table", "args": {"path": "missing.csv"}}]},
            1,
            "FAILURE",
        ),
        (
            {
                "steps": [
                    {"id": "t", "tool": "load_table", "args": {"path": "gaps.csv"}},
                    {
                        "id": "profile",
                        "tool": "describe_table",
                        "args": {"table": "$t"},
                        "intervention_if": "$profile.missing_total > 0",
                    },
                ]
            },
            3,
            "INTERVENTION_NEEDED",
        ),
    ],
    ids=["0-success", "1-failure", "3-intervention"],
)
def test_exit_codes(tmp_path: Path, plan: dict[str, Any], code: int, verdict: str) -> None:
    (tmp_path / "gaps.csv").write_text("a,b\n1,2\n3,\n", encoding="utf-8")
    (tmp_path / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    done = _cli("run", "plan.json", cwd=tmp_path)
    assert done.returncode == code, done.stderr
    assert _events(done.stdout)[-1]["verdict"] == verdict
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "files", "first_line", "more_lines"),
    [
        (("run", "nope.json"), {}, "error: Plan file 'nope.json' does not exist", []),
        (
            ("run", "plan.json"),
            {"plan.json": "this is not json"},
            "error: Plan file 'plan.json' is not valid JSON: Expecting value at line 1, column 1",
            [],
        ),
        (
            ("run", "plan.json"),
            {
                "plan.json": json.dumps(
                    {
                        "steps": [
                            {"id": "a", "tool": "load_tabel"},
                            {"id": "a", "tool": "describe_table", "args": {"table": "$b"}},
                        ]
                    }
                )
            },
            "error: plan.json has 3 problems; nothing was run:",
            [
                "step 'a', field 'id': Step id 'a' is used by the steps at index 0 and 1",
                "step 'a', field 'tool': Tool 'load_tabel' is not registered. Did you mean "
                "'load_table'?",
                "step 'a', field 'args.table': Step 'a' refers to '$b', but there is no step 'b'.",
            ],
        ),
        (
            ("run", "example:seattle-weather", "--tools", "nonexistent_tools_pkg.tools"),
            {},
            "error: Cannot import tools module 'nonexistent_tools_pkg.tools': no module named "
            "'nonexistent_tools_pkg'",
            [],
        ),
    ],
    ids=["missing-file", "not-json", "invalid-plan", "unknown-tools-module"],
)
def test_bad_input_exits_2_with_a_message(
    tmp_path: Path,
    args: tuple[str, ...],
    files: dict[str, str],
    first_line: str,
    more_lines: list[str],
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    done = _cli(*args, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert lines[0].startswith(first_line)
    assert len(lines) == 1 + len(more_lines)
    for line, expected in zip(lines[1:], more_lines, strict=True):
        assert line.strip().startswith(expected)
    assert "Traceback" not in done.stderr


def test_tools_file_with_html_report(tmp_path: Path) -> None:
    """A `--tools FILE.py` tool whose output type lives in that file still renders."""
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "lab_tools.py").write_text(
        textwrap.dedent(
            """
            import dataclasses

            @dataclasses.dataclass
            class Reading:
                label: str
                value: float

            def measure(label: str) -> Reading:
                \"\"\"Measure something.\"\"\"
                return Reading(label=label, value=42.5)
            """
        ),
        encoding="utf-8",
    )
    plan = {
        "name": "Lab",
        "steps": [
            {"id": "m", "tool": "measure", "args": {"label": "sample-xyz"}, "key_finding": True}
        ],
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    done = _cli(
        "run", "plan.json", "--tools", "lab/lab_tools.py", "--html", "out.html", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    finish = _events(done.stdout)[-1]
    assert finish["outputs"]["m"] == {"label": "sample-xyz", "value": 42.5}
    report = (tmp_path / "out.html").read_text(encoding="utf-8")
    assert "sample-xyz" in report
    assert "Reading(label=" in report  # unpickled as the tool's own type


def test_live_progress_on_a_terminal(tmp_path: Path) -> None:
    leader, follower = pty.openpty()
    env = dict(os.environ, COLUMNS="100", TERM="xterm")
    process = start_process(
        [*_command(), "run", "example:seattle-weather"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 110
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the follower side closed: the process is done
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    os.close(leader)
    assert process.wait(timeout=30) == 0
    raw = b"".join(chunks).decode("utf-8", errors="replace")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw)  # colours and cursor moves
    assert "Seattle weather, 2012-2015" in text
    assert "running" in text  # a step was shown running before it was done
    for step in EXAMPLE_STEPS:
        assert step in text
    assert "★ key finding" in text
    assert "SUCCESS in" in text
    assert '"type"' not in text  # not JSON lines on a terminal


def _start_slow_run(
    tmp_path: Path, steps: list[dict[str, Any]], *options: str
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """Start `run` of a plan of `slow(seconds)` steps; return it and its START, once a step runs."""
    (tmp_path / "slow_tools.py").write_text(
        "import time\n\n\ndef slow(seconds: float) -> float:\n    time.sleep(seconds)\n"
        "    return seconds\n",
        encoding="utf-8",
    )
    (tmp_path / "plan.json").write_text(json.dumps({"id": "slow", "steps": steps}), "utf-8")
    # start_process sets SIGINT to its default action in the child: a child of a
    # non-interactive shell would otherwise inherit it ignored.
    process = start_process(
        [*_command(), "run", "plan.json", "--tools", "slow_tools.py", *options],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    start = json.loads(process.stdout.readline())  # START: the run is under way
    assert start["type"] == "START"
    assert json.loads(process.stdout.readline())["type"] == "STEP_START"
    return process, start


@pytest.mark.parametrize(
    ("interrupts", "tool_seconds", "max_wait_s"),
    [(1, 4.0, 20.0), (2, 60.0, 10.0)],
    ids=["once-waits-for-the-step", "twice-quits-at-once"],
)
def test_ctrl_c(tmp_path: Path, interrupts: int, tool_seconds: float, max_wait_s: float) -> None:
    steps = [{"id": "a", "tool": "slow", "args": {"seconds": tool_seconds}}]
    process, _ = _start_slow_run(tmp_path, steps)
    started = time.monotonic()
    for _ in range(interrupts):
        process.send_signal(signal.SIGINT)
        time.sleep(0.3)
    out, err = process.communicate(timeout=max_wait_s + 30)
    assert time.monotonic() - started < max_wait_s
    assert process.returncode == 130
    assert "cancelling the run: waiting for running steps to stop" in err
    assert err.strip().endswith("error: interrupted")
    if interrupts == 1:
        finish = json.loads(out.splitlines()[-1])
        assert (finish["type"], finish["verdict"]) == ("FINISH", "FAILURE")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_cancel_the_run_as_ctrl_c_does(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """`kill`, `docker stop`, a closed terminal: the run still ends with FINISH, journal too."""
    steps = [
        {"id": "a", "tool": "slow", "args": {"seconds": 3.0}},
        {"id": "b", "tool": "slow", "args": {"seconds": 0.0}, "depends_on": ["a"]},
    ]
    process, start = _start_slow_run(tmp_path, steps, "--journal", "runs.db")
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, err
    assert f"{signum.name}: cancelling the run" in err
    assert err.strip().endswith(f"error: stopped by {signum.name}")
    finish = json.loads(out.splitlines()[-1])
    assert (finish["type"], finish["verdict"]) == ("FINISH", "FAILURE")
    assert "b" not in (finish.get("outputs") or {})  # no step started after the signal
    shown = run_process(
        [*_command(), "runs", "show", start["run_id"], "--journal", "runs.db", "--json"],
        cwd=tmp_path,
        timeout_s=60,
    )
    assert shown.returncode == 0, shown.stderr
    journaled = json.loads(shown.stdout)
    assert (journaled["status"], journaled["lease_owner"]) == ("FAILURE", None)  # lease let go
    assert [s["step_id"] for s in journaled["steps"]] == ["a"]
    text = run_process(
        [*_command(), "runs", "show", start["run_id"], "--journal", "runs.db"],
        cwd=tmp_path,
        timeout_s=60,
    ).stdout
    assert re.search(r"^  a +interrupted ", text, re.M), text  # not "running" after the run ended
