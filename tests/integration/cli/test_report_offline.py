"""The HTML report renders in a real headless Chromium with the network off.

The report of the real-data example (tables and Altair charts) is opened from
a `file://` URL; every request that is not `file:`, `blob:` or `data:` is
recorded and aborted, and the test asserts there were none. A screenshot is
saved next to the report in the test's tmp folder (`seattle-weather.png`,
`oxygen-watch.png`) for a person to look at. Chromium is Debian's
(`apt-get install chromium`), driven by Playwright with `executable_path`;
Playwright's driver stops the browser when the test process ends, even when
it is killed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from marimo_engine.cli.report import write_html_report
from marimo_engine.cli.run_state import ProgressModel
from marimo_engine.engine.executor import execute_plan_sync
from marimo_engine.examples import load_example
from marimo_engine.plans.schema import load_plan
from marimo_engine.tools.data import data_registry

# A run, marimo's export and Chromium parsing ~20 MB of JavaScript: minutes
# on a loaded 2-core machine, not the default 120 s.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_SCHEMES = ("file:", "blob:", "data:")
RENDER_TIMEOUT_MS = 90_000  # a loaded 2-core machine parses ~20 MB of JavaScript


def _chromium() -> Path:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    pytest.importorskip("playwright.sync_api", reason="uv sync installs the dev dependencies")
    return CHROMIUM


def _report(name: str, folder: Path) -> Path:
    from marimo_engine.tools.examples import example_registry

    plan = load_plan(load_example(name))
    tools = data_registry() if name == "seattle-weather" else example_registry()
    model = ProgressModel.from_plan(plan)
    result = execute_plan_sync(plan, tools, on_event=model.apply)
    return write_html_report(
        model, result.outputs, folder / f"{name}.html", notebook=result.notebook
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _report("seattle-weather", tmp_path_factory.mktemp("report"))


@dataclass
class Rendered:
    text: str
    cells: list[str]
    network: list[str]
    errors: list[str]
    screenshot: Path


def _render(report: Path, *ready: str) -> Rendered:
    """Open `report` offline; wait for the header and each `ready` selector; screenshot it."""
    executable = _chromium()
    from playwright.sync_api import Request, Route, sync_playwright

    network: list[str] = []
    errors: list[str] = []

    def route(route: Route, request: Request) -> None:
        if request.url.startswith(LOCAL_SCHEMES):
            route.continue_()
        else:
            network.append(request.url)
            route.abort("internetdisconnected")

    def on_console(message: Any) -> None:
        if message.type == "error":
            errors.append(f"console: {message.text}")

    screenshot = report.with_suffix(".png")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            # Tall enough for the whole report: marimo scrolls inside the page,
            # so a full-page screenshot would stop at the viewport.
            page = browser.new_page(viewport={"width": 1280, "height": 6000})
            page.route("**/*", route)
            page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
            page.on("console", on_console)
            page.goto(report.as_uri())
            page.get_by_text("in ", exact=False).first.wait_for(timeout=RENDER_TIMEOUT_MS)
            for selector in ready:
                page.locator(selector).first.wait_for(state="attached", timeout=RENDER_TIMEOUT_MS)
            text = page.inner_text("body")
            cells = [cell.strip() for cell in page.get_by_role("cell").all_inner_texts()]
            page.screenshot(path=str(screenshot))
        finally:
            browser.close()
    return Rendered(text, cells, network, errors, screenshot)


def test_report_has_no_network_references(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    assert "cdn.jsdelivr.net" not in html
    assert "@marimo-team/frontend@" not in html
    assert 'rel="modulepreload"' not in html


def test_report_renders_offline_in_chromium(report: Path) -> None:
    # A table rendered by marimo's table widget, and both Altair charts.
    shown = _render(report, "marimo-table", ".vega-embed canvas >> nth=1")
    assert shown.network == []
    assert shown.errors == []
    for step_id in ("load_weather", "yearly", "headline", "weather_chart"):
        assert step_id in shown.text
    assert "temp_max" in shown.text
    # The yearly table: years without thousands separators; counts keep them.
    assert "2012" in shown.cells and "2,012" not in shown.cells
    assert any(re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", cell) for cell in shown.cells)
    assert shown.screenshot.stat().st_size > 10_000


def test_intervention_report_opens_with_the_condition_and_values(tmp_path: Path) -> None:
    shown = _render(_report("oxygen-watch", tmp_path))
    assert shown.network == []
    assert shown.errors == []
    top = shown.text[: shown.text.index("\no2\n")] if "\no2\n" in shown.text else shown.text
    assert "INTERVENTION_NEEDED" in top
    assert "$o2.level < 15 or $o2.status == 'critical'" in top
    assert "$o2.level = 14.2" in top
    assert "level = 14.2" in top and "sensor_id = 'O2-ENGINE-3'" in top
