"""What the CLI reads: plan files and `--tools` modules.

Every failure here is bad input: it raises `UsageError` with one line that
says what was wrong and what to do, which the CLI prints with exit code 2.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from marimo_engine.errors import UsageError

if TYPE_CHECKING:
    from marimo_engine.tools.registry import ToolRegistry, ToolSpec

__all__ = ["EXAMPLE_PREFIX", "LoadedPlan", "LoadedTools", "load_tools", "read_plan"]

EXAMPLE_PREFIX = "example:"
"""A plan argument `example:NAME` names a plan shipped in `marimo_engine.examples`."""


@dataclass(frozen=True)
class LoadedPlan:
    """A plan read from the command line, not yet validated.

    Attributes:
        data: The parsed JSON (usually a dict; validation reports other shapes).
        source: Where it came from, for messages: a path, `"<stdin>"` or
            `"example:NAME"`.
    """

    data: Any
    source: str

    def plans(self) -> Any:
        """Where its sub-plan steps find their plans: files next to the plan's file
        (the current directory for stdin and examples), and the example plans."""
        from marimo_engine.plans.subplans import PlanLibrary

        path = Path(self.source).expanduser()
        is_file = self.source != "<stdin>" and not self.source.startswith(EXAMPLE_PREFIX)
        return PlanLibrary(base_dir=path.resolve().parent if is_file else None)


@dataclass
class LoadedTools:
    """The registry for a command, and where its tools came from.

    Attributes:
        registry: The example and data tools, then the `--tools` modules' tools
            (a `--tools` tool replaces a built-in one of the same name).
        search_paths: Directories put on `sys.path` to import the `--tools`
            modules (a `.py` file's folder, or the current directory); a
            subprocess that imports the tools (an HTML export) needs them too.
    """

    registry: ToolRegistry
    search_paths: list[str] = field(default_factory=list)


def read_plan(argument: str, *, stdin: Any = None) -> LoadedPlan:
    """Read and parse the plan that a `PLAN` argument names.

    Args:
        argument: A path to a JSON file, `"-"` for standard input, or
            `"example:NAME"` for a plan shipped with the package.
        stdin: The stream `"-"` reads; `None` means `sys.stdin`.

    Returns:
        The parsed JSON and its source.

    Raises:
        UsageError: The file is missing, a folder, unreadable, not UTF-8, or
            not JSON (the message has the line and column); an unknown example.
        PlanValidationError: The JSON is nested too deeply to read (an
            `invalid_plan` problem, as validation reports it).
    """
    if argument.startswith(EXAMPLE_PREFIX):
        from marimo_engine.examples import load_example

        return LoadedPlan(load_example(argument.removeprefix(EXAMPLE_PREFIX)), argument)
    if argument == "-":
        text = (stdin or sys.stdin).read()
        return LoadedPlan(_parse_json(text, "<stdin>"), "<stdin>")
    path = Path(argument).expanduser()
    if not path.exists():
        hint = ""
        if not argument.endswith(".json") and "/" not in argument and os.sep not in argument:
            hint = f", or 'example:{argument}' for a plan shipped with marimo-engine"
        raise UsageError(
            f"Plan file {argument!r} does not exist; give the path to a plan JSON file{hint}."
        )
    if path.is_dir():
        raise UsageError(f"Plan file {argument!r} is a directory; give the path to a .json file.")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"Cannot read plan file {argument!r}: {exc.strerror or exc}.") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"Plan file {argument!r} is not UTF-8 text (byte {exc.start}); save it as UTF-8 JSON."
        ) from exc
    return LoadedPlan(_parse_json(text, argument), argument)


def _parse_json(text: str, source: str) -> Any:
    if not text.strip():
        raise UsageError(f"Plan file {source!r} is empty; it must hold a JSON object with 'steps'.")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"Plan file {source!r} is not valid JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}; a plan is a JSON object with 'steps'."
        ) from exc
    except RecursionError:  # past the plan language's nesting limit: a validation problem
        from marimo_engine.errors import PlanValidationError
        from marimo_engine.plans.schema import too_deep_to_read_problem

        raise PlanValidationError([too_deep_to_read_problem()]) from None


def default_registry() -> ToolRegistry:
    """Return the tools every command has: the example tools and the data tools.

    Returns:
        A new registry with `marimo_engine.tools.examples.example_registry()`
        and `marimo_engine.tools.data.data_registry()`.
    """
    from marimo_engine.tools.data import data_registry
    from marimo_engine.tools.examples import example_registry

    return example_registry().merge(data_registry())


def load_tools(modules: Sequence[str], *, include_defaults: bool = True) -> LoadedTools:
    """Build the registry of a command from the built-in tools and `--tools` modules.

    A module's tools are, in order of preference: every module-level
    `ToolRegistry` (functions registered with `@registry.register`); else the
    registries returned by module-level functions named `registry` or ending
    in `_registry` that take no argument (such as
    `marimo_engine.tools.data.data_registry`) defined in the module; else the module's own public
    functions (defined in it, name not starting with `_`), each under its name.

    Args:
        modules: Module paths (`"mypkg.tools"`, importable from the current
            directory) or paths to `.py` files (`"./my_tools.py"`), whose
            folder is put on `sys.path` so the file imports by its name, as
            the compiled notebook will import it.
        include_defaults: Whether to start from the example and data tools.

    Returns:
        The registry and the directories added to `sys.path`.

    Raises:
        UsageError: A module that cannot be found or imported, a file that
            is shadowed by another module of the same name, a module with no
            tools, or two modules defining one tool name differently.
    """
    from marimo_engine.tools.registry import ToolRegistry

    specs: dict[str, ToolSpec] = {}
    if include_defaults:
        specs.update({spec.name: spec for spec in default_registry().specs()})
    owners: dict[str, str] = {}
    search_paths: list[str] = []
    for name in modules:
        module, path = _import_tools_module(name)
        if path is not None and path not in search_paths:
            search_paths.append(path)
        for spec in _module_specs(module, name):
            owner = owners.get(spec.name)
            if owner is not None and specs[spec.name].function is not spec.function:
                raise UsageError(
                    f"Tool {spec.name!r} is defined by both {owner!r} and {name!r}; "
                    "rename one of them or pass only one module."
                )
            owners[spec.name] = name
            specs[spec.name] = spec
    return LoadedTools(ToolRegistry.from_mapping(specs), search_paths)


def _is_file_argument(name: str) -> bool:
    return name.endswith(".py") or "/" in name or os.sep in name


def _import_tools_module(name: str) -> tuple[ModuleType, str | None]:
    if _is_file_argument(name):
        return _import_file(name)
    cwd = os.getcwd()
    added = None
    if cwd not in sys.path:
        # A console script's sys.path lacks the current directory, which
        # `python -m` would have: put it there, so local packages import.
        sys.path.insert(0, cwd)
        added = cwd
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.split(".")[0] != exc.name.split(".")[0]:
            raise UsageError(
                f"Tools module {name!r} needs module {exc.name!r}, which is not installed; "
                f"install it (pip install {exc.name.split('.')[0]})."
            ) from exc
        raise UsageError(
            f"Cannot import tools module {name!r}: no module named {exc.name or name!r}. "
            "Give a module path importable from the current directory (such as "
            "'mypkg.tools') or the path to a .py file."
        ) from exc
    except Exception as exc:
        raise UsageError(
            f"Importing tools module {name!r} failed: {type(exc).__name__}: {exc}."
        ) from exc
    return module, added


def _import_file(name: str) -> tuple[ModuleType, str]:
    path = Path(name).expanduser().resolve()
    if not path.is_file():
        raise UsageError(
            f"Tools file {name!r} does not exist; give the path to a .py file or a module path."
        )
    if path.suffix != ".py":
        raise UsageError(f"Tools file {name!r} is not a .py file.")
    module_name = path.stem
    if not module_name.isidentifier():
        raise UsageError(
            f"Tools file {name!r} cannot be imported by name: {module_name!r} is not a "
            "Python identifier; rename the file (letters, digits, underscores)."
        )
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise UsageError(
            f"Importing tools file {name!r} failed: {type(exc).__name__}: {exc}."
        ) from exc
    loaded_from = getattr(module, "__file__", None)
    if loaded_from is None or Path(loaded_from).resolve() != path:
        raise UsageError(
            f"Tools file {name!r} is shadowed by the module {module_name!r} at "
            f"{loaded_from or 'a built-in module'}; rename the file."
        )
    return module, folder


def _module_specs(module: ModuleType, name: str) -> list[ToolSpec]:
    from marimo_engine.tools.registry import ToolRegistry, build_tool_spec

    members = list(vars(module).items())
    registries = [value for _, value in members if isinstance(value, ToolRegistry)]
    if not registries:
        for attr, value in members:
            if _is_registry_factory(attr, value) and value.__module__ == module.__name__:
                produced = value()
                if isinstance(produced, ToolRegistry):
                    registries.append(produced)
    if registries:
        return [spec for registry in registries for spec in registry.specs()]
    functions: list[Callable[..., Any]] = [
        value
        for attr, value in members
        if not attr.startswith("_")
        and inspect.isfunction(value)
        and value.__module__ == module.__name__
    ]
    if not functions:
        raise UsageError(
            f"Tools module {name!r} has no tools: define a ToolRegistry and register "
            "functions with @registry.register, or define public functions in it."
        )
    try:
        return [build_tool_spec(function) for function in functions]
    except UsageError as exc:
        raise UsageError(f"Tools module {name!r}: {exc}") from exc


def _is_registry_factory(attr: str, value: object) -> bool:
    if attr.startswith("_") or not (attr == "registry" or attr.endswith("_registry")):
        return False
    if not inspect.isfunction(value):
        return False
    parameters = inspect.signature(value).parameters.values()
    return all(p.default is not inspect.Parameter.empty for p in parameters)
