"""Reading plan files and `--tools` modules: what loads, and the messages for what does not."""

from __future__ import annotations

import io
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from marimo_engine.cli.loading import load_tools, read_plan
from marimo_engine.errors import UsageError


@pytest.fixture
def clean_import_state() -> Iterator[None]:
    """Undo what loading tools files does to `sys.path` and `sys.modules`."""
    path, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        del sys.modules[name]


def _write_module(folder: Path, source: str, stem: str | None = None) -> Path:
    stem = stem or f"tools_{uuid.uuid4().hex[:8]}"
    path = folder / f"{stem}.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


# --- plans ------------------------------------------------------------------------


def test_read_plan_file(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"steps": [{"id": "a", "tool": "scan_hull"}]}', encoding="utf-8")
    loaded = read_plan(str(path))
    assert loaded.data == {"steps": [{"id": "a", "tool": "scan_hull"}]}
    assert loaded.source == str(path)


def test_read_plan_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(b'\xef\xbb\xbf{"steps": []}')
    assert read_plan(str(path)).data == {"steps": []}


def test_read_plan_from_stdin() -> None:
    loaded = read_plan("-", stdin=io.StringIO('{"steps": []}'))
    assert (loaded.data, loaded.source) == ({"steps": []}, "<stdin>")


def test_read_shipped_example() -> None:
    loaded = read_plan("example:seattle-weather")
    assert loaded.data["id"] == "seattle-weather"
    assert len(loaded.data["steps"]) >= 6


def test_unknown_example_suggests_names() -> None:
    with pytest.raises(UsageError, match=r"no example plan 'seattle'.*'seattle-weather'"):
        read_plan("example:seattle")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b'{"steps": [', r"is not valid JSON: Expecting value at line 1, column 12"),
        (b"hello", r"is not valid JSON: Expecting value at line 1, column 1"),
        (b"   \n", r"is empty; it must hold a JSON object with 'steps'"),
        (b"\xff\xfe{", r"is not UTF-8 text \(byte 0\)"),
    ],
    ids=["truncated", "text", "empty", "not-utf8"],
)
def test_unreadable_plans_say_what_is_wrong(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=match):
        read_plan(str(path))


def test_missing_plan_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"Plan file '.*nope\.json' does not exist"):
        read_plan(str(tmp_path / "nope.json"))


def test_missing_plan_without_suffix_hints_at_examples() -> None:
    with pytest.raises(UsageError, match="or 'example:hull-check-7' for a plan shipped"):
        read_plan("hull-check-7")


def test_plan_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a directory"):
        read_plan(str(tmp_path))


# --- tools ------------------------------------------------------------------------


def test_default_tools_are_the_example_and_data_tools() -> None:
    names = set(load_tools([]).registry)
    assert {"scan_hull", "check_oxygen", "analyze_atmosphere"} <= names
    assert {"load_table", "query_tables", "describe_table", "chart_table"} <= names


@pytest.mark.usefixtures("clean_import_state")
def test_file_with_a_registry(tmp_path: Path) -> None:
    path = _write_module(
        tmp_path,
        """
        from marimo_engine.tools.registry import ToolRegistry

        registry = ToolRegistry()

        @registry.register(name="double")
        def double_it(x: int) -> int:
            \"\"\"Double a number.\"\"\"
            return 2 * x

        def helper():
            return None
        """,
    )
    loaded = load_tools([str(path)])
    spec = loaded.registry.get("double")
    assert spec.function(x=4) == 8
    assert "helper" not in loaded.registry
    # Importable by its name from its folder, as the compiled notebook imports it.
    assert spec.import_path == (path.stem, "double_it")
    assert loaded.search_paths == [str(tmp_path)]


@pytest.mark.usefixtures("clean_import_state")
def test_file_of_plain_functions(tmp_path: Path) -> None:
    path = _write_module(
        tmp_path,
        """
        import json

        def shout(text: str) -> str:
            return text.upper()

        def _private():
            return None
        """,
    )
    registry = load_tools([str(path)]).registry
    assert registry.get("shout").function(text="hi") == "HI"
    assert "_private" not in registry
    assert "dumps" not in registry  # imported, not defined there


def test_module_path_with_a_registry_factory() -> None:
    loaded = load_tools(["marimo_engine.tools.data"], include_defaults=False)
    assert list(loaded.registry) == [
        "load_table",
        "query_tables",
        "query_row",
        "describe_table",
        "aggregate_table",
        "chart_table",
    ]


@pytest.mark.usefixtures("clean_import_state")
def test_a_tools_module_replaces_a_built_in_tool_of_the_same_name(tmp_path: Path) -> None:
    path = _write_module(tmp_path, "def scan_hull() -> str:\n    return 'mine'\n")
    assert load_tools([str(path)]).registry.get("scan_hull").function() == "mine"


@pytest.mark.usefixtures("clean_import_state")
def test_two_modules_with_the_same_tool_name(tmp_path: Path) -> None:
    first = _write_module(tmp_path, "def clash():\n    return 1\n")
    second = _write_module(tmp_path, "def clash():\n    return 2\n")
    with pytest.raises(UsageError, match=r"Tool 'clash' is defined by both .* rename one"):
        load_tools([str(first), str(second)])


def test_unknown_module() -> None:
    with pytest.raises(
        UsageError,
        match=r"Cannot import tools module 'no_such_tools_mod': no module named "
        r"'no_such_tools_mod'\. Give a module path importable",
    ):
        load_tools(["no_such_tools_mod"])


@pytest.mark.usefixtures("clean_import_state")
def test_module_whose_dependency_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_module(tmp_path, "import not_installed_dep_xyz\n", stem="needs_dep_tools")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="needs module 'not_installed_dep_xyz', which is not"):
        load_tools(["needs_dep_tools"])


@pytest.mark.usefixtures("clean_import_state")
def test_module_that_raises_on_import(tmp_path: Path) -> None:
    path = _write_module(tmp_path, "raise RuntimeError('no config')\n")
    with pytest.raises(
        UsageError, match=r"Importing tools file .* failed: RuntimeError: no config"
    ):
        load_tools([str(path)])


def test_missing_tools_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"Tools file '.*gone\.py' does not exist"):
        load_tools([str(tmp_path / "gone.py")])


@pytest.mark.usefixtures("clean_import_state")
def test_tools_file_shadowed_by_another_module(tmp_path: Path) -> None:
    path = _write_module(tmp_path, "def f():\n    return 1\n", stem="json")
    with pytest.raises(UsageError, match="is shadowed by the module 'json'"):
        load_tools([str(path)])


@pytest.mark.usefixtures("clean_import_state")
def test_module_without_tools(tmp_path: Path) -> None:
    path = _write_module(tmp_path, "X = 1\n")
    with pytest.raises(UsageError, match="has no tools: define a ToolRegistry"):
        load_tools([str(path)])


def test_file_name_that_is_not_an_identifier(tmp_path: Path) -> None:
    path = tmp_path / "my-tools.py"
    path.write_text("def f():\n    return 1\n", encoding="utf-8")
    with pytest.raises(UsageError, match="'my-tools' is not a Python identifier"):
        load_tools([str(path)])


@pytest.mark.usefixtures("clean_import_state")
def test_an_imported_registry_factory_does_not_hide_the_files_functions(tmp_path: Path) -> None:
    path = _write_module(
        tmp_path,
        """
        from marimo_engine.tools.data import data_registry

        def mine() -> int:
            return 1
        """,
    )
    registry = load_tools([str(path)], include_defaults=False).registry
    assert list(registry) == ["mine"]
