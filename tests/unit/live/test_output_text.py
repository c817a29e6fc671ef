"""LLM-sized text of marimo outputs: tables, charts, HTML, JSON (`live/_output_text.py`)."""

from __future__ import annotations

import html
import json

from marimo_engine.live._output_text import _me_render_text
from marimo_engine.live.protocol import ExecuteResult


def _table_html(rows: list[dict[str, object]], total: int) -> str:
    data = html.escape(json.dumps(json.dumps(rows)), quote=True)
    types = html.escape(json.dumps([["a", ["integer", "i64"]], ["b", ["string", "str"]]]))
    return (
        "<marimo-ui-element object-id='x'><marimo-table data-initial-value='[]' "
        f"data-data='{data}' data-total-rows='{total}' data-total-columns='2' "
        f"data-field-types='{types}'></marimo-table></marimo-ui-element>"
    )


def test_a_table_reads_as_shape_columns_and_first_rows() -> None:
    rows = [{"a": i, "b": None if i == 1 else f"v{i}"} for i in range(8)]
    text = _me_render_text("text/html", _table_html(rows, 1000), 2000)
    assert text.startswith("[table: 1000 rows x 2 columns. columns: a (integer), b (string). ")
    assert 'first 5 rows: {"a": 0, "b": "v0"}; {"a": 1, "b": null}' in text
    assert '"a": 5' not in text


def test_a_chart_reads_as_title_mark_and_encodings() -> None:
    spec = {
        "title": {"text": "Levels"},
        "layer": [
            {"mark": {"type": "line"}, "encoding": {"x": {"field": "t", "type": "temporal"}}},
            {"mark": "point", "encoding": {"y": {"aggregate": "mean", "field": "v"}}},
        ],
        "data": {"values": [{"t": 1, "v": 2}] * 4},
    }
    text = _me_render_text("application/vnd.vegalite.v6+json", json.dumps(spec), 2000)
    assert text == (
        "[chart: title 'Levels'; layer of 2 views; mark line; x: t (temporal); "
        "mark point; y: v (mean); 4 data rows]"
    )
    embedded = f"<marimo-vega data-spec='{html.escape(json.dumps(spec))}'></marimo-vega>"
    assert _me_render_text("text/html", embedded, 2000) == text


def test_other_outputs() -> None:
    assert _me_render_text("text/html", "<p>a &amp; <b>b</b></p>", 100) == "a & b"
    assert _me_render_text("text/markdown", "<span><h1>Hi</h1></span>", 100) == "Hi"
    assert _me_render_text("application/json", '{"a":[1,2]}', 100) == '{"a": [1, 2]}'
    assert _me_render_text("image/png", "iVBOR...", 100) == "<image/png output>"
    assert _me_render_text("text/plain", "<not html>" + "x" * 50, 20) == "<not html>xxxxxxx..."
    assert _me_render_text("text/plain", "", 20) == ""
    result = ExecuteResult(success=True, output=_table_html([], 3), output_mimetype="text/html")
    assert result.output_text == "[table: 3 rows x 2 columns. columns: a (integer), b (string)]"
