"""Files written atomically, and the one-line form of problems."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from marimo_engine.cli.output import format_problem, print_problems, write_text_atomic
from marimo_engine.plans.problems import Problem, ProblemCode


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.py"
    target.write_text("old", encoding="utf-8")
    assert write_text_atomic(target, "new ✓") == target
    assert target.read_text(encoding="utf-8") == "new ✓"
    assert [p.name for p in tmp_path.iterdir()] == ["out.py"]
    mode = stat.S_IMODE(os.stat(target).st_mode)
    assert mode & stat.S_IRGRP  # readable like any other file, not mkstemp's 0600


def test_write_into_a_missing_folder_fails_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_text_atomic(tmp_path / "no" / "out.py", "x")
    assert list(tmp_path.iterdir()) == []


def test_problem_lines() -> None:
    step = Problem(step_id="s3", field="run_if", code=ProblemCode.UNKNOWN_REFERENCE, message="m.")
    plan = Problem(code=ProblemCode.INVALID_PLAN, message="No steps.")
    assert format_problem(step) == "step 's3', field 'run_if': m. [unknown_reference]"
    assert format_problem(plan) == "plan: No steps. [invalid_plan]"
    stream = io.StringIO()
    print_problems([step, plan], source="p.json", file=stream)
    assert stream.getvalue().splitlines() == [
        "error: p.json has 2 problems; nothing was run:",
        "  step 's3', field 'run_if': m. [unknown_reference]",
        "  plan: No steps. [invalid_plan]",
    ]
