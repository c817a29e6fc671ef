"""Pure parts of the wire protocol: SSE framing, session lists, registry entries, models."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from marimo_engine.live.protocol import (
    ColumnInfo,
    DataFrameDescription,
    GraphNode,
    NotebookGraph,
    ServerInfo,
    SSEEvent,
    iter_sse_events,
    parse_sessions,
)


@dataclass(frozen=True)
class SSECase:
    id: str
    lines: list[str]
    expected: list[tuple[str, str]]


SSE_CASES = [
    SSECase("named", ["event: stdout", 'data: {"data": "hi"}', ""], [("stdout", '{"data": "hi"}')]),
    SSECase("unnamed", ["data: x", ""], [("message", "x")]),
    SSECase("multi-line data", ["event: e", "data: a", "data: b", ""], [("e", "a\nb")]),
    SSECase("comment ignored", [": keep-alive", "", "event: e", "data: 1", ""], [("e", "1")]),
    SSECase("no space after colon", ["event:e", "data:1", ""], [("e", "1")]),
    SSECase("last block without blank line", ["event: done", "data: {}"], [("done", "{}")]),
    SSECase(
        "several",
        ["event: stdout", "data: 1", "", "event: done", "data: 2", ""],
        [("stdout", "1"), ("done", "2")],
    ),
    SSECase("empty block", ["event: lonely", "", ""], []),
    SSECase("unknown field", ["id: 7", "retry: 10", "data: z", ""], [("message", "z")]),
]


@pytest.mark.parametrize("case", SSE_CASES, ids=[c.id for c in SSE_CASES])
def test_sse_events(case: SSECase) -> None:
    events = list(iter_sse_events(case.lines))
    assert events == [SSEEvent(event=e, data=d) for e, d in case.expected]


def test_parse_sessions() -> None:
    body = {
        "s_abc": {"session_id": "sess-1", "filename": "/n/a.py", "path": "/n/a.py"},
        "s_new": {"session_id": "sess-2", "filename": None, "path": None},
    }
    sessions = parse_sessions(body)
    assert [(s.session_id, s.stable_id, s.path) for s in sessions] == [
        ("s_abc", "sess-1", "/n/a.py"),
        ("s_new", "sess-2", None),
    ]
    assert parse_sessions({}) == []
    with pytest.raises(ValueError, match="expected a JSON object of sessions, got list"):
        parse_sessions([])
    with pytest.raises(ValueError, match="session 's': expected a JSON object"):
        parse_sessions({"s": 3})


@pytest.mark.parametrize(
    ("host", "base_url", "url"),
    [
        ("127.0.0.1", "", "http://127.0.0.1:2718"),
        ("0.0.0.0", "", "http://127.0.0.1:2718"),
        ("::1", "", "http://[::1]:2718"),
        ("::", "", "http://[::1]:2718"),
        ("localhost", "/nb/", "http://localhost:2718/nb"),
    ],
)
def test_server_url(host: str, base_url: str, url: str) -> None:
    info = ServerInfo(server_id="x", pid=1, host=host, port=2718, base_url=base_url)
    assert info.url == url


def test_registry_entry_ignores_unknown_fields() -> None:
    entry = {
        "server_id": "127.0.0.1:2718", "pid": 5, "host": "127.0.0.1", "port": 2718,
        "base_url": "", "started_at": "2026-01-01T00:00:00+00:00", "version": "0.25.2",
        "new_field": True,
    }  # fmt: skip
    assert ServerInfo.model_validate(entry).version == "0.25.2"


def test_dataframe_description_text() -> None:
    description = DataFrameDescription(
        name="df",
        library="polars",
        shape=(100, 3),
        columns=[ColumnInfo(name="a", dtype="Int64"), ColumnInfo(name="b", dtype="String")],
        columns_truncated=True,
        sample=[{"a": "1", "b": "x"}],
    )
    assert description.to_text() == (
        "df: polars DataFrame, 100 rows x 3 columns\n"
        "columns: a (Int64), b (String), ...\n"
        "first 1 rows:\n"
        '{"a": "1", "b": "x"}'
    )


def test_graph_node_lookup() -> None:
    graph = NotebookGraph(cells=[GraphNode(cell_id="Hbol", name="load"), GraphNode(cell_id="MJUe")])
    assert graph.node("load").cell_id == "Hbol"
    assert graph.node("MJUe").name == ""
    with pytest.raises(
        KeyError, match=r"No cell 'nope' in the graph\. Known cells: 'Hbol', 'MJUe'\."
    ):
        graph.node("nope")


@pytest.mark.parametrize(
    ("version", "tested"),
    [("0.25.2", True), ("0.25.9", True), ("0.25.10.dev1", True), ("0.25.1", False),
     ("0.26.0", False), ("1.0", False), ("0.25", False), ("", False)],
)  # fmt: skip
def test_tested_marimo_versions(version: str, tested: bool) -> None:
    from marimo_engine.live.client import is_tested_marimo

    assert is_tested_marimo(version) is tested


def test_execute_result_output_text() -> None:
    from marimo_engine.live.protocol import ExecuteResult

    html = ExecuteResult(success=True, output="<pre class='text-xs'>42 &amp; more</pre>",
                         output_mimetype="text/html")  # fmt: skip
    assert html.output_text == "42 & more"
    plain = ExecuteResult(success=True, output="<not html>", output_mimetype="text/plain")
    assert plain.output_text == "<not html>"
