"""LiveClient against a real marimo kernel: code, cells, reactivity, errors, races, dataframes.

All tests share one notebook, so each uses its own cell names and variables.
"""

from __future__ import annotations

import time
from contextlib import aclosing
from pathlib import Path

import anyio
import httpx
import pytest

from marimo_engine.errors import (
    LiveKernelError,
    LiveSelectionError,
    LiveTimeoutError,
    PersonCellError,
    StaleCellError,
)
from marimo_engine.live import (
    ConsoleChunk,
    CreateCell,
    DeleteCell,
    EditCell,
    ExecuteResult,
    LiveClient,
    MoveCell,
)
from marimo_engine.live.session import LiveSession

from .conftest import LiveServer, server_token

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def _value(client: LiveClient, expression: str) -> str:
    result = await client.execute(f"print(repr({expression}))")
    assert result.success, result.error
    return result.stdout.strip()


async def test_check_reports_code_mode_and_version(live_session: LiveSession) -> None:
    async with live_session.client() as client:
        info = await client.check()
    assert info["marimo_version"].startswith("0.25.")
    assert info["cells"] >= 2
    assert info["tested"] is True


async def test_execute_returns_output_and_console(live_session: LiveSession) -> None:
    chunks: list[ConsoleChunk] = []
    async with live_session.client() as client:
        result = await client.execute(
            "import sys\nprint('to out')\nprint('to err', file=sys.stderr)\nseed_value * 4 + 2",
            on_output=chunks.append,
        )
    assert result.success
    assert result.error is None
    assert "42" in result.output
    assert result.stdout == "to out\n"
    assert result.stderr == "to err\n"
    # marimo flushes each channel on its own, so only the order within a channel is kept.
    assert sorted((c.channel, c.text) for c in chunks) == [
        ("stderr", "to err\n"),
        ("stdout", "to out\n"),
    ]


async def test_execute_failure_comes_back_as_error_text(live_session: LiveSession) -> None:
    async with live_session.client() as client:
        result = await client.execute("1 / 0")
    assert not result.success
    assert result.error is not None and "ZeroDivisionError" in result.error


async def test_output_streams_while_the_code_runs(
    live_session: LiveSession, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    code = (
        "import time, pathlib\n"
        "print('first', flush=True)\n"
        f"gate = pathlib.Path({str(gate)!r})\n"
        "deadline = time.monotonic() + 90\n"
        "while not gate.exists() and time.monotonic() < deadline:\n"
        "    time.sleep(0.02)\n"
        "print('second' if gate.exists() else 'gave up')\n"
    )
    seen: list[str] = []
    async with live_session.client() as client, aclosing(client.stream(code)) as events:
        async for item in events:
            if isinstance(item, ConsoleChunk):
                seen.append(item.text)
                if "first" in item.text:
                    # The run cannot print 'second' before this file exists:
                    # receiving 'first' here proves the output streamed.
                    gate.touch()
            else:
                assert isinstance(item, ExecuteResult)
                assert item.success
    assert "".join(seen) == "first\nsecond\n"


async def test_cancelling_the_caller_interrupts_the_kernel(live_session: LiveSession) -> None:
    code = "import time\nprint('started', flush=True)\nwhile True:\n    time.sleep(0.02)\n"
    async with live_session.client() as client:
        async with aclosing(client.stream(code)) as events:
            async for item in events:
                if isinstance(item, ConsoleChunk) and "started" in item.text:
                    break  # closing the stream must interrupt the endless loop
        # Were the kernel still looping, this run would wait behind it forever.
        after = await client.execute("'free'", timeout_s=90)
    assert after.success
    assert "free" in after.output


async def test_run_timeout_interrupts_and_raises(live_session: LiveSession) -> None:
    async with live_session.client() as client:
        with pytest.raises(LiveTimeoutError, match=r"took longer than 1\.5 s"):
            await client.execute("import time\nwhile True:\n    time.sleep(0.02)", timeout_s=1.5)
        after = await client.execute("'after timeout'", timeout_s=90)
    assert after.success


async def test_editing_a_cell_reruns_its_descendants(live_session: LiveSession) -> None:
    async with live_session.client() as client:
        source = await client.create_cell("react_a = 2", name="react_source")
        child = await client.create_cell("react_b = react_a * 10", name="react_child")
        assert (source.status, child.status) == ("idle", "idle")
        assert await _value(client, "react_b") == "20"
        edited = await client.edit_cell("react_source", "react_a = 5")
        assert edited.cell_id == source.cell_id
        assert await _value(client, "react_b") == "50"
        cells = {c.name: c for c in await client.cells()}
    assert cells["react_source"].code == "react_a = 5"
    assert cells["react_child"].status == "idle"


async def test_a_failing_cell_reports_its_error(live_session: LiveSession) -> None:
    async with live_session.client() as client:
        result = await client.apply(
            [CreateCell(code="raise ValueError('boom in cell')", name="failing_cell")]
        )
        cell = await client.cell("failing_cell")
    change = result.changes[0]
    assert change.status == "exception"
    assert change.errors == ["ValueError: boom in cell"]
    assert not result.execution.success
    assert "boom in cell" in result.execution.stderr
    assert cell.status == "exception"
    assert cell.errors == ["ValueError: boom in cell"]
    assert "Traceback" in cell.console


async def test_a_batch_is_applied_atomically(live_session: LiveSession) -> None:
    async with live_session.client() as client:
        before = [c.id for c in await client.cells()]
        with pytest.raises(LiveKernelError, match=r"SyntaxError|syntax"):
            await client.apply(
                [
                    CreateCell(code="atomic_ok = 1", name="atomic_ok_cell"),
                    CreateCell(code="def broken(:\n    pass", name="atomic_bad_cell"),
                ]
            )
        after = [c.id for c in await client.cells()]
        assert after == before
        result = await client.apply(
            [
                CreateCell(code="batch_x = 1", name="batch_first"),
                CreateCell(code="batch_y = batch_x + 1", name="batch_second", after="batch_first"),
            ]
        )
        assert [c.status for c in result.changes] == ["idle", "idle"]
        assert await _value(client, "batch_y") == "2"


async def test_move_and_delete_cells(live_session: LiveSession) -> None:
    async with live_session.client() as client:
        first = await client.create_cell("order_one = 1", name="order_one_cell")
        second = await client.create_cell("order_two = 2", name="order_two_cell")
        await client.move_cell("order_two_cell", before="order_one_cell")
        ids = [c.id for c in await client.cells()]
        assert ids.index(second.cell_id) == ids.index(first.cell_id) - 1
        await client.apply([DeleteCell(target="order_two_cell")])
        ids = [c.id for c in await client.cells()]
        assert second.cell_id not in ids
        gone = await client.execute("print('order_two' in globals())")
        assert gone.stdout.strip() == "False"
        with pytest.raises(LiveKernelError, match="not found"):
            await client.apply([MoveCell(target="no_such_cell", after="order_one_cell")])


async def test_graph_has_refs_defs_ancestors_and_descendants(live_session: LiveSession) -> None:
    async with live_session.client() as client:
        a = await client.create_cell("graph_a = 1", name="graph_a_cell")
        b = await client.create_cell("graph_b = graph_a + 1", name="graph_b_cell")
        c = await client.create_cell("graph_c = graph_b + 1", name="graph_c_cell")
        graph = await client.graph()
    node_a, node_b, node_c = (graph.node(x.cell_id) for x in (a, b, c))
    assert node_a.defs == ["graph_a"] and node_a.name == "graph_a_cell"
    assert node_b.refs == ["graph_a"] and node_b.defs == ["graph_b"]
    assert node_b.parents == [a.cell_id] and node_b.children == [c.cell_id]
    assert set(node_a.descendants) == {b.cell_id, c.cell_id}
    assert set(node_c.ancestors) >= {a.cell_id, b.cell_id}
    assert graph.node("graph_c_cell") == node_c


async def test_variables_have_type_and_short_repr(live_session: LiveSession) -> None:
    async with live_session.client() as client:
        cell = await client.create_cell(
            "vars_number = 7\nvars_text = 'x' * 500\nvars_list = list(range(100))",
            name="vars_cell",
        )
        variables = {v.name: v for v in await client.variables(max_repr_chars=60)}
    assert variables["vars_number"].type == "int"
    assert variables["vars_number"].repr == "7"
    assert variables["vars_number"].cell_id == cell.cell_id
    assert variables["vars_text"].type == "str"
    assert len(variables["vars_text"].repr) <= 60
    assert variables["vars_list"].repr.startswith("[0, 1, 2")
    assert variables["seed_value"].repr == "10"
    assert variables["mo"].type == "module"


async def test_describe_pandas_and_polars_dataframes(live_session: LiveSession) -> None:
    async with live_session.client() as client:
        await client.create_cell(
            "import pandas as pd_describe\n"
            "describe_pd = pd_describe.DataFrame({'hull': [1.5, float('nan'), 3.25], "
            "'deck': ['a', None, 'c'], 'ok': [True, False, True], 'n': [1, 2, 3]})",
            name="describe_pandas_cell",
        )
        await client.create_cell(
            "import polars as pl_describe\n"
            "describe_pl = pl_describe.DataFrame({'level': list(range(50)), "
            "'label': ['long text ' * 20] * 50})\n"
            "describe_nan = pl_describe.DataFrame({'x': [1.0, float('nan'), None]})\n"
            "describe_lazy = describe_pl.lazy().filter(pl_describe.col('level') > 3)",
            name="describe_polars_cell",
        )
        pandas_df = await client.describe("describe_pd")
        polars_df = await client.describe("describe_pl", max_chars=700, max_rows=10)
        lazy = await client.describe("describe_lazy")
        nan = await client.describe("describe_nan")
        with pytest.raises(LiveKernelError, match="not a pandas or polars DataFrame"):
            await client.describe("seed_value")
        with pytest.raises(LiveKernelError, match="No variable 'no_such_frame'"):
            await client.describe("no_such_frame")
    assert pandas_df.library == "pandas"
    assert pandas_df.shape == (3, 4)
    assert [(c.name, c.dtype, c.null_count) for c in pandas_df.columns] == [
        ("hull", "float64", 1),
        ("deck", pandas_df.columns[1].dtype, 1),
        ("ok", "bool", 0),
        ("n", "int64", 0),
    ]
    assert pandas_df.sample[0] == {"hull": 1.5, "deck": "a", "ok": True, "n": 1}
    assert pandas_df.sample[1] == {"hull": None, "deck": None, "ok": False, "n": 2}
    assert "hull (float64, 1 null)" in pandas_df.to_text()
    assert (lazy.lazy, lazy.shape, lazy.sample) == (True, (None, 2), [])
    assert [row["x"] for row in nan.sample] == [1.0, "NaN", None]  # polars: NaN is not null
    assert nan.columns[0].null_count == 1
    assert [(c.name, c.dtype, c.null_count) for c in lazy.columns] == [
        ("level", "Int64", None),
        ("label", "String", None),
    ]
    assert "polars LazyFrame, rows unknown (lazy, not collected)" in lazy.to_text()
    assert polars_df.library == "polars"
    assert polars_df.shape == (50, 2)
    assert [c.dtype for c in polars_df.columns] == ["Int64", "String"]
    assert 0 < len(polars_df.sample) < 10  # rows dropped to fit the budget
    assert len(polars_df.model_dump_json()) <= 700 + 50
    assert all(len(str(v)) <= 40 for row in polars_df.sample for v in row.values())
    assert "describe_pl: polars DataFrame, 50 rows x 2 columns" in polars_df.to_text()


async def test_set_ui_value_reruns_dependents(live_session: LiveSession) -> None:
    async with live_session.client() as client:
        await client.create_cell("ui_slider = mo.ui.slider(0, 10, value=1)", name="ui_slider_cell")
        await client.create_cell("ui_double = ui_slider.value * 2", name="ui_double_cell")
        assert await _value(client, "ui_double") == "2"
        await client.set_ui_value("ui_slider", 7)
        assert await _value(client, "ui_double") == "14"
        with pytest.raises(LiveKernelError, match="not a marimo UI element"):
            await client.set_ui_value("seed_value", 3)


async def test_an_edit_that_lost_a_race_raises_stale_cell_error(
    live_session: LiveSession,
) -> None:
    async with live_session.client() as client:
        created = await client.create_cell("race_value = 1", name="race_cell")
        await client.cells()  # the agent reads the cell
        # The person edits the same cell in the browser (marimo's frontend route).
        token = await server_token(live_session.url)
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"{live_session.url}/api/document/transaction",
                headers={
                    "Marimo-Session-Id": live_session.session_id,
                    "Marimo-Server-Token": token,
                },
                json={
                    "changes": [
                        {"type": "set-code", "cellId": created.cell_id, "code": "race_value = 2"}
                    ]
                },
                timeout=30,
            )
        assert response.status_code == 200, response.text
        with pytest.raises(StaleCellError, match=r"changed in the notebook .* Read it again"):
            await client.edit_cell("race_cell", "race_value = 3")
        cell = await client.cell("race_cell")  # reading again ...
        assert cell.code == "race_value = 2"
        # ... passes marimo's check, but the code is now the person's: refused by default.
        with pytest.raises(PersonCellError, match=f"'{cell.id}' holds code the person wrote"):
            await client.edit_cell("race_cell", "race_value = 3")
        with pytest.raises(PersonCellError):
            await client.delete_cell("race_cell")
        await client.edit_cell("race_cell", "race_value = 3", allow_person_cell=True)
        assert await _value(client, "race_value") == "3"
        # The agent wrote the current code again: its own edits need no flag.
        await client.edit_cell("race_cell", "race_value = 4")
        assert await _value(client, "race_value") == "4"


async def test_the_notebook_file_on_disk_is_updated(
    live_session: LiveSession, live_server: LiveServer
) -> None:
    async with live_session.client() as client:
        await client.create_cell("disk_marker_value = 'written by the agent'", name="disk_cell")
    deadline = time.monotonic() + 60
    while "disk_marker_value" not in live_server.notebook.read_text(encoding="utf-8"):
        assert time.monotonic() < deadline, "the kernel did not save the notebook"
        await anyio.sleep(0.1)
    text = live_server.notebook.read_text(encoding="utf-8")
    assert "def disk_cell(" in text
    assert "disk_marker_value = 'written by the agent'" in text


async def test_an_unknown_session_is_a_selection_error(live_server: LiveServer) -> None:
    async with LiveClient(live_server.url, "s_no_such_session") as client:
        with pytest.raises(LiveSelectionError, match=r"No session 's_no_such_session'.*sess-"):
            await client.execute("1")


async def test_edit_validation(live_session: LiveSession) -> None:
    async with live_session.client() as client:
        with pytest.raises(LiveKernelError, match="Invalid cell name"):
            await client.create_cell("bad_name_value = 1", name="not an identifier")
        with pytest.raises(LiveKernelError, match="not found"):
            await client.apply([EditCell(target="missing_cell_name", code="x = 1")])


async def test_tables_and_charts_read_as_short_text(live_session: LiveSession) -> None:
    async with live_session.client() as client:
        await client.create_cell(
            "import polars as pl_out\n"
            "pl_out.DataFrame({'depth': [1.5, None, 3.0], 'zone': ['a', 'b', 'c']})",
            name="table_out_cell",
        )
        await client.create_cell(
            "import altair as alt_out\n"
            "import pandas as pd_out\n"
            "chart_out = alt_out.Chart(pd_out.DataFrame({'t': [1, 2, 3], 'v': [4, 5, 6]}), "
            "title='Hull level').mark_line().encode(x='t:Q', y=alt_out.Y('v', title='Level'))\n"
            "chart_out",
            name="chart_out_cell",
        )
        cells = {c.name: c for c in await client.cells()}
        table = await client.execute("pl_out.DataFrame({'k': list(range(40))})")
    table_text = cells["table_out_cell"].output or ""
    assert table_text.startswith("[table: 3 rows x 2 columns")
    assert "depth (number)" in table_text and '{"depth": null, "zone": "b"}' in table_text
    chart_text = cells["chart_out_cell"].output or ""
    assert chart_text == (
        "[chart: title 'Hull level'; mark line; x: t (quantitative), "
        "y: v (quantitative, title 'Level'); 3 data rows]"
    )
    assert table.output_text.startswith("[table: 40 rows x 1 columns. columns: k (integer)")
    assert len(table.output_text) < 300


async def test_a_flood_of_output_costs_a_bounded_amount_of_memory(
    live_session: LiveSession,
) -> None:
    import tracemalloc

    code = "for _ in range(40):\n    print('y' * 999_999)\nprint('the end')"
    async with live_session.client(max_output_chars=200_000) as client:
        tracemalloc.start()
        try:
            result = await client.execute(code)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert result.success
    assert "the end\n" in result.stdout[-2000:] and len(result.stdout) == 200_000
    # marimo may add its own notes to a flood; everything it sent is kept or counted.
    assert len(result.stdout) + result.stdout_dropped_chars >= 40 * 1_000_000
    assert peak < 20 * 2**20  # 40 MB printed; everything kept, it was over 75 MiB
