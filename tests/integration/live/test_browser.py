"""A real person's browser (headless Chromium) in the notebook while the agent works.

The person opens `marimo edit` in Debian's Chromium, driven by Playwright;
the agent joins the browser's session through `LiveClientSync`. Skipped,
with the reason, when Chromium or Playwright is not installed.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from marimo_engine.errors import PersonCellError
from marimo_engine.live import HeadlessServer, LiveClientSync, list_sessions
from marimo_engine.live.protocol import SessionInfo

from .conftest import STARTUP_TIMEOUT_S

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

NOTEBOOK = """import marimo

app = marimo.App()


@app.cell
def person_cell():
    person_value = 41
    return (person_value,)


if __name__ == "__main__":
    app.run()
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (Debian package 'chromium')")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed (uv sync --dev)"
    )
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def person(browser: Any, tmp_path: Path) -> Iterator[tuple[Any, HeadlessServer]]:
    """A `marimo edit` server with the person's page open on it (the page owns the session)."""
    notebook = tmp_path / "person.py"
    notebook.write_text(NOTEBOOK, encoding="utf-8")
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    with HeadlessServer(notebook, env=env, startup_timeout_s=STARTUP_TIMEOUT_S) as server:
        page = browser.new_page()
        try:
            page.goto(f"{server.url}/", timeout=STARTUP_TIMEOUT_S * 1000)
            page.wait_for_selector(".cm-content", timeout=STARTUP_TIMEOUT_S * 1000)
            yield page, server
        finally:
            page.close()


def _wait_for_session(url: str, *, not_key: str | None = None) -> SessionInfo:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        sessions = list_sessions(url)
        if len(sessions) == 1 and sessions[0].session_id != not_key:
            return sessions[0]
        assert time.monotonic() < deadline, f"no single session on {url}: {sessions}"
        time.sleep(0.1)


def test_a_tab_reload_keeps_the_agent_connected(person: tuple[Any, HeadlessServer]) -> None:
    page, server = person
    before = _wait_for_session(server.url)
    with LiveClientSync(server.url, before.session_id) as client:
        client.create_cell("agent_value = 7", name="agent_cell")
        page.reload(timeout=STARTUP_TIMEOUT_S * 1000)  # the person presses F5
        after = _wait_for_session(server.url, not_key=before.session_id)
        assert after.stable_id == before.stable_id  # the same kernel, resumed
        result = client.execute("print(agent_value * 6)")
    assert result.success, result.error
    assert result.stdout == "42\n"


def test_an_agent_edit_never_drops_what_the_person_types(
    person: tuple[Any, HeadlessServer],
) -> None:
    page, server = person
    session = _wait_for_session(server.url)
    with LiveClientSync(server.url, session.session_id) as client:
        cell_id = client.cell("person_cell").id
        editor = page.locator(f'[data-cell-id="{cell_id}"] .cm-content')
        editor.click()
        page.keyboard.press("Control+End")
        # Typing with pauses far below the browser's 400 ms debounce: nothing
        # has reached the server when the agent acts.
        page.keyboard.type("  # the person types", delay=20)
        with pytest.raises(PersonCellError, match="holds code the person wrote"):
            client.edit_cell("person_cell", "person_value = 100")
        created = client.create_cell("agent_total = 1 + 1", name="agent_cell")
        page.keyboard.type(" on", delay=20)
        expected = "person_value = 41  # the person types on"
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while client.cell("person_cell").code != expected:  # the browser sends it after a pause
            assert time.monotonic() < deadline, client.cell("person_cell").code
            time.sleep(0.2)
        assert editor.inner_text() == expected
        assert client.cell(created.cell_id).code == "agent_total = 1 + 1"
