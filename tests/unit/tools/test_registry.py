"""ToolRegistry: registration forms, derived schemas, lookup, and check_args."""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import json
import typing
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

from marimo_engine.errors import UnknownToolError, UsageError
from marimo_engine.tools.registry import ArgProblem, ToolRegistry, ToolSpec, as_registry

# --- module-level tools (importable by module path) ---------------------------


def measure(
    depth_m: float,
    label: str = "probe",
    tags: list[str] | None = None,
    mode: Literal["fast", "slow"] = "fast",
) -> dict[str, float]:
    """Measure the water column at a depth.

    This paragraph is detail for humans and is not part of the summary.

    Args:
        depth_m: Depth in metres, from the surface.
        label (str): Name written on the sample,
            continued on a second line.
        tags: Free-form tags.
        mode: How long to wait for the sensor.

    Returns:
        Readings by name.
    """
    return {"depth_m": depth_m}


async def fetch_reading(sensor: str, *, retries: int = 2) -> float:
    """Read one sensor asynchronously.

    Args:
        sensor: The sensor id.
        retries: Extra attempts on a failed read.
    """
    return 1.0


def loose(x, **extra):  # no annotations at all, and **kwargs
    return x


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Point:
    x: float
    y: float


class Box(BaseModel):
    width: int
    height: int = 1


def shapes(colour: Colour, point: Point, box: Box, pair: tuple[int, int] = (0, 0)) -> Point:
    """Use structured arguments."""
    return point


def with_constraints(count: Annotated[int, Field(ge=1, le=10)] = 1) -> int:
    """A constrained integer.

    Args:
        count: How many, 1 to 10.
    """
    return count


class Sensors:
    @classmethod
    def probe(cls, depth_m: float) -> float:
        """Probe at a depth."""
        return depth_m

    @staticmethod
    def ping() -> str:
        """Ping."""
        return "pong"

    def read(self) -> float:
        """Read (needs an instance)."""
        return 0.0


class CallableTool:
    """Callable object tool."""

    async def __call__(self, q: str) -> str:
        return q


def _registry() -> ToolRegistry:
    return ToolRegistry.from_mapping(
        {
            "measure": measure,
            "fetch_reading": fetch_reading,
            "loose": loose,
            "shapes": shapes,
            "with_constraints": with_constraints,
        }
    )


# --- registration -------------------------------------------------------------


def test_bare_decorator_registers_under_the_function_name_and_returns_it() -> None:
    registry = ToolRegistry()

    @registry.register
    def survey(area: str) -> str:
        """Survey an area."""
        return area

    assert survey("deck") == "deck"
    assert list(registry) == ["survey"]
    spec = registry.get("survey")
    assert spec.function is survey
    assert spec.is_async is False
    assert spec.description == "Survey an area."


def test_decorator_with_name_and_description_overrides_both() -> None:
    registry = ToolRegistry()

    @registry.register(name="o2", description="Oxygen, percent.")
    async def read_o2() -> float:
        """Docstring that is not used."""
        return 20.9

    spec = registry.get("o2")
    assert spec.function is read_o2
    assert spec.is_async is True
    assert spec.description == "Oxygen, percent."
    assert "read_o2" not in registry


def test_call_form_and_from_mapping_and_len_contains_iter() -> None:
    registry = ToolRegistry()
    assert registry.register(measure, name="depth") is measure
    assert len(registry) == 1
    assert "depth" in registry
    assert "measure" not in registry
    mapped = ToolRegistry.from_mapping({"a": measure, "b": fetch_reading})
    assert list(mapped) == ["a", "b"]
    assert [s.name for s in mapped.specs()] == ["a", "b"]
    assert mapped.get("b").is_async is True


def test_registering_the_same_name_twice_needs_replace() -> None:
    registry = ToolRegistry()
    registry.register(measure)
    registry.register(measure)  # the same function again is fine
    with pytest.raises(
        UsageError, match=r"Tool name 'measure' is already registered to .*replace=True"
    ):
        registry.register(loose, name="measure")
    registry.register(loose, name="measure", replace=True)
    assert registry.get("measure").function is loose


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("has space", r"Tool name 'has space' is invalid; use 1-64 characters of A-Z a-z 0-9 _ -"),
        ("", r"Tool name '' is invalid"),
        ("x" * 65, r"Tool name 'x{65}' is invalid"),
    ],
    ids=["space", "empty", "too-long"],
)
def test_invalid_tool_names_are_rejected(name: str, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        ToolRegistry().register(measure, name=name)


def test_lambda_needs_a_name_and_non_callables_are_rejected() -> None:
    registry = ToolRegistry()
    with pytest.raises(UsageError, match=r"has no usable __name__; register it with name='...'"):
        registry.register(lambda x: x)
    registry.register(lambda x: x, name="identity")
    assert registry.get("identity").import_path is None
    with pytest.raises(UsageError, match=r"A tool must be callable, not int"):
        registry.register(3, name="three")  # type: ignore[arg-type]


def test_positional_only_parameter_without_default_is_rejected() -> None:
    def positional(a: int, /) -> int:
        return a

    with pytest.raises(UsageError, match=r"parameter 'a' is positional-only.*remove the '/'"):
        ToolRegistry().register(positional)


def test_callable_objects_partials_and_methods_register() -> None:
    registry = ToolRegistry()
    registry.register(CallableTool(), name="echo")
    registry.register(functools.partial(fetch_reading, retries=0), name="fetch0")
    registry.register(Sensors.probe)
    registry.register(Sensors.ping)
    registry.register(Sensors().read)
    assert registry.get("echo").is_async is True
    assert registry.get("echo").parameters_schema["required"] == ["q"]
    assert registry.get("fetch0").is_async is True
    assert registry.get("fetch0").parameters_schema["properties"]["sensor"]["type"] == "string"
    assert registry.get("probe").parameters_schema["required"] == ["depth_m"]
    assert registry.get("probe").import_path == (__name__, "Sensors.probe")
    assert registry.get("ping").import_path == (__name__, "Sensors.ping")
    assert registry.get("read").import_path is None  # needs an instance


def test_import_path_is_set_only_when_the_module_gives_the_function_back() -> None:
    def local_tool() -> None:
        """A function local to this test."""

    registry = ToolRegistry.from_mapping({"measure": measure, "local": local_tool})
    assert registry.get("measure").import_path == (__name__, "measure")
    assert registry.get("local").import_path is None
    module, qualname = registry.get("measure").import_path or ("", "")
    imported = __import__(module, fromlist=[qualname])
    assert getattr(imported, qualname) is measure


# --- derived schemas ----------------------------------------------------------


def test_schema_of_a_documented_function_has_types_defaults_and_descriptions() -> None:
    schema = _registry().get("measure").schema()
    assert schema == {
        "name": "measure",
        "description": "Measure the water column at a depth.",
        "parameters": {
            "type": "object",
            "properties": {
                "depth_m": {"type": "number", "description": "Depth in metres, from the surface."},
                "label": {
                    "type": "string",
                    "default": "probe",
                    "description": "Name written on the sample, continued on a second line.",
                },
                "tags": {
                    "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
                    "default": None,
                    "description": "Free-form tags.",
                },
                "mode": {
                    "enum": ["fast", "slow"],
                    "type": "string",
                    "default": "fast",
                    "description": "How long to wait for the sensor.",
                },
            },
            "required": ["depth_m"],
            "additionalProperties": False,
        },
        "returns": {"type": "object", "additionalProperties": {"type": "number"}},
    }
    json.dumps(schema)  # what a model sees is plain JSON


def test_schema_of_an_async_function_with_keyword_only_arguments() -> None:
    spec = _registry().get("fetch_reading")
    assert spec.is_async is True
    assert spec.description == "Read one sensor asynchronously."
    assert spec.parameters_schema["properties"] == {
        "sensor": {"type": "string", "description": "The sensor id."},
        "retries": {
            "type": "integer",
            "default": 2,
            "description": "Extra attempts on a failed read.",
        },
    }
    assert spec.parameters_schema["required"] == ["sensor"]


def test_schema_without_annotations_or_docstring_accepts_anything_and_extra_kwargs() -> None:
    spec = _registry().get("loose")
    assert spec.description == ""
    assert spec.parameters_schema == {
        "type": "object",
        "properties": {"x": {}},
        "required": ["x"],
        "additionalProperties": True,
    }
    assert spec.accepts_kwargs is True


def test_schema_of_structured_arguments_uses_defs() -> None:
    schema = _registry().get("shapes").parameters_schema
    assert schema["properties"]["colour"] == {"$ref": "#/$defs/Colour"}
    assert schema["properties"]["point"] == {"$ref": "#/$defs/Point"}
    assert schema["$defs"]["Colour"]["enum"] == ["red", "blue"]
    assert schema["$defs"]["Box"]["required"] == ["width"]
    assert schema["properties"]["pair"]["default"] == [0, 0]
    assert schema["required"] == ["colour", "point", "box"]


def test_schema_keeps_annotated_constraints() -> None:
    prop = _registry().get("with_constraints").parameters_schema["properties"]["count"]
    assert prop == {
        "type": "integer",
        "minimum": 1,
        "maximum": 10,
        "default": 1,
        "description": "How many, 1 to 10.",
    }


def test_returns_schema_describes_the_output_fields() -> None:
    spec = _registry().get("shapes")
    assert spec.returns_schema is not None
    assert spec.returns_schema["properties"]["x"] == {"title": "X", "type": "number"}
    assert _registry().get("loose").returns_schema is None


def test_arbitrary_class_annotations_and_defaults_have_no_json_but_register() -> None:
    class Handle:
        pass

    sentinel = object()

    def odd(handle: Handle, marker: object = sentinel) -> Handle:
        """Take a handle."""
        return handle

    spec = ToolRegistry().register(odd) and ToolRegistry.from_mapping({"odd": odd}).get("odd")
    assert spec.parameters_schema["properties"] == {"handle": {}, "marker": {}}
    assert spec.parameters_schema["required"] == ["handle"]
    assert spec.check_args({"handle": "$s1"}) == []


def test_schemas_lists_every_tool_in_registration_order() -> None:
    schemas = _registry().schemas()
    assert [s["name"] for s in schemas] == [
        "measure",
        "fetch_reading",
        "loose",
        "shapes",
        "with_constraints",
    ]
    # "returns" only where the output's type is declared (`loose` has no annotation).
    assert [set(s) - {"name", "description", "parameters"} for s in schemas] == [
        {"returns"} if s["name"] != "loose" else set() for s in schemas
    ]


# --- lookup -------------------------------------------------------------------


def test_get_unknown_tool_suggests_close_names() -> None:
    with pytest.raises(
        UnknownToolError, match=r"^Tool 'mesure' is not registered\. Did you mean 'measure'\?$"
    ) as info:
        _registry().get("mesure")
    assert info.value.suggestions == ["measure"]
    assert isinstance(info.value, LookupError)


def test_get_unknown_tool_without_close_names_lists_the_registered_ones() -> None:
    registry = ToolRegistry.from_mapping({"measure": measure, "loose": loose})
    with pytest.raises(
        UnknownToolError,
        match=r"^Tool 'zzz' is not registered\. Registered tools: 'loose', 'measure'\.$",
    ):
        registry.get("zzz")
    with pytest.raises(UnknownToolError, match=r"No tools are registered\."):
        ToolRegistry().get("zzz")


# --- merge and as_registry ----------------------------------------------------


def test_merge_returns_a_new_registry_and_refuses_conflicts() -> None:
    left = ToolRegistry.from_mapping({"measure": measure})
    right = ToolRegistry.from_mapping({"loose": loose})
    merged = left.merge(right)
    assert list(merged) == ["measure", "loose"]
    assert list(left) == ["measure"]
    assert list(left.merge({"fetch": fetch_reading})) == ["measure", "fetch"]
    with pytest.raises(UsageError, match=r"Tool name 'measure' is already registered"):
        left.merge({"measure": loose})


def test_as_registry_accepts_registry_mapping_and_none() -> None:
    registry = _registry()
    assert as_registry(registry) is registry
    assert list(as_registry({"m": measure})) == ["m"]
    assert len(as_registry(None)) == 0
    with pytest.raises(UsageError, match=r"tools must be a ToolRegistry or a mapping .* not list"):
        as_registry([measure])  # type: ignore[arg-type]


def test_from_mapping_keeps_tool_specs() -> None:
    spec = _registry().get("measure")
    registry = ToolRegistry.from_mapping({"depth": spec})
    assert isinstance(registry.get("depth"), ToolSpec)
    assert registry.get("depth").function is measure
    assert registry.get("depth").name == "depth"


# --- check_args ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ArgsCase:
    id: str
    tool: str
    args: dict[str, Any]
    expected: list[str]


ARGS_CASES = [
    ArgsCase("all-literals-fit", "measure", {"depth_m": 12.5, "label": "a", "tags": ["x"]}, []),
    ArgsCase("int-for-float", "measure", {"depth_m": 3}, []),
    ArgsCase("reference-is-not-type-checked", "measure", {"depth_m": "$s1.depth"}, []),
    ArgsCase("reference-inside-list", "measure", {"depth_m": 1, "tags": ["$s1.tag", 5]}, []),
    ArgsCase("interpolated-string", "measure", {"depth_m": 1, "label": "at $s1.depth m"}, []),
    ArgsCase("escaped-dollar-is-a-literal", "measure", {"depth_m": 1, "label": "$$5"}, []),
    ArgsCase(
        "unknown-argument-close-name",
        "measure",
        {"depth_m": 1, "lable": "x"},
        ["Tool 'measure' has no argument 'lable'. Did you mean 'label'?"],
    ),
    ArgsCase(
        "unknown-argument-lists-arguments",
        "measure",
        {"depth_m": 1, "colour": "red"},
        ["Tool 'measure' has no argument 'colour'. It takes: 'depth_m', 'label', 'tags', 'mode'."],
    ),
    ArgsCase(
        "missing-required",
        "measure",
        {},
        [
            "Tool 'measure' requires argument 'depth_m' (float); add it to the step's args, "
            "as a literal or a reference such as '$step_id.field'."
        ],
    ),
    ArgsCase(
        "string-for-float",
        "measure",
        {"depth_m": "12"},
        [
            "Argument 'depth_m' of tool 'measure' expects float, but got '12': "
            "Input should be a valid number. Change the literal or pass a reference."
        ],
    ),
    ArgsCase(
        "bool-is-not-a-number",
        "with_constraints",
        {"count": True},
        [
            "Argument 'count' of tool 'with_constraints' expects int, but got True: "
            "Input should be a valid integer. "
            "Change the literal or pass a reference."
        ],
    ),
    ArgsCase(
        "out-of-range",
        "with_constraints",
        {"count": 11},
        [
            "Argument 'count' of tool 'with_constraints' expects int, but got 11: "
            "Input should be less than or equal to 10. Change the literal or pass a reference."
        ],
    ),
    ArgsCase(
        "wrong-item-in-list",
        "measure",
        {"depth_m": 1, "tags": ["a", 2]},
        [
            "Argument 'tags' of tool 'measure' expects list[str] | None, but got ['a', 2] "
            "(at tags[1]): Input should be a valid string. Change the literal or pass a reference."
        ],
    ),
    ArgsCase(
        "literal-choice",
        "measure",
        {"depth_m": 1, "mode": "medium"},
        [
            "Argument 'mode' of tool 'measure' expects Literal['fast', 'slow'], but got "
            "'medium': Input should be 'fast' or 'slow'. Change the literal or pass a reference."
        ],
    ),
    ArgsCase(
        "json-shapes-fit-structured-types",
        "shapes",
        {
            "colour": "red",
            "point": {"x": 1, "y": 2.5},
            "box": {"width": 3},
            "pair": [1, 2],
        },
        [],
    ),
    ArgsCase(
        "bad-enum-value",
        "shapes",
        {"colour": "green", "point": "$p", "box": "$b"},
        [
            "Argument 'colour' of tool 'shapes' expects Colour, but got 'green': "
            "Input should be 'red' or 'blue'. Change the literal or pass a reference."
        ],
    ),
    ArgsCase(
        "several-problems-at-once",
        "shapes",
        {"colour": "red", "point": {"x": "a"}, "extra": 1},
        [
            "Tool 'shapes' has no argument 'extra'. It takes: 'colour', 'point', 'box', 'pair'.",
            "Tool 'shapes' requires argument 'box' (Box); add it to the step's args, "
            "as a literal or a reference such as '$step_id.field'.",
            "Argument 'point' of tool 'shapes' expects Point, but got {'x': 'a'} (at point['x']): "
            "Input should be a valid number. Change the literal or pass a reference.",
        ],
    ),
    ArgsCase("kwargs-accepts-unknown-names", "loose", {"x": 1, "anything": [1, 2]}, []),
    ArgsCase(
        "kwargs-still-needs-required",
        "loose",
        {"anything": 1},
        [
            "Tool 'loose' requires argument 'x' (any value); add it to the step's args, "
            "as a literal or a reference such as '$step_id.field'."
        ],
    ),
]


@pytest.mark.parametrize("case", ARGS_CASES, ids=[c.id for c in ARGS_CASES])
def test_check_args(case: ArgsCase) -> None:
    assert _registry().check_args(case.tool, case.args) == case.expected


def test_arg_problems_name_the_argument() -> None:
    problems = _registry().arg_problems("measure", {"lable": 1})
    assert [p.argument for p in problems] == ["lable", "depth_m"]
    assert all(isinstance(p, ArgProblem) for p in problems)


def test_check_args_of_an_unknown_tool_raises() -> None:
    with pytest.raises(UnknownToolError, match=r"Tool 'mesure' is not registered"):
        _registry().check_args("mesure", {})


def test_tool_without_arguments_says_to_remove_args() -> None:
    registry = ToolRegistry()

    @registry.register
    def noop() -> None:
        """Do nothing."""

    assert registry.check_args("noop", {"x": 1}) == [
        "Tool 'noop' has no argument 'x'. It takes no arguments; remove 'args'."
    ]


def test_spec_is_frozen() -> None:
    spec = _registry().get("measure")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]
    assert {spec: 1}[spec] == 1  # hashable, by identity
    assert inspect.signature(spec.function).parameters["depth_m"].annotation in ("float", float)


def test_an_unresolvable_annotation_string_is_read_as_any() -> None:
    def local(points: list[Undefined], n: int = 1) -> None:  # type: ignore[name-defined]  # noqa: F821
        """Names a class that does not exist (annotations are strings in this module)."""

    spec = ToolRegistry.from_mapping({"local": local}).get("local")
    assert spec.parameters_schema["properties"]["points"] == {}
    assert spec.parameters_schema["properties"]["n"] == {"type": "integer", "default": 1}
    assert spec.check_args({"points": [1]}) == []


def test_an_annotation_pydantic_cannot_build_is_a_usage_error() -> None:
    def broken(points):  # type: ignore[no-untyped-def]
        """Annotated below with an unresolved forward reference object."""

    broken.__annotations__ = {"points": list[typing.ForwardRef("Nowhere")]}
    with pytest.raises(UsageError, match=r"^Tool 'broken': cannot build an argument schema"):
        ToolRegistry().register(broken)
