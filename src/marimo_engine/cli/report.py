"""The HTML report of a run, made with marimo's own `marimo export html`.

The report is a small marimo notebook generated from the run that just
happened: a header with the verdict, the duration and the key findings, then
for every step (in plan order) a markdown cell saying what it did and how it
ended and a cell whose value is the step's output, so that marimo renders it
the way it renders any cell output: a dataframe as a table, an Altair chart
as a chart, a mapping as a JSON tree. The outputs are handed to the notebook
pickled, so that the report shows this run's values rather than a re-run's.
`marimo export html` (in a subprocess, with the `--tools` folders on
`PYTHONPATH` so that tool-defined output types unpickle) runs the notebook
and writes the HTML under a temporary name; marimo's frontend, which that
page would load from a public CDN, is then put inside it
(`cli/_offline_html.py`), so that the report renders with no network, and
the file is renamed into place.
An output that cannot be pickled is shown in its JSON form
(`marimo_engine._json`), and so is one that fails to unpickle.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from marimo_engine._json import to_jsonable
from marimo_engine.cli.run_state import StepState, describe_value
from marimo_engine.errors import EngineError

if TYPE_CHECKING:
    from marimo_engine.cli.run_state import ProgressModel

__all__ = [
    "ReportError",
    "plain_integer_columns",
    "present_output",
    "render_report_notebook",
    "write_html_report",
]

EXPORT_TIMEOUT_S = 600.0
"""Seconds `marimo export html` may take before the report is abandoned."""


class ReportError(EngineError):
    """The HTML report could not be made; the run itself is unaffected."""


def _markdown_escape(text: str) -> str:
    """Text shown as itself in marimo's markdown: no emphasis, code, math or HTML."""
    for char in "\\`*_$[]":
        text = text.replace(char, "\\" + char)
    return text.replace("<", "&lt;")


def _header_markdown(model: ProgressModel, notebook: str | None) -> str:
    verdict = model.verdict or "UNFINISHED"
    icon = {"SUCCESS": "✅", "FAILURE": "❌", "INTERVENTION_NEEDED": "✋"}.get(verdict, "")
    counts = ", ".join(f"{n} {state.value}" for state, n in model.counts().items())
    lines = [
        f"# {_markdown_escape(model.title)}",
        "",
        f"**{icon} {verdict}** in {model.elapsed_s():.2f} s · plan `{model.plan_id}` · "
        f"{len(model.steps)} steps: {counts}",
        "",
    ]
    # What a person must read first: why the run stopped, and the findings' values.
    if model.intervention is not None:
        step_id, expression = model.intervention
        seen = ", ".join(
            f"`{ref}` = {_markdown_escape(describe_value(value, 80))}"
            for ref, value in model.intervention_values.items()
        )
        lines += [
            f"**✋ Stopped for a person** at step `{step_id}`: `intervention_if` "
            f"`{expression}` was true" + (f", with {seen}." if seen else "."),
            "",
        ]
    if model.key_findings:
        lines += ["**Key findings**", ""]
        for step_id, output in model.key_findings.items():
            lines.append(f"- `{step_id}`: {_markdown_escape(describe_value(output))}")
        lines.append("")
    if model.plan_error:
        lines += [f"**Error:** {_markdown_escape(model.plan_error)}", ""]
    if notebook:
        lines += [
            "The marimo notebook of this run is at the end of the report; "
            "`marimo-engine export` writes it to a file.",
        ]
    return "\n".join(lines)


def _step_markdown(model: ProgressModel, step_id: str) -> str:
    line = model.steps[step_id]
    star = " ★ key finding" if line.is_key_finding else ""
    took = f" in {line.duration_s:.2f} s" if line.duration_s is not None else ""
    parts = [
        f"## `{step_id}`{star}",
        "",
        ("Markdown" if line.is_markdown else f"Tool `{line.tool}`")
        + f" · **{line.state.value}**{took}",
    ]
    if line.description:
        parts += ["", _markdown_escape(line.description)]
    if line.note:
        parts += ["", f"> {_markdown_escape(line.note)}"]
    return "\n".join(parts)


def _cell(code: str, refs: Sequence[str] = (), *, hide_code: bool = True) -> str:
    body = "\n".join(f"    {row}" if row else "" for row in code.splitlines())
    options = "(hide_code=True)" if hide_code else ""
    return f"@app.cell{options}\ndef _({', '.join(refs)}):\n{body}\n    return\n"


def render_report_notebook(
    model: ProgressModel,
    payload_path: str,
    *,
    notebook: str | None = None,
) -> str:
    """Return the source of the report notebook of a run.

    Args:
        model: The run's state after `FINISH` (from `ProgressModel.apply`).
        payload_path: Absolute path of the pickle with the outputs that
            `write_html_report` writes: `{step_id: {"pickle": bytes | None,
            "json": <JSON form>}}`.
        notebook: The marimo notebook source of the run, shown at the end.

    Returns:
        A marimo notebook (`.py` source) with one markdown cell and one output
        cell per step that has an output, in plan order.
    """
    cells = [
        "@app.cell(hide_code=True)\n"
        "def _():\n"
        "    import pickle\n"
        "    from pathlib import Path\n"
        "\n"
        "    import marimo as mo\n"
        "    from marimo_engine.cli.report import present_output\n"
        "\n"
        f"    _payload = pickle.loads(Path({payload_path!r}).read_bytes())\n"
        "\n"
        "    def show(step_id):\n"
        "        entry = _payload.get(step_id)\n"
        "        if entry is None:\n"
        "            return mo.md('*(no output)*')\n"
        "        if entry['pickle'] is not None:\n"
        "            try:\n"
        "                return present_output(pickle.loads(entry['pickle']))\n"
        "            except Exception:\n"
        "                pass\n"
        "        return entry['json']\n"
        "    return mo, show\n",
        _cell(f"mo.md({_header_markdown(model, notebook)!r})", ["mo"]),
    ]
    for step_id, line in model.steps.items():
        cells.append(_cell(f"mo.md({_step_markdown(model, step_id)!r})", ["mo"]))
        if line.state in (StepState.DONE, StepState.INTERVENTION):
            shown = f"show({step_id!r})"
            if line.is_markdown:  # its output is markdown text a person reads
                shown = f"mo.md(str({shown}))"
            cells.append(_cell(shown, ["mo", "show"] if line.is_markdown else ["show"]))
    if notebook:
        code = f"```python\n{notebook}\n```"
        cells.append(
            _cell(
                f"mo.accordion({{'The marimo notebook of the run': mo.md({code!r})}})",
                ["mo"],
            )
        )
    title = json.dumps(model.title)
    return (
        "import marimo\n\n"
        f"app = marimo.App(width='medium', app_title={title})\n\n\n"
        + "\n\n".join(cells)
        + '\n\nif __name__ == "__main__":\n    app.run()\n'
    )


_PLAIN_WORDS = frozenset({"year", "years", "yr", "id", "ids", "uid", "uuid"})
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def plain_integer_columns(frame: object) -> list[str]:
    """Return the integer columns of a table that are years or ids, in column order.

    A column qualifies when its type is an integer type and a word of its name
    (split at `_`, `-`, spaces and camelCase) is `year`, `yr`, `id`, `uid` or
    `uuid`: `year`, `wettest_year`, `sensor_id`, `userId`. These are labels,
    not quantities, and read wrong with thousands separators (`2,012`).

    Args:
        frame: A pandas or polars DataFrame (anything narwhals reads).

    Returns:
        The column names; `[]` for anything that is not such a table.
    """
    import narwhals as nw

    try:
        schema = nw.from_native(frame, eager_only=True).schema
    except TypeError:
        return []
    return [
        str(name)
        for name, dtype in schema.items()
        if dtype.is_integer()
        and any(word.lower() in _PLAIN_WORDS for word in _WORD.findall(str(name)))
    ]


def present_output(value: object) -> object:
    """Return what the report shows for a step output.

    A table whose columns include years or ids (`plain_integer_columns`)
    becomes marimo's table widget with those columns written as plain digits;
    anything else is returned unchanged, for marimo's own formatter.
    """
    columns = plain_integer_columns(value)
    if not columns:
        return value
    import marimo as mo

    return mo.ui.table(
        value,
        selection=None,
        pagination=None,
        format_mapping={column: str for column in columns},
    )


def _payload(outputs: dict[str, Any]) -> bytes:
    entries: dict[str, dict[str, Any]] = {}
    for step_id, output in outputs.items():
        try:
            pickled: bytes | None = pickle.dumps(output)
        except Exception:  # any unpicklable object: fall back to its JSON form
            pickled = None
        entries[step_id] = {"pickle": pickled, "json": to_jsonable(output)}
    return pickle.dumps(entries)


def write_html_report(
    model: ProgressModel,
    outputs: dict[str, Any],
    destination: str | os.PathLike[str],
    *,
    notebook: str | None = None,
    search_paths: Sequence[str] = (),
    timeout_s: float = EXPORT_TIMEOUT_S,
) -> Path:
    """Write the HTML report of a finished run with `marimo export html`.

    Args:
        model: The run's state after `FINISH`.
        outputs: Step id to output, for completed steps (`FINISH.outputs`).
        destination: The `.html` file to write; its folder must exist.
        notebook: The marimo notebook source of the run, shown collapsed.
        search_paths: Folders the tools were imported from (`--tools`
            files), put on the export's `PYTHONPATH`.
        timeout_s: Seconds to wait for the export.

    Returns:
        The destination path: one self-contained HTML file (marimo's
        frontend inside, about 10 MB) that renders with no network.

    Raises:
        ReportError: The folder does not exist, the export failed or
            timed out (the message carries marimo's last error line), or
            marimo's frontend files do not match the exported page.
    """
    target = Path(destination).expanduser().resolve()
    if not target.parent.is_dir():
        raise ReportError(
            f"Cannot write the HTML report to {str(destination)!r}: folder "
            f"{str(target.parent)!r} does not exist."
        )
    with tempfile.TemporaryDirectory(prefix="marimo-engine-report-") as folder:
        payload_path = Path(folder, "outputs.pickle")
        payload_path.write_bytes(_payload(outputs))
        notebook_path = Path(folder, "report.py")
        notebook_path.write_text(
            render_report_notebook(model, str(payload_path), notebook=notebook),
            encoding="utf-8",
        )
        handle, temporary = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".tmp.html"
        )
        os.close(handle)
        env = dict(os.environ)
        paths = [*search_paths, os.getcwd(), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        env.setdefault("MARIMO_SKIP_UPDATE_CHECK", "1")
        command = [
            sys.executable,
            "-m",
            "marimo",
            "-q",
            "export",
            "html",
            str(notebook_path),
            "-o",
            temporary,
            "--no-include-code",
            "-f",
        ]
        try:
            completed = subprocess.run(
                command,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
                stdin=subprocess.DEVNULL,
            )
            if completed.returncode != 0 or os.path.getsize(temporary) == 0:
                lines = (completed.stderr or completed.stdout or "").strip().splitlines()
                last = lines[-1] if lines else f"exit code {completed.returncode}"
                raise ReportError(f"marimo export html failed for the report: {last}")
            from marimo_engine.cli._offline_html import inline_frontend_assets

            page = Path(temporary).read_text(encoding="utf-8")
            Path(temporary).write_text(inline_frontend_assets(page), encoding="utf-8")
            os.chmod(temporary, 0o644)
            os.replace(temporary, target)
        except subprocess.TimeoutExpired as exc:
            raise ReportError(
                f"marimo export html took more than {timeout_s:.0f} s; the report was not written."
            ) from exc
        finally:
            Path(temporary).unlink(missing_ok=True)
    return target
