"""The EDA agent on the Seattle weather data (shipped by vega_datasets), with a scripted model.

The script writes real cells (as a model would, reading the data context it
is given); the notebook then runs with plain `python`, and the summary
numbers it prints match the data computed here independently.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from marimo_engine.agents.code import CodeAgent, CodeOptions
from marimo_engine.agents.code.data import describe_file
from marimo_engine.agents.code.eda import eda_brief, eda_goal
from marimo_engine.engine.events import Verdict
from marimo_engine.live.server import HeadlessServer
from marimo_engine.live.session import open_session
from tests.integration.code.conftest import STARTUP_TIMEOUT_S
from tests.integration.code.scripted import ScriptedCoder, create, finish, patch
from tests.integration.conftest import notebook_file

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(360)]


def _seattle(tmp_path: Path) -> Path:
    from vega_datasets import local_data

    path = tmp_path / "seattle-weather.csv"
    local_data.seattle_weather().to_csv(path, index=False)
    return path


async def test_the_eda_agent_builds_a_notebook_that_runs_and_matches_the_data(
    tmp_path: Path, notebook_server: HeadlessServer
) -> None:
    data = _seattle(tmp_path)
    context = describe_file(data)
    columns = [c["name"] for c in context["columns"]]
    assert columns == ["date", "precipitation", "temp_max", "temp_min", "wind", "weather"]

    def cells_from_context(messages: object) -> tuple[str, dict[str, object]]:
        # A model reads the data context in the prompt: check it is there, then write cells.
        told = str(messages)
        assert "temp_max" in told and str(context["rows"]) in told and "Exploratory" in told
        return patch(
            create(
                "load",
                f"import pandas as pd\ndf = pd.read_csv({str(data)!r}, "
                "parse_dates=['date'])\ndf.head()",
            ),
            create("schema", "schema = pd.DataFrame({'dtype': df.dtypes.astype(str)})\nschema"),
            create("missing", "missing = df.isna().sum()\nmissing"),
            create("distributions", "numeric = df.describe()\nnumeric"),
            create(
                "weather_counts", "weather_counts = df['weather'].value_counts()\nweather_counts"
            ),
            create(
                "relations",
                "corr = df[['precipitation', 'temp_max', 'temp_min', 'wind']].corr()\ncorr",
            ),
            create(
                "chart",
                "import altair as alt\nchart = alt.Chart(df).mark_line().encode("
                "x='yearmonth(date):T', y='mean(temp_max):Q')\nchart",
            ),
            create(
                "summary",
                "import marimo as mo\nrows = len(df)\nmean_max = round(df['temp_max'].mean(), 2)\n"
                "rainy = int((df['weather'] == 'rain').sum())\n"
                "print(f'SUMMARY rows={rows} mean_max={mean_max} rainy={rainy}')\n"
                "mo.md(f'**{rows}** days; mean daily high **{mean_max} C**; '\n"
                "      f'**{rainy}** rainy days.')",
            ),
        )

    coder = ScriptedCoder([cells_from_context, finish("Summary computed.", "summary")])
    agent = CodeAgent(coder.model(), options=CodeOptions(), memory_dir=False, brief=eda_brief())
    notebook = notebook_file(notebook_server, tmp_path, "eda_seattle.py")  # a new notebook
    with open_session(
        notebook, url=notebook_server.url, startup_timeout_s=STARTUP_TIMEOUT_S
    ) as live:
        async with live.client() as client:
            result = await agent.run(
                eda_goal(data), client, notebook=notebook, data_context=[context],
                new_notebook=True,
            )  # fmt: skip
            cells = await client.cells()
    assert result.verdict is Verdict.SUCCESS, (result.stop_reason, result.error)
    assert all(not c.errors for c in cells), [(c.name, c.errors) for c in cells]
    assert all(c.name and c.code for c in cells)  # no blank cell left from marimo's new notebook

    frame = pd.read_csv(data)
    expected = (
        f"SUMMARY rows={len(frame)} mean_max={round(frame['temp_max'].mean(), 2)} "
        f"rainy={int((frame['weather'] == 'rain').sum())}"
    )
    done = subprocess.run(
        [sys.executable, str(notebook)], capture_output=True, text=True, timeout=300,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert expected in done.stdout
