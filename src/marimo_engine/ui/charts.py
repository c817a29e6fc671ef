"""The run's pictures: the plan's DAG as mermaid text and the timeline as an Altair chart.

Both colour each step by its state with one palette (`view.STATE_COLOURS`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from marimo_engine.ui.view import STATE_COLOURS, STATES, RunView, StepView

__all__ = ["mermaid_dag", "timeline_chart"]


def _mermaid_text(text: str) -> str:
    """Text safe inside a quoted mermaid label (entity codes, as mermaid documents)."""
    out = []
    for ch in text:
        if ch.isalnum() or ch in " _-.:,()/":
            out.append(ch)
        else:
            out.append(f"#{ord(ch)};")
    return "".join(out)


def mermaid_dag(steps: Sequence[StepView]) -> str:
    """The plan's DAG as a mermaid flowchart, each step coloured by its state.

    Args:
        steps: A run's steps (`RunView.steps`) or a plan's (`step_views(plan)`).

    Returns:
        Mermaid source (`flowchart LR`): one node per step labelled with its
        id, tool and state, whose CSS class is the state (`STATES`, filled
        with `STATE_COLOURS`), and an edge from each dependency.
    """
    lines = ["flowchart LR"]
    for state in STATES:
        colour = STATE_COLOURS[state]
        lines.append(f"  classDef {state} fill:{colour},stroke:#334155,color:#0f172a")
    index = {s.step_id: i for i, s in enumerate(steps)}
    for i, step in enumerate(steps):
        star = " ★" if step.key_finding else ""
        label = (
            f"{_mermaid_text(step.step_id)}{_mermaid_text(star)}<br/>"
            f"{_mermaid_text(step.tool)}<br/><i>{step.state}</i>"
        )
        lines.append(f'  n{i}["{label}"]:::{step.state}')
    for i, step in enumerate(steps):
        for dep in step.depends_on:
            if dep in index:
                lines.append(f"  n{index[dep]} --> n{i}")
    return "\n".join(lines)


def _timeline_rows(view: RunView, now: float) -> list[dict[str, Any]]:
    rows = []
    for order, step in enumerate(view.steps):
        if step.started_at is None:
            continue
        if step.duration_s is not None:
            end = step.started_at + step.duration_s
        elif step.state == "running":
            end = now
        else:
            end = step.started_at
        retried = step.attempt > 1 or step.starts > 1
        notes = []
        if step.attempt > 1:
            notes.append(f"{step.attempt} tries")
        if step.starts > 1:
            notes.append(f"started {step.starts}×")
        rows.append(
            {
                "order": order,
                "step": step.step_id,
                "state": step.state,
                "start": step.started_at * 1000.0,
                "end": max(end, step.started_at) * 1000.0,
                "duration_s": None if step.duration_s is None else round(step.duration_s, 3),
                "tries": step.attempt,
                "retried": retried,
                "note": ", ".join(notes),
            }
        )
    if rows:  # a bar of zero width does not show: give each at least 1 % of the span
        first = min(r["start"] for r in rows)
        last = max(r["end"] for r in rows)
        least = max((last - first) * 0.01, 5.0)
        for row in rows:
            row["end"] = max(row["end"], row["start"] + least)
    return rows


def timeline_chart(view: RunView, now: float | None = None) -> Any:
    """A Gantt chart of the steps' start and end times, retries marked.

    Args:
        view: The run.
        now: Unix seconds (default: now): where a running step's bar ends.

    Returns:
        An `altair` chart (one bar per started step, coloured by state,
        outlined in red and labelled `N tries` when it was retried), or
        `None` when no step has started. Steps whose output came from
        another run (`reused_from`) never started here and are not on it.
        It renders as SVG (`usermeta.embedOptions`), so its text is in the page.
    """
    import altair as alt

    now = time.time() if now is None else now
    rows = _timeline_rows(view, now)
    if not rows:
        return None
    data = alt.Data(values=rows)
    order = [r["step"] for r in sorted(rows, key=lambda r: r["order"])]
    y = alt.Y("step:N", sort=order, title=None)
    bars = (
        alt.Chart(data)
        .mark_bar(cornerRadius=3, strokeWidth=2)
        .encode(
            x=alt.X("start:T", title="time", axis=alt.Axis(format="%H:%M:%S")),
            x2="end:T",
            y=y,
            color=alt.Color(
                "state:N",
                scale=alt.Scale(domain=list(STATES), range=[STATE_COLOURS[s] for s in STATES]),
                legend=alt.Legend(title="state", orient="bottom"),
            ),
            stroke=alt.condition("datum.retried", alt.value("#dc2626"), alt.value("#334155")),
            tooltip=[
                alt.Tooltip("step:N"),
                alt.Tooltip("state:N"),
                alt.Tooltip("duration_s:Q", title="seconds"),
                alt.Tooltip("tries:Q"),
                alt.Tooltip("note:N"),
            ],
        )
    )
    labels = (
        alt.Chart(data)
        .transform_filter("datum.retried")
        .mark_text(align="left", dx=4, color="#dc2626")
        .encode(x="end:T", y=y, text="note:N")
    )
    chart = alt.layer(bars, labels).properties(
        width="container", height=max(60, 28 * len(rows)), title="Timeline"
    )
    chart.usermeta = {"embedOptions": {"renderer": "svg", "actions": False}}
    return chart
