"""What the code agent's model is told: instructions, the first prompt and turn reports."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from marimo_engine.agents.code.checks import CheckProblem
    from marimo_engine.agents.code.policy import PolicyFinding
    from marimo_engine.live.protocol import CellInfo

PATCH_TOOL = "apply_patch"
FINISH_TOOL = "finish"

INSTRUCTIONS = """\
You write and fix cells of a marimo notebook to reach a goal. Every turn, call
exactly one tool:

- `apply_patch`: cell operations applied together, all or none: `create`
  (name, code, optional `after` cell), `edit` (target cell id or name, the whole
  new code), `delete` (target). The cells you create or edit run at once, and
  marimo re-runs every cell that depends on them; you then see their status,
  output and errors.
- `finish`: when the goal is met: a short `answer` written from numbers your
  cells computed (never invented) and the `cells` that hold it.

marimo's rules:
- A cell is plain Python at the top level (no `def main()` wrapper). Its last
  expression is displayed as the cell's output.
- Each global name may be defined by ONE cell only; other cells read it.
  Names starting with `_` are private to their cell (use them for loop
  variables and temporaries).
- Cells must not read each other in a cycle. Cells run in dependency order,
  not in file order. Never mutate a global defined by another cell: make a
  new name.
- Markdown: `mo.md(f"...")` with `import marimo as mo`.
- Charts: altair (`import altair as alt`), shown as a cell's last expression.
- Files: read data from the paths given; write only inside the working
  directory. No network, no package installs, no subprocesses unless the goal
  says so: a policy checks the code, and a person may be asked.

When a cell fails you get a report: the error's class, the last traceback
frames, facts (real columns, names in scope, dtypes) and a strategy. Fix the
cause; the same error twice on the same cell stops the run.
"""


def cells_text(cells: list[CellInfo], *, max_chars: int = 6000) -> str:
    """The notebook's cells for a prompt: id, name, status, code and output, cut to fit."""
    if not cells:
        return "(the notebook has no cells)"
    share = max(200, max_chars // max(1, len(cells)))
    parts = []
    for cell in cells:
        head = f"## cell {cell.id}" + (f" name={cell.name}" if cell.name else "")
        head += f" status={cell.status or 'empty'}"
        body = cell.code if len(cell.code) <= share else cell.code[:share] + "\n# ... (cut)"
        output = (cell.output or "").strip()
        text = f"{head}\n```python\n{body}\n```"
        if output:
            text += f"\noutput: {output[: share // 2]}"
        if cell.errors:
            text += "\nerrors: " + "; ".join(cell.errors)[:300]
        parts.append(text)
    return "\n".join(parts)


def first_prompt(
    goal: str,
    *,
    cells: list[CellInfo],
    workdir: str,
    data: list[dict[str, Any]],
    memory: str,
    brief: str | None,
    max_chars: int,
) -> str:
    """The first user message of a run."""
    parts = [f"Goal: {goal}", f"Working directory: {workdir}"]
    if brief:
        parts.append(brief)
    if data:
        parts.append(
            "Data (files: read them from their paths; variables: already in the notebook):"
        )
        parts.extend(json.dumps(item, ensure_ascii=False)[: max_chars // 4] for item in data)
    if memory:
        parts.append("Earlier work on this notebook:\n" + memory)
    parts.append("The notebook now:\n" + cells_text(cells, max_chars=max_chars // 2))
    return "\n\n".join(parts)


def problems_text(problems: list[CheckProblem]) -> str:
    """Why a patch was rejected by the checks, for the model."""
    lines = ["The patch was not applied; nothing changed. Fix these and send the patch again:"]
    lines.extend(f"- {p.describe()}" for p in problems)
    return "\n".join(lines)


def refusal_text(findings: list[PolicyFinding], note: str, *, by_person: bool) -> str:
    """Why a patch was refused by the policy or a person, for the model."""
    who = "A person refused" if by_person else "The policy refuses"
    lines = [f"{who} the patch; nothing changed. Do it another way, or finish if you cannot:"]
    lines.extend(f"- {f.describe()}" for f in findings)
    if note:
        lines.append(f"Note: {note}")
    return "\n".join(lines)
