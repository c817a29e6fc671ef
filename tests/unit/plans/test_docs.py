"""docs/plan-language.md is the reference of the plan language and stands alone."""

from __future__ import annotations

import re
from pathlib import Path

import marimo_engine
from marimo_engine.plans.problems import ProblemCode

REPO = Path(__file__).resolve().parents[3]
REFERENCE = REPO / "docs" / "plan-language.md"
TEXT = REFERENCE.read_text(encoding="utf-8")
HEADINGS = {m.group(1).strip() for m in re.finditer(r"^#+ (.+)$", TEXT, flags=re.M)}


def _documents() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_no_document_cites_a_file_outside_the_repository() -> None:
    for path in _documents():
        assert "PLAN_SPEC" not in path.read_text(encoding="utf-8"), path


def test_every_section_the_code_cites_exists() -> None:
    cited: set[str] = set()
    pattern = re.compile(r"plan language spec(?:'s)?[^\n]{0,40}?\(\"([^\"]+)\"")
    for path in (REPO / "src").rglob("*.py"):
        cited |= set(pattern.findall(path.read_text(encoding="utf-8")))
    assert cited, "the pattern found no citation: it no longer matches the code's style"
    assert cited <= HEADINGS, sorted(cited - HEADINGS)


def test_the_python_api_section_lists_the_root_names() -> None:
    section = TEXT.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```python", 1)[1].split("```", 1)[0]
    code = re.sub(r"#.*", "", block)  # the comments say what each name is
    imported = code.split("from marimo_engine import (", 1)[1].split(")", 1)[0]
    names = re.findall(r"[A-Za-z_]+", imported)
    assert sorted(names) == sorted(marimo_engine.__all__)


def test_every_problem_code_is_documented_in_validation() -> None:
    section = TEXT.split("\n## Validation\n", 1)[1].split("\n## ", 1)[0]
    for code in ProblemCode:
        assert f"| `{code.value}` |" in section, code
