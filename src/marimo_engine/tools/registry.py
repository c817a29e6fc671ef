"""`ToolRegistry`: the tools a plan may call, with the JSON schema a model sees.

A tool is a plain function or a coroutine function called with keyword
arguments (a step's `args`). Registering it reads its signature, type hints
and Google-style docstring once and keeps a `ToolSpec`:

- `description`: the docstring's summary (its first paragraph);
- `parameters_schema`: the JSON schema of the keyword arguments, built with
  pydantic from the type hints and defaults, with each argument's
  description taken from the docstring's `Args:` section;
- `import_path`: `(module, qualname)` when the function can be imported back
  by that path, which is what a notebook written to a file needs.

`ToolRegistry.check_args` checks a step's literal `args` against that
signature before anything runs (the plan language spec, "Validation",
code `invalid_args`).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import re
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from marimo_engine.errors import EngineError, UnknownToolError, UsageError
from marimo_engine.plans.references import find_references, resolve_value
from marimo_engine.plans.schema import TOOL_NAME_PATTERN
from marimo_engine.tools._signature import (
    import_path_of,
    is_async_callable,
    needs_conversion,
    parameters_schema,
    parse_docstring,
    returns_schema,
    type_hints,
    type_name,
)

__all__ = ["ArgProblem", "ToolRegistry", "ToolSpec", "as_registry"]

_TOOL_NAME = re.compile(TOOL_NAME_PATTERN)


@dataclasses.dataclass(frozen=True)
class ArgProblem:
    """One problem with a step's literal `args`, found by `ToolRegistry.check_args`.

    Attributes:
        argument: The argument's name, or `None` when the problem is not about
            one argument.
        message: One line: what is wrong and what to change.
    """

    argument: str | None
    message: str


@dataclasses.dataclass(frozen=True)
class _Parameter:
    name: str
    annotation: Any
    required: bool
    type_name: str


@dataclasses.dataclass(frozen=True, eq=False)
class ToolSpec:
    """A registered tool: the callable and what was derived from it.

    Frozen; compared and hashed by identity (its schemas are dicts).

    Attributes:
        name: The name plans use in `steps[].tool`.
        function: The callable itself, called with keyword arguments.
        is_async: Whether calling `function` returns an awaitable (a coroutine
            function); plain functions run outside the event loop.
        description: The docstring's summary, or the `description=` given at
            registration; `""` when there is neither.
        parameters_schema: JSON schema (an object schema) of the keyword
            arguments, as a model sees it: `properties` with types, defaults
            and docstring descriptions, `required`, and
            `additionalProperties: false` unless the function takes `**kwargs`.
        returns_schema: JSON schema of the return annotation, or `None` when
            there is none or it has no JSON form. Tells a planner which fields
            `$step.path` references can name.
        requires_approval: Whether every step calling it needs a person's
            approval before it runs (docs/runs.md, "Approvals").
    """

    name: str
    function: Callable[..., Any]
    is_async: bool
    description: str
    parameters_schema: dict[str, Any]
    returns_schema: dict[str, Any] | None = None
    requires_approval: bool = False
    accepts_kwargs: bool = dataclasses.field(default=False, repr=False)
    _parameters: tuple[_Parameter, ...] = dataclasses.field(default=(), repr=False, compare=False)
    _args_model: type[BaseModel] | None = dataclasses.field(default=None, repr=False, compare=False)
    _converters: Mapping[str, Any] = dataclasses.field(
        default_factory=dict, repr=False, compare=False
    )

    @property
    def import_path(self) -> tuple[str, str] | None:
        """`(module, qualname)` when `importlib.import_module(module)` gives `function` back.

        `None` for lambdas, functions defined inside functions, functions of
        `__main__`, and callables that are not reachable by that path. Worked
        out on each access, so that a tool registered by a decorator while its
        module was still being imported is importable once the import is done.
        """
        return import_path_of(self.function)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """The keyword arguments the tool takes, in signature order (not `**kwargs`)."""
        return tuple(p.name for p in self._parameters)

    def schema(self) -> dict[str, Any]:
        """Return `{"name", "description", "parameters"}`: the tool as a model sees it.

        With `"returns"`, the JSON schema of its output, when it is declared: the
        model then writes `$step.path` references that exist.
        """
        schema = {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters_schema,
        }
        if self.returns_schema is not None:
            schema["returns"] = self.returns_schema
        return schema

    def check_args(self, args: Mapping[str, Any]) -> list[ArgProblem]:
        """Check a step's `args` against the signature, as `ToolRegistry.check_args` does.

        Args:
            args: The step's `args` as written in the plan (JSON values, which
                may hold references).

        Returns:
            The problems found, in argument order; empty when the args fit.
        """
        problems: list[ArgProblem] = []
        names = self.parameter_names
        for key in args:
            if key in names or self.accepts_kwargs:
                continue
            problems.append(ArgProblem(key, self._unknown_message(key)))
        for param in self._parameters:
            if param.required and param.name not in args:
                problems.append(
                    ArgProblem(
                        param.name,
                        f"Tool {self.name!r} requires argument {param.name!r} "
                        f"({param.type_name}); add it to the step's args, as a literal "
                        "or a reference such as '$step_id.field'.",
                    )
                )
        problems.extend(self._type_problems(args))
        return problems

    def convert_literals(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Return literal args converted to their parameters' types, where JSON is not enough.

        A JSON object for a dataclass or pydantic-model parameter becomes that
        object, a string for an `Enum` or a `date` becomes the member or the
        date, a list for a `tuple` becomes a tuple: what validation promised
        (it checks literals the same way, in pydantic's strict JSON mode).

        Args:
            args: A step's `args` as written in the plan.

        Returns:
            Parameter name to converted value, only for literal (reference-free)
            args whose parameter type needs converting; merge it over the
            resolved args. A literal that does not convert is left out (the
            plan's validation reports it).
        """
        converted: dict[str, Any] = {}
        for name, adapter in self._converters.items():
            if name not in args or find_references(args[name]):
                continue
            try:
                text = json.dumps(resolve_value(args[name], {}), allow_nan=True)
                converted[name] = adapter.validate_json(text, strict=True)
            except (EngineError, TypeError, ValueError):
                continue
        return converted

    def _unknown_message(self, key: str) -> str:
        names = self.parameter_names
        close = difflib.get_close_matches(key, names, n=3, cutoff=0.6)
        if close:
            hint = "Did you mean " + " or ".join(repr(c) for c in close) + "?"
        elif names:
            hint = "It takes: " + ", ".join(repr(n) for n in names) + "."
        else:
            hint = "It takes no arguments; remove 'args'."
        return f"Tool {self.name!r} has no argument {key!r}. {hint}"

    def _type_problems(self, args: Mapping[str, Any]) -> list[ArgProblem]:
        if self._args_model is None:
            return []
        by_name = {p.name: p for p in self._parameters}
        literals: dict[str, Any] = {}
        for key, value in args.items():
            if key not in by_name or find_references(value):
                continue  # unknown (reported above) or known only at run time
            try:
                literals[key] = resolve_value(value, {})  # `$$` -> `$`, as at run time
            except EngineError:  # a malformed `$`: validation reports it on its own
                literals[key] = value
        if not literals:
            return []
        try:
            text = json.dumps(literals, allow_nan=True)
        except (TypeError, ValueError):
            text = None
        try:
            if text is not None:
                # Strict JSON mode: "3" is not a number, 1 is not a bool, but a
                # list is a tuple and an object is a dataclass, as in JSON.
                self._args_model.model_validate_json(text, strict=True)
            else:
                self._args_model.model_validate(literals)
        except ValidationError as exc:
            return self._describe_errors(exc, by_name, literals)
        return []

    def _describe_errors(
        self,
        exc: ValidationError,
        by_name: Mapping[str, _Parameter],
        literals: Mapping[str, Any],
    ) -> list[ArgProblem]:
        problems: list[ArgProblem] = []
        seen: set[str] = set()
        for error in exc.errors(include_url=False):
            loc = error.get("loc", ())
            if not loc or loc[0] not in by_name:
                continue
            if error.get("type") == "missing" and len(loc) == 1:
                continue  # a missing argument is reported by check_args itself
            name = str(loc[0])
            if name in seen:
                continue  # one line per argument is enough to fix it
            seen.add(name)
            where = "".join(f"[{part!r}]" for part in loc[1:])
            detail = error.get("msg", "invalid value")
            problems.append(
                ArgProblem(
                    name,
                    f"Argument {name!r} of tool {self.name!r} expects "
                    f"{by_name[name].type_name}, but got {_short(literals[name])}"
                    f"{' (at ' + name + where + ')' if where else ''}: {detail}. "
                    "Change the literal or pass a reference.",
                )
            )
        return problems


class ToolRegistry:
    """The tools a plan may call, by name.

    Register with the decorator (`@registry.register` or
    `@registry.register(name="...", description="...")`), with
    `registry.register(func, name=...)`, or build one from a dict with
    `ToolRegistry.from_mapping`. `name in registry`, `len(registry)` and
    iteration (over names, in registration order) work as for a mapping.
    """

    def __init__(self) -> None:
        self._specs: dict[str, ToolSpec] = {}

    @classmethod
    def from_mapping(cls, tools: Mapping[str, Callable[..., Any] | ToolSpec]) -> ToolRegistry:
        """Return a registry of `tools`, each registered under its key.

        Args:
            tools: Tool name to callable (or to a `ToolSpec`, kept as is but
                renamed to its key).

        Raises:
            UsageError: A name or callable cannot be registered (see `register`).
        """
        registry = cls()
        for name, tool in tools.items():
            if isinstance(tool, ToolSpec):
                registry._add(dataclasses.replace(tool, name=_check_name(name)), replace=False)
            else:
                registry.register(tool, name=name)
        return registry

    def register(
        self,
        function: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        replace: bool = False,
        requires_approval: bool = False,
        returns_schema: Mapping[str, Any] | None = None,
    ) -> Any:
        """Register a tool; usable as a bare decorator, a decorator factory or a call.

        Args:
            function: The plain or coroutine function. When omitted, returns a
                decorator that registers the function it decorates.
            name: The name plans use; defaults to the function's `__name__`.
                1–64 characters of `A-Z a-z 0-9 _ -`.
            description: What the tool does, for the model; defaults to the
                docstring's summary.
            replace: Whether a different callable may take over a name that is
                already registered.
            requires_approval: Whether each step calling the tool stops for a
                person's approval before it runs.
            returns_schema: A JSON schema of the tool's output, for a tool
                whose return annotation says too little (`dict`, none):
                validation checks `$step.path` references against it and a
                model sees it. Replaces the one derived from the annotation.

        Returns:
            The function itself (so the decorator leaves it unchanged), or the
            decorator when `function` is omitted.

        Raises:
            UsageError: The name is invalid or taken, the callable has no name
                and none was given, a parameter cannot be passed by keyword, or
                `returns_schema` is not a valid JSON schema.
        """
        if returns_schema is not None:
            from marimo_engine.plans.contracts import schema_problem

            problem = (
                schema_problem(returns_schema)
                if isinstance(returns_schema, Mapping)
                else "it is not a JSON object"
            )
            if problem is not None:
                raise UsageError(f"returns_schema is not a valid JSON schema: {problem}.")
        if function is None:

            def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
                self.register(
                    func,
                    name=name,
                    description=description,
                    replace=replace,
                    requires_approval=requires_approval,
                    returns_schema=returns_schema,
                )
                return func

            return decorator
        spec = build_tool_spec(function, name=name, description=description)
        if requires_approval:
            spec = dataclasses.replace(spec, requires_approval=True)
        if returns_schema is not None:
            spec = dataclasses.replace(spec, returns_schema=dict(returns_schema))
        self._add(spec, replace=replace)
        return function

    def _add(self, spec: ToolSpec, *, replace: bool) -> None:
        old = self._specs.get(spec.name)
        if old is not None and old.function is not spec.function and not replace:
            raise UsageError(
                f"Tool name {spec.name!r} is already registered to {_callable_name(old.function)}; "
                "pick another name= or pass replace=True."
            )
        self._specs[spec.name] = spec

    def get(self, name: str) -> ToolSpec:
        """Return the spec of tool `name`.

        Raises:
            UnknownToolError: No such tool; the error lists close names
                (`difflib`), or every registered name when none is close.
        """
        spec = self._specs.get(name)
        if spec is None:
            raise UnknownToolError(name, self.suggest(name), known=list(self._specs))
        return spec

    def suggest(self, name: str, n: int = 3) -> list[str]:
        """Return up to `n` registered names close to `name`, best first."""
        return difflib.get_close_matches(str(name), list(self._specs), n=n, cutoff=0.6)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __len__(self) -> int:
        return len(self._specs)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._specs))

    def __repr__(self) -> str:
        return f"ToolRegistry({', '.join(self._specs)})"

    def specs(self) -> list[ToolSpec]:
        """Return every `ToolSpec`, in registration order."""
        return list(self._specs.values())

    def schemas(self) -> list[dict[str, Any]]:
        """Return what a model sees: `[{"name", "description", "parameters"[, "returns"]}, ...]`."""
        return [spec.schema() for spec in self._specs.values()]

    def returns_schema(self, tool_name: str) -> dict[str, Any] | None:
        """Return the JSON schema of tool `tool_name`'s output, or `None` when undeclared.

        Validation checks `$step.path` references against it (typed references).

        Raises:
            UnknownToolError: `tool_name` is not registered.
        """
        return self.get(tool_name).returns_schema

    def parameters_schema(self, tool_name: str) -> dict[str, Any]:
        """Return the JSON schema (an object schema) of tool `tool_name`'s keyword arguments.

        Raises:
            UnknownToolError: `tool_name` is not registered.
        """
        return self.get(tool_name).parameters_schema

    def check_args(self, tool_name: str, args: Mapping[str, Any]) -> list[str]:
        """Check a step's literal `args` against tool `tool_name`'s signature.

        Reports an argument the tool does not take (with close names), a
        required argument that is missing, and a literal of the wrong type
        (validated with pydantic in strict JSON mode: `"3"` is not a number).
        A value that holds a reference (`"$s2.level"`, or one inside a list)
        is not type-checked: its type is known only at run time.

        Args:
            tool_name: A registered tool's name.
            args: The step's `args`, name to JSON value.

        Returns:
            One message per problem, each saying what to change; empty when
            the args fit.

        Raises:
            UnknownToolError: `tool_name` is not registered.
        """
        return [p.message for p in self.get(tool_name).check_args(args)]

    def arg_problems(self, tool_name: str, args: Mapping[str, Any]) -> list[ArgProblem]:
        """Like `check_args`, with the argument each problem is about.

        Raises:
            UnknownToolError: `tool_name` is not registered.
        """
        return self.get(tool_name).check_args(args)

    def merge(self, other: ToolRegistry | Mapping[str, Callable[..., Any]]) -> ToolRegistry:
        """Return a new registry with this one's tools and then `other`'s.

        Neither registry is changed.

        Raises:
            UsageError: Both have a tool of the same name with different callables.
        """
        merged = ToolRegistry()
        for spec in self._specs.values():
            merged._add(spec, replace=False)
        for spec in as_registry(other).specs():
            merged._add(spec, replace=False)
        return merged


def as_registry(tools: ToolRegistry | Mapping[str, Callable[..., Any]] | None) -> ToolRegistry:
    """Return `tools` as a `ToolRegistry`.

    Args:
        tools: A registry (returned as is), a mapping of names to callables
            (registered with `ToolRegistry.from_mapping`), or `None` (an empty
            registry).

    Raises:
        UsageError: `tools` is of another type, or a mapping entry cannot be
            registered.
    """
    if isinstance(tools, ToolRegistry):
        return tools
    if tools is None:
        return ToolRegistry()
    if isinstance(tools, Mapping):
        return ToolRegistry.from_mapping(tools)
    raise UsageError(
        f"tools must be a ToolRegistry or a mapping of names to callables, "
        f"not {type(tools).__name__}; pass {{'name': function, ...}}."
    )


def build_tool_spec(
    function: Callable[..., Any], *, name: str | None = None, description: str | None = None
) -> ToolSpec:
    """Derive a `ToolSpec` from a callable's signature, type hints and docstring.

    Args:
        function: A plain function, coroutine function, bound method or
            callable object.
        name: The tool name; defaults to `function.__name__`.
        description: Overrides the docstring summary.

    Raises:
        UsageError: Not callable, no usable name, an invalid name, or a
            positional-only parameter without a default (tools are called
            with keyword arguments).
    """
    if not callable(function):
        raise UsageError(f"A tool must be callable, not {type(function).__name__}.")
    if name is None:
        name = getattr(function, "__name__", None)
        if not isinstance(name, str) or name == "<lambda>":
            raise UsageError(f"{function!r} has no usable __name__; register it with name='...'.")
    name = _check_name(name)
    try:
        derived = _SPEC_CACHE.get(function)
    except TypeError:  # not weak-referenceable or not hashable: derive it afresh
        return _derive_tool_spec(function, name, description)
    key = (name, description)
    if derived is not None and key in derived:
        return dataclasses.replace(derived[key], function=function)
    spec = _derive_tool_spec(function, name, description)
    # Cache the spec without the function: a value that referred to its weak
    # key would keep the key (and all a closure holds) alive for ever.
    _SPEC_CACHE.setdefault(function, {})[key] = dataclasses.replace(spec, function=_forgotten)
    return spec


def _forgotten(*args: Any, **kwargs: Any) -> Any:  # pragma: no cover - never called
    raise AssertionError("a cached ToolSpec is always given its function back before use")


_SPEC_CACHE: weakref.WeakKeyDictionary[Callable[..., Any], dict[tuple[str, str | None], ToolSpec]]
_SPEC_CACHE = weakref.WeakKeyDictionary()
"""Derived specs by function, so that a run given a plain mapping of tools does not
rebuild pydantic models each time; entries go when their function is collected."""


def _derive_tool_spec(function: Callable[..., Any], name: str, description: str | None) -> ToolSpec:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"Cannot read the signature of tool {name!r}: {exc}.") from exc
    hints = type_hints(function)
    doc = inspect.getdoc(function) or ""
    summary, arg_docs = parse_docstring(doc)
    params: list[_Parameter] = []
    fields: dict[str, Any] = {}
    accepts_kwargs = False
    for index, param in enumerate(signature.parameters.values()):
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            accepts_kwargs = True
            continue
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            if param.default is inspect.Parameter.empty:
                raise UsageError(
                    f"Tool {name!r}: parameter {param.name!r} is positional-only, but tools "
                    "are called with keyword arguments; remove the '/' from its signature."
                )
            continue
        annotation = hints.get(param.name, Any)
        required = param.default is inspect.Parameter.empty
        params.append(_Parameter(param.name, annotation, required, type_name(annotation)))
        field_kwargs: dict[str, Any] = {"alias": param.name}
        if param.name in arg_docs:
            field_kwargs["description"] = arg_docs[param.name]
        default = ... if required else param.default
        fields[f"p{index}"] = (annotation, Field(default, **field_kwargs))
    model_name = re.sub(r"\W", "_", name)
    try:
        args_model = create_model(
            model_name,
            __config__=ConfigDict(arbitrary_types_allowed=True, extra="ignore"),
            **fields,
        )
        schema = parameters_schema(args_model, accepts_kwargs)
    except Exception as exc:  # an annotation pydantic cannot use (say, an unresolved name)
        raise UsageError(
            f"Tool {name!r}: cannot build an argument schema from its type hints ({exc}); "
            "annotate its parameters with JSON-like types or leave them unannotated."
        ) from exc
    converters = {
        p.name: TypeAdapter(p.annotation) for p in params if needs_conversion(p.annotation)
    }
    return ToolSpec(
        name=name,
        function=function,
        is_async=is_async_callable(function),
        description=description if description is not None else summary,
        parameters_schema=schema,
        returns_schema=returns_schema(hints.get("return"), model_name),
        accepts_kwargs=accepts_kwargs,
        _parameters=tuple(params),
        _args_model=args_model,
        _converters=converters,
    )


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
        raise UsageError(
            f"Tool name {name!r} is invalid; use 1-64 characters of A-Z a-z 0-9 _ - "
            "(models and plans refer to tools by this name)."
        )
    return name


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _callable_name(function: Callable[..., Any]) -> str:
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", None) or repr(function)
    return f"{module}.{qualname}" if module else qualname
