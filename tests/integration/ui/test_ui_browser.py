"""The runs UI in a real browser: `marimo-engine ui` on loopback, Debian's Chromium, Playwright.

One server for the module (its own process group, stopped by its id), a
journal the tests fill by running plans in this process, and a scripted
OpenAI-compatible server on loopback as the planner's model. Each test
writes screenshots of the states it checks under its temporary folder
(`shots/`), for a person to look at. Skipped, with the reason, when
Chromium or Playwright is missing.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from marimo_engine import execute_plan_sync
from marimo_engine.engine.durable import list_runs
from marimo_engine.engine.journal import open_journal
from marimo_engine.examples import load_example
from tests.processes import start_process, stop_process
from tests.unit.llm.openai_server import ScriptedOpenAIServer, scripted_server
from tests.unit.ui.conftest import TOOLS_FILE, registry, wait_until

# A ceiling for a loaded machine (the first test also starts the server); the
# module takes about two minutes on an idle one.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
STARTUP_S = 180.0
"""Seconds for the server to answer, and for the page's first render (a loaded machine)."""
WAIT_MS = 90_000
"""Milliseconds a page check waits for what it expects."""

CHAT_PLAN = {
    "name": "Chat plan",
    "steps": [
        {"id": "hull", "tool": "scan_hull"},
        {"id": "air", "tool": "check_oxygen", "key_finding": True},
    ],
}


@dataclass
class Server:
    url: str
    journal: str
    model: ScriptedOpenAIServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(
            f"Chromium is not installed at {CHROMIUM}: apt-get install chromium "
            "(Debian's package; Playwright drives it with executable_path)"
        )
    pytest.importorskip("playwright.sync_api", reason="Playwright is missing: uv sync --dev")
    folder = tmp_path_factory.mktemp("ui")
    journal = str(folder / "journal.sqlite3")
    with scripted_server([{"tool_args": CHAT_PLAN}], repeat_last=True) as model:
        env = {
            **os.environ,
            "OPENAI_BASE_URL": model.base_url,
            "OPENAI_API_KEY": "test-key-not-secret",
            "XDG_STATE_HOME": str(folder / "state"),
        }
        command = [
            sys.executable, "-m", "marimo_engine.cli.main", "ui", "--journal", journal,
            "--port", "0", "--tools", str(TOOLS_FILE), "--model", "openai:scripted",
        ]  # fmt: skip
        process = start_process(
            command,
            outlive_test=True,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            url = _first_line(process)
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?access_token=\S{16,}", url), url
            yield Server(url=url, journal=journal, model=model)
        finally:
            stop_process(process)


def _first_line(process: subprocess.Popen[str]) -> str:
    """The URL the command prints once it serves (read in a thread: never wait forever)."""
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=STARTUP_S)
    except queue.Empty:
        raise AssertionError(f"marimo-engine ui printed no URL within {STARTUP_S} s") from None
    if not line:
        assert process.stderr is not None
        raise AssertionError(f"marimo-engine ui ended: {process.stderr.read()[-2000:]}")
    return line.strip()


@pytest.fixture(scope="module")
def browser(server: Server) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Page:
    """The app open in a tab, with screenshots under the test's folder."""

    def __init__(self, page: Any, shots: Path) -> None:
        self.page = page
        self.shots = shots
        shots.mkdir(exist_ok=True)

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    def select(self, run_id: str) -> None:
        """Pick the run's row; again if a redraw of the table swallowed the click."""
        header = self.page.locator("h2", has_text=f"Run {run_id}")
        row = self.page.get_by_role("row").filter(has_text=run_id)
        row.wait_for(timeout=WAIT_MS)
        for _ in range(5):
            row.get_by_role("checkbox").click()
            try:
                header.wait_for(timeout=15_000)
                return
            except Exception:
                continue
        header.wait_for(timeout=WAIT_MS)

    def node(self, step_id: str, state: str) -> Any:
        """The DAG node of `step_id` in `state` (mermaid gives it the state's class)."""
        # The label reads "ID TOOL STATE" without spaces; the tests use ids that are no
        # prefix of another id of their plan.
        return self.page.locator(f"g.node.{state}", has_text=re.compile(f"^{re.escape(step_id)}"))


@pytest.fixture
def app(browser: Any, server: Server, tmp_path: Path) -> Iterator[Page]:
    page = browser.new_page(viewport={"width": 1300, "height": 1800})
    try:
        page.goto(server.url, timeout=STARTUP_S * 1000)
        page.locator("h1", has_text="marimo-engine runs").wait_for(timeout=STARTUP_S * 1000)
        yield Page(page, tmp_path / "shots")
    finally:
        page.close()


def _run(plan: dict[str, Any], journal: str) -> str:
    result = execute_plan_sync(plan, tools=registry(), journal=journal)
    assert result.run_id is not None
    return result.run_id


def _status(journal: str, run_id: str) -> str | None:
    with open_journal(journal) as store:
        record = store.get_run(run_id, steps=False)
    return None if record is None else record.status


def test_token_is_required(server: Server) -> None:
    import httpx

    base = server.url.split("?")[0]
    with httpx.Client(timeout=60) as client:
        refused = client.get(base, follow_redirects=True)
        assert refused.url.path == "/auth/login", refused.url  # marimo's login page
        assert "marimo-engine runs" not in refused.text
        opened = client.get(server.url, follow_redirects=True)
        assert opened.status_code == 200
        assert "marimo-engine runs" in opened.text  # the app's title
        assert client.get(base).status_code == 200  # the session cookie holds the token


def test_runs_table_lists_and_filters_runs(app: Page, server: Server) -> None:
    good = _run({"id": "table-good", "steps": [{"id": "a", "tool": "scan_hull"}]}, server.journal)
    bad = _run(
        {"id": "table-bad", "steps": [{"id": "a", "tool": "scan_hull", "args": {"nope": 1}}]},
        server.journal,
    )
    page = app.page
    for run_id in (good, bad):
        page.get_by_role("row").filter(has_text=run_id).wait_for(timeout=WAIT_MS)
    row = page.get_by_role("row").filter(has_text=good)
    assert "table-good" in row.inner_text() and "SUCCESS" in row.inner_text()
    assert "FAILURE" in page.get_by_role("row").filter(has_text=bad).inner_text()
    app.shot("runs-table")
    search = page.get_by_placeholder("plan id contains")
    search.fill("table-bad")
    search.press("Enter")
    page.get_by_role("row").filter(has_text=good).wait_for(state="detached", timeout=WAIT_MS)
    assert page.get_by_role("row").filter(has_text=bad).count() == 1
    app.shot("runs-table-filtered")
    search.fill("")
    search.press("Enter")
    row.wait_for(timeout=WAIT_MS)


def test_dag_and_timeline_show_each_state(app: Page, server: Server, tmp_path: Path) -> None:
    plan = {
        "id": "states",
        "steps": [
            {"id": "hull", "tool": "scan_hull"},
            {"id": "never", "tool": "scan_hull", "run_if": "$hull.breach_detected"},
            {
                "id": "flaky",
                "tool": "fail_once",
                "args": {"marker": str(tmp_path / "flaky")},
                "retries": 1,
                "depends_on": ["hull"],
            },
            {
                "id": "broken",
                "tool": "fail_once",
                "args": {"marker": str(tmp_path / "broken")},
                "depends_on": ["flaky"],
            },
            {"id": "later", "tool": "scale", "args": {"value": 1}, "depends_on": ["broken"]},
        ],
    }
    run_id = _run(plan, server.journal)
    app.select(run_id)
    for step_id, state in [
        ("hull", "done"),
        ("never", "skipped"),
        ("flaky", "done"),
        ("broken", "failed"),
        ("later", "pending"),
    ]:
        app.node(step_id, state).wait_for(timeout=WAIT_MS)
    timeline = app.page.locator(".vega-embed svg")
    timeline.wait_for(timeout=WAIT_MS)
    drawn = timeline.text_content() or ""
    assert "Timeline" in drawn
    assert "2 tries" in drawn  # the retried step is labelled
    for step_id in ("hull", "flaky", "broken"):
        assert step_id in drawn
    app.page.get_by_text("the first try fails on purpose").first.wait_for(timeout=WAIT_MS)
    app.shot("dag-and-timeline")


def test_run_in_progress_updates_in_the_open_page(
    app: Page, server: Server, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    plan = {
        "id": "in-progress",
        "steps": [
            {"id": "hull", "tool": "scan_hull"},
            {"id": "gate", "tool": "wait_for_file", "args": {"path": str(gate)}},
            {"id": "after", "tool": "scale", "args": {"value": 3}, "depends_on": ["gate"]},
        ],
    }
    done: list[str] = []
    runner = threading.Thread(target=lambda: done.append(_run(plan, server.journal)))
    runner.start()
    try:
        run_id = wait_until(
            lambda: next(
                (r.run_id for r in list_runs(server.journal, limit=5)
                 if r.plan_id == "in-progress"),
                None,
            ),
            what="the run is in the journal",
        )  # fmt: skip
        app.select(run_id)
        app.node("gate", "running").wait_for(timeout=WAIT_MS)
        app.node("after", "pending").wait_for(timeout=WAIT_MS)
        app.shot("in-progress-running")
    finally:
        gate.write_text("go", encoding="utf-8")
        runner.join(timeout=120)
    assert done == [run_id]
    app.node("gate", "done").wait_for(timeout=WAIT_MS)
    app.node("after", "done").wait_for(timeout=WAIT_MS)
    app.page.get_by_role("row").filter(has_text=run_id).filter(has_text="SUCCESS").wait_for(
        timeout=WAIT_MS
    )
    app.shot("in-progress-finished")


def test_approve_resumes_the_run(app: Page, server: Server) -> None:
    plan = {
        "id": "approve-me",
        "steps": [
            {"id": "hull", "tool": "scan_hull"},
            {"id": "air", "tool": "check_oxygen", "requires_approval": True},
            {"id": "mix", "tool": "analyze_atmosphere", "args": {"o2_level": "$air.level"}},
        ],
    }
    run_id = _run(plan, server.journal)
    app.select(run_id)
    app.page.get_by_text("needs approval before its tool runs").wait_for(timeout=WAIT_MS)
    app.node("air", "waiting").wait_for(timeout=WAIT_MS)
    app.shot("approval-pending")
    app.page.get_by_role("button", name="Approve").click()
    app.node("mix", "done").wait_for(timeout=WAIT_MS)
    app.node("air", "done").wait_for(timeout=WAIT_MS)
    assert _status(server.journal, run_id) == "SUCCESS"
    app.page.get_by_text("needs approval before its tool runs").wait_for(
        state="detached", timeout=WAIT_MS
    )
    app.shot("approval-finished")


def test_reject_ends_the_run_with_the_reason(app: Page, server: Server) -> None:
    run_id = _run(load_example("oxygen-watch"), server.journal)
    app.select(run_id)
    app.page.get_by_text("stopped the run").wait_for(timeout=WAIT_MS)
    app.shot("condition-pending")
    app.page.get_by_placeholder("why (goes into the run)").fill("the crew is fine")
    app.page.get_by_role("button", name="Reject").click()
    app.page.get_by_text("the crew is fine").first.wait_for(timeout=WAIT_MS)
    wait_until(lambda: _status(server.journal, run_id) == "FAILURE", what="rejected run ends")
    app.page.get_by_role("row").filter(has_text=run_id).filter(has_text="FAILURE").wait_for(
        timeout=WAIT_MS
    )
    app.shot("condition-rejected")


def test_answer_replaces_the_output_and_the_run_goes_on(app: Page, server: Server) -> None:
    run_id = _run(load_example("oxygen-watch"), server.journal)
    app.select(run_id)
    page = app.page
    page.get_by_text("the output type tool check_oxygen declares").wait_for(timeout=WAIT_MS)
    answer = page.get_by_label("answer: the step's output, as JSON")
    answer.fill('{"level": "high"}')
    answer.blur()
    time.sleep(1)  # the text area sends its value after a short debounce
    page.get_by_role("button", name="Answer").click()
    page.get_by_text("Not resumed").wait_for(timeout=WAIT_MS)  # does not fit: nothing ran
    assert _status(server.journal, run_id) == "INTERVENTION_NEEDED"
    app.shot("answer-refused")
    fitting = '{"level": 18.0, "pressure_kpa": 18.2, "sensor_id": "O2-HAND", "status": "low"}'
    answer.fill(fitting)
    answer.blur()
    time.sleep(1)
    page.get_by_role("button", name="Answer").click()
    app.node("air", "done").wait_for(timeout=WAIT_MS)
    assert _status(server.journal, run_id) == "SUCCESS"
    page.get_by_text("O2-HAND").first.wait_for(timeout=WAIT_MS)  # the answer is o2's output
    app.shot("answer-accepted")


def test_rerun_with_a_changed_argument(app: Page, server: Server) -> None:
    plan = {
        "id": "rerun-me",
        "steps": [
            {"id": "a", "tool": "scale", "args": {"value": 1}},
            {"id": "b", "tool": "scale", "args": {"value": 10}},
            {"id": "c", "tool": "scale", "args": {"value": "$b.value"}},
        ],
    }
    run_id = _run(plan, server.journal)
    app.select(run_id)
    page = app.page
    page.get_by_text("Re-run with changed arguments").click()
    page.get_by_role("combobox").filter(has_text="a").last.select_option("b")
    editor = page.locator("textarea").last
    wait_until(lambda: '"value": 10' in editor.input_value(), what="b's arguments shown")
    editor.fill('{"value": 20}')
    editor.blur()
    time.sleep(1)  # the text area sends its value after a short debounce
    page.get_by_role("button", name="Re-run with these arguments").click()
    page.get_by_text(f"a re-run of {run_id}").wait_for(timeout=WAIT_MS)
    new_id = wait_until(
        lambda: next(
            (r.run_id for r in list_runs(server.journal, limit=5)
             if r.parent_run_id == run_id and r.status == "SUCCESS"),
            None,
        ),
        what="the re-run ends",
    )  # fmt: skip
    with open_journal(server.journal) as store:
        record = store.get_run(new_id)
    assert record is not None
    assert {s.step_id: s.reused_from for s in record.steps} == {"a": run_id, "b": None, "c": None}
    app.shot("rerun")


def test_chat_turns_a_goal_into_a_plan_and_a_run(app: Page, server: Server) -> None:
    page = app.page
    before = len(server.model.requests)
    page.locator(".cm-content").last.click()
    page.keyboard.type("check the hull and the air")
    page.keyboard.press("Enter")
    approve = page.get_by_role("button", name="Approve and run")
    approve.wait_for(timeout=WAIT_MS)
    heading = page.locator("h3", has_text="Proposed plan").inner_text()
    plan_id = re.search(r"plan-[0-9a-f]{8}", heading)
    assert plan_id is not None, heading
    app.node("hull", "pending").first.wait_for(timeout=WAIT_MS)
    app.shot("chat-proposal")
    requests = server.model.requests[before:]
    assert requests and "submit_plan" in requests[0].tool_names
    assert "check the hull and the air" in str(requests[0].body["messages"])
    approve.click()
    row = page.get_by_role("row").filter(has_text=plan_id.group(0))
    row.filter(has_text="SUCCESS").wait_for(timeout=WAIT_MS)
    app.node("air", "done").wait_for(timeout=WAIT_MS)
    app.shot("chat-run")


def test_marimo_check_passes_on_the_app() -> None:
    from marimo_engine.ui import APP_PATH
    from tests.processes import run_process

    done = run_process([sys.executable, "-m", "marimo", "check", str(APP_PATH)], timeout_s=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "", done.stdout
