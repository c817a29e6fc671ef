"""Turn a marimo output (mimetype + data) into LLM-sized plain text.

This module runs in two places: here, for `ExecuteResult.output_text`, and
inside the kernel, where `templates` sends its source ahead of the `cells`
template (so the text is made before outputs are cut to size). It therefore
uses the standard library only, and every name starts with `_me_` so that it
cannot shadow a notebook global in the scratchpad.

- HTML and Markdown: the text, tags stripped; a `<marimo-table>` becomes its
  shape, columns and first rows; a `<marimo-vega>` becomes its chart summary.
- Vega-Lite JSON (altair): title, mark, encodings and the number of data rows.
- JSON: compact JSON. Other text: as is. Binary (images...): `<mimetype output>`.
"""

import html.parser as _me_html_parser
import json as _me_json_mod

_ME_TABLE_ROWS = 5


def _me_clip_text(text, limit):
    text = str(text)
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def _me_loads(text):
    try:
        return _me_json_mod.loads(text)
    except (TypeError, ValueError):
        return None


def _me_table_text(attrs):
    rows = _me_loads(attrs.get("data-total-rows", ""))
    cols = _me_loads(attrs.get("data-total-columns", ""))
    types = _me_loads(attrs.get("data-field-types", "")) or []
    data = _me_loads(attrs.get("data-data", ""))
    if isinstance(data, str):  # marimo double-encodes the rows; large tables give a URL
        data = _me_loads(data) if data.lstrip().startswith("[") else None
    shape = f"{rows if rows is not None else '?'} rows x {cols if cols is not None else '?'}"
    parts = [f"table: {shape} columns"]
    names = []
    for entry in types:
        if isinstance(entry, list) and len(entry) == 2:
            kind = entry[1]
            kind = kind[0] if isinstance(kind, list) and kind else kind
            names.append(f"{entry[0]} ({kind})")
    if names:
        parts.append("columns: " + ", ".join(names))
    if isinstance(data, list) and data:
        shown = data[:_ME_TABLE_ROWS]
        parts.append(
            f"first {len(shown)} rows: "
            + "; ".join(_me_json_mod.dumps(row, default=str) for row in shown)
        )
    return "[" + ". ".join(parts) + "]"


def _me_encoding_text(encoding):
    parts = []
    for channel, spec in (encoding or {}).items():
        if not isinstance(spec, dict):
            continue
        what = spec.get("field") or spec.get("aggregate") or spec.get("value")
        extras = [str(spec[key]) for key in ("type", "aggregate", "timeUnit") if spec.get(key)]
        if spec.get("title"):
            extras.append(f"title {spec['title']!r}")
        extra = f" ({', '.join(dict.fromkeys(extras))})" if extras else ""
        parts.append(f"{channel}: {what}{extra}")
    return ", ".join(parts)


def _me_chart_text(spec):
    if not isinstance(spec, dict):
        return "[chart]"
    parts = []
    title = spec.get("title")
    if isinstance(title, dict):
        title = title.get("text")
    if title:
        parts.append(f"title {title!r}")
    views = [spec]
    for key in ("layer", "hconcat", "vconcat", "concat"):
        if isinstance(spec.get(key), list):
            views = [v for v in spec[key] if isinstance(v, dict)][:4]
            parts.append(f"{key} of {len(spec[key])} views")
    for view in views:
        mark = view.get("mark")
        mark = mark.get("type") if isinstance(mark, dict) else mark
        view_parts = [f"mark {mark}"] if mark else []
        encoding = _me_encoding_text(view.get("encoding"))
        if encoding:
            view_parts.append(encoding)
        if view_parts:
            parts.append("; ".join(view_parts))
    datasets = spec.get("datasets")
    if isinstance(datasets, dict):
        count = sum(len(rows) for rows in datasets.values() if isinstance(rows, list))
        parts.append(f"{count} data rows")
    elif isinstance(spec.get("data"), dict) and isinstance(spec["data"].get("values"), list):
        parts.append(f"{len(spec['data']['values'])} data rows")
    return "[chart: " + "; ".join(parts) + "]"


class _MeHtmlText(_me_html_parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts = []

    def handle_starttag(self, tag, attrs):
        found = {key: value or "" for key, value in attrs}
        if tag == "marimo-table":
            self.parts.append(_me_table_text(found))
        elif tag == "marimo-vega":
            self.parts.append(_me_chart_text(_me_loads(found.get("data-spec", ""))))

    def handle_data(self, data):
        self.parts.append(data)


def _me_render_text(mimetype, data, limit):
    """Return `data` of `mimetype` as plain text of at most `limit` characters ("" for none)."""
    mimetype = str(mimetype or "")
    text = "" if data is None else str(data)
    if "vegalite" in mimetype or "vega+json" in mimetype:
        text = _me_chart_text(_me_loads(text))
    elif mimetype in ("text/html", "text/markdown") or (
        not mimetype and text.lstrip().startswith("<")
    ):
        parser = _MeHtmlText()
        parser.feed(text)
        parser.close()
        text = " ".join(" ".join(parser.parts).split())
    elif "json" in mimetype:
        value = _me_loads(text)
        if value is not None:
            text = _me_json_mod.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    elif mimetype and not mimetype.startswith("text/"):
        text = "<" + mimetype + " output>"
    return _me_clip_text(text, limit) if text else ""
