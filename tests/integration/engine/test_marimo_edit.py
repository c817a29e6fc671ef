"""A compiled plan opened in a real `marimo edit --headless` runs in the kernel."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from marimo_engine import plan_to_notebook
from marimo_engine.examples import load_example
from marimo_engine.live.server import HeadlessServer
from marimo_engine.live.session import open_session
from marimo_engine.tools.examples import example_registry
from tests.integration.conftest import notebook_file

pytestmark = pytest.mark.integration

BUSY = {"queued", "running"}


def test_marimo_edit_runs_the_compiled_plan_and_stops_what_a_skip_blocks(
    tmp_path: Path, notebook_server: HeadlessServer
) -> None:
    plan = load_example("hull-check-7")
    plan["steps"].append(
        {"id": "after-s3", "tool": "analyze_atmosphere", "args": {"o2_level": "$s3.composition.O2"}}
    )
    source = plan_to_notebook(plan, example_registry())
    notebook = notebook_file(notebook_server, tmp_path, "hull.py", source)

    with (
        open_session(notebook, url=notebook_server.url, startup_timeout_s=120) as live,
        live.sync_client() as client,
    ):
        deadline = time.monotonic() + 120
        cells = client.cells()
        while any(c.status in BUSY for c in cells) and time.monotonic() < deadline:
            time.sleep(0.5)
            cells = client.cells()
        by_name = {c.name: c for c in cells if c.name}
        assert set(by_name) >= {"s1", "s2", "s3", "after_s3"}
        assert by_name["s1"].status == "idle" and not by_name["s1"].errors
        assert "HullScan" in (by_name["s1"].output or "")
        assert "OxygenReading" in (by_name["s2"].output or "")
        # s3's run_if is false: its cell stops itself, and marimo does not run its dependent
        assert "Skipped" in (by_name["s3"].output or "")
        assert by_name["after_s3"].status == "cancelled"
        assert not by_name["after_s3"].errors and not by_name["after_s3"].output
        result = client.execute("print(type(s2).__name__, s2.level)")
        assert result.success
        assert "OxygenReading 20.9" in result.stdout


def test_marimo_edit_shows_a_markdown_step_and_a_broken_contract(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    plan = {
        "id": "contracts",
        "steps": [
            {"id": "s2", "tool": "check_oxygen", "expect": ["$self.level > 0"],
             "schema": {"type": "object", "required": ["level", "status"]}},
            {"id": "report", "markdown": "Oxygen is **$s2.level** %, $s2.status."},
            {"id": "strict", "tool": "check_oxygen", "expect": ["$self.level > 50"],
             "depends_on": ["report"]},
        ],
    }  # fmt: skip
    notebook = tmp_path / "contracts.py"
    notebook.write_text(plan_to_notebook(plan, example_registry()), encoding="utf-8")

    with open_session(notebook) as live, live.sync_client() as client:
        deadline = time.monotonic() + 120
        cells = client.cells()
        while any(c.status in BUSY for c in cells) and time.monotonic() < deadline:
            time.sleep(0.5)
            cells = client.cells()
        by_name = {c.name: c for c in cells if c.name}
        assert not by_name["s2"].errors
        report = by_name["report"]
        assert not report.errors
        assert report.output == "Oxygen is 20.9 %, nominal.", report.output
        assert report.output_mimetype == "text/markdown"
        errors = " ".join(str(e) for e in by_name["strict"].errors)
        assert "ContractError" in errors and "$self.level > 50" in errors
