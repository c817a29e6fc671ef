"""References: every form of the spec ("References"), resolving, and malformed ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pytest
from pydantic import BaseModel, ConfigDict, computed_field

from marimo_engine.errors import EngineError, UnknownReferenceError, UsageError
from marimo_engine.plans.references import (
    MAX_VALUE_DEPTH,
    Reference,
    find_reference_errors,
    find_references,
    parse_reference,
    parse_template,
    resolve_reference,
    resolve_value,
)


class Reading(NamedTuple):
    level: float
    unit: str


@dataclass
class Hull:
    breach_detected: bool
    sections: list[str]
    _secret: str = "hidden"

    def repair(self) -> str:
        return "fixed"


class Atmosphere(BaseModel):
    model_config = ConfigDict(extra="allow")

    o2: float
    _private: int = 3

    @computed_field  # type: ignore[prop-decorator]
    @property
    def o2_ok(self) -> bool:
        return self.o2 >= 19.5


class Opaque:
    def __init__(self) -> None:
        self.level = 5


class BadStr:
    def __str__(self) -> str:
        raise RuntimeError("no text")


OUTPUTS: dict[str, object] = {
    "s1": {"items": [{"name": "n0"}, {"name": "n1"}], "level": 17.5, 3: "three", "_hid": 1},
    "s2": Reading(17.5, "%"),
    "s3": Hull(True, ["bow", "stern"]),
    "s4": Atmosphere(o2=20.1, note="extra"),
    "s5": ("a", ("b", "c")),
    "s6": None,
    "s7": Opaque(),
    "s8": [],
    "s9": BadStr(),
    "step-1": 42,
    "_s": "underscore step ids are allowed",
}


@dataclass(frozen=True)
class Case:
    id: str
    value: Any
    expected: Any


RESOLVED = [
    Case("whole-output", "$s1", OUTPUTS["s1"]),
    Case("whole-keeps-type-float", "$s1.level", 17.5),
    Case("mapping-key-then-index", "$s1.items.1.name", "n1"),
    Case("mapping-int-key", "$s1.3", "three"),
    Case("named-tuple-field", "$s2.level", 17.5),
    Case("named-tuple-index", "$s2.1", "%"),
    Case("dataclass-field", "$s3.breach_detected", True),
    Case("dataclass-list-index", "$s3.sections.0", "bow"),
    Case("pydantic-field", "$s4.o2", 20.1),
    Case("pydantic-computed-field", "$s4.o2_ok", True),
    Case("pydantic-extra-field", "$s4.note", "extra"),
    Case("tuple-nested-index", "$s5.1.0", "b"),
    Case("none-output", "$s6", None),
    Case("hyphen-step-id", "$step-1", 42),
    Case("underscore-step-id", "$_s", "underscore step ids are allowed"),
    Case("whole-keeps-identity", "$s3", OUTPUTS["s3"]),
    Case("interpolated", "O2 is $s1.level %", "O2 is 17.5 %"),
    Case("interpolated-two", "$s2.level$s2.unit", "17.5%"),
    Case("interpolated-trailing-dot", "Level $s1.level.", "Level 17.5."),
    Case("interpolated-ellipsis", "Level $s1.level...", "Level 17.5..."),
    Case("interpolated-none", "was $s6", "was None"),
    Case("interpolated-whole-object", "[$s5]", "[('a', ('b', 'c'))]"),
    Case("dollar-dollar", "costs $$5", "costs $5"),
    Case("dollar-dollar-alone", "$$", "$"),
    Case("dollar-dollar-then-ref", "$$$s1.level", "$17.5"),
    Case("dollar-dollar-is-not-a-ref", "$$s1", "$s1"),
    Case("no-reference", "plain text", "plain text"),
    Case("empty-string", "", ""),
    Case("nested-list", ["$s1.level", ["$s2.unit"]], [17.5, ["%"]]),
    Case("nested-dict", {"a": {"b": "$s1.items.0"}}, {"a": {"b": {"name": "n0"}}}),
    Case("dict-keys-untouched", {"$s1": "$s1.level"}, {"$s1": 17.5}),
    Case("tuple", ("$s1.level", 2), (17.5, 2)),
    Case("non-strings-untouched", [1, 2.5, None, True], [1, 2.5, None, True]),
    Case("named-tuple-value-untouched", Reading(1.0, "$s1"), Reading(1.0, "$s1")),
]


@pytest.mark.parametrize("case", RESOLVED, ids=[c.id for c in RESOLVED])
def test_resolve_value(case: Case) -> None:
    result = resolve_value(case.value, OUTPUTS)
    assert result == case.expected
    assert type(result) is type(case.expected)


def test_whole_reference_is_the_object_itself() -> None:
    assert resolve_value("$s3.sections", OUTPUTS) is OUTPUTS["s3"].sections  # type: ignore[attr-defined]
    assert resolve_reference("$s3", OUTPUTS) is OUTPUTS["s3"]


@dataclass(frozen=True)
class ErrorCase:
    id: str
    value: Any
    match: str
    segment: str | None = None


UNRESOLVED = [
    ErrorCase(
        "missing-step",
        "$s99.level",
        r"Reference '\$s99\.level' names step 's99', which has no output\. "
        r"Steps with output: 's1', 's2',",
    ),
    ErrorCase(
        "missing-key-suggests",
        "$s1.levl",
        r"Cannot resolve '\$s1\.levl': the output of step 's1' \(dict\) has no key 'levl'\. "
        r"Did you mean 'level'\? It has: 'items', 'level', '3'\.",
        "levl",
    ),
    ErrorCase(
        "missing-nested-key",
        "$s1.items.0.nme",
        r"'\$s1\.items\.0' \(dict\) has no key 'nme'\. Did you mean 'name'\? It has: 'name'\.",
        "nme",
    ),
    ErrorCase(
        "index-out-of-range",
        "$s1.items.2",
        r"'\$s1\.items' is a list of 2 items, so index 2 does not exist \(indexes: 0 to 1\)",
        "2",
    ),
    ErrorCase("index-into-empty", "$s8.0", r"indexes: none: it is empty", "0"),
    ErrorCase(
        "name-into-list",
        "$s1.items.first",
        r"is a list, so 'first' must be a non-negative integer index \(0 to 1\)",
        "first",
    ),
    ErrorCase("negative-index", "$s3.sections.-1", r"'-1' must be a non-negative integer", "-1"),
    ErrorCase(
        "named-tuple-missing",
        "$s2.lvl",
        r"\(Reading\) has no field 'lvl'\. Did you mean 'level'\? It has: 'level', 'unit'",
        "lvl",
    ),
    ErrorCase("dataclass-method", "$s3.repair", r"\(Hull\) has no field 'repair'", "repair"),
    ErrorCase(
        "pydantic-missing",
        "$s4.o3",
        r"\(Atmosphere\) has no field 'o3'\. Did you mean 'o2'\? It has: 'o2', 'o2_ok', 'note'",
        "o3",
    ),
    ErrorCase(
        "arbitrary-object",
        "$s7.level",
        r"the output of step 's7' is an Opaque, which a reference cannot look into for 'level'\. "
        r"References follow mapping keys, fields of dataclasses, pydantic models and named "
        r"tuples, and list indexes",
        "level",
    ),
    ErrorCase("into-none", "$s6.level", r"is a NoneType, which a reference cannot", "level"),
    ErrorCase("into-string", "$s3.sections.0.0", r"is a str, which a reference cannot", "0"),
    ErrorCase(
        "underscore-key",
        "$s1._hid",
        r"Reference '\$s1\._hid' follows '_hid'; names that start with '_' are never followed",
    ),
    ErrorCase("underscore-field", "$s3._secret", r"follows '_secret'"),
    ErrorCase("underscore-pydantic", "$s4._private", r"follows '_private'"),
    ErrorCase("dunder", "$s3.__class__", r"follows '__class__'"),
    ErrorCase(
        "minus-hint",
        "$s1.level-5",
        r"no key 'level-5'.*put spaces around '-' to subtract",
        "level-5",
    ),
    ErrorCase("bad-str-interpolated", "x $s9", r"cannot be turned into text \(RuntimeError"),
    ErrorCase("missing-inside-text", "O2 $s1.nope", r"has no key 'nope'", "nope"),
    ErrorCase("missing-inside-nested", {"a": ["$s0"]}, r"names step 's0'"),
    ErrorCase(
        "lone-dollar",
        "5 $",
        r"The '\$' at position 2 of '5 \$' ends the text; a reference is '\$step_id' or "
        r"'\$step_id\.path' \(write '\$\$' for a literal '\$'\)",
    ),
    ErrorCase("dollar-brace", "${s1}", r"followed by '\{'"),
    ErrorCase("dollar-space", "$ s1", r"followed by ' '"),
    ErrorCase("dollar-dot", "$.x", r"followed by '\.'"),
    ErrorCase(
        "empty-segment",
        "$s1..level",
        r"Reference '\$s1' is followed by an empty path segment \('\.\.'\)",
    ),
]


@pytest.mark.parametrize("case", UNRESOLVED, ids=[c.id for c in UNRESOLVED])
def test_resolve_value_errors(case: ErrorCase) -> None:
    with pytest.raises(UnknownReferenceError, match=case.match) as raised:
        resolve_value(case.value, OUTPUTS)
    assert raised.value.segment == case.segment
    assert raised.value.reference


def test_unknown_reference_error_names_the_reference() -> None:
    with pytest.raises(UnknownReferenceError) as raised:
        resolve_value({"o2": "level $s1.items.0.nme"}, OUTPUTS)
    assert raised.value.reference == "$s1.items.0.nme"
    assert raised.value.segment == "nme"


@dataclass(frozen=True)
class ParseCase:
    id: str
    text: str
    parts: tuple[Any, ...]
    errors: int = 0


def ref(text: str) -> Reference:
    step_id, *path = text[1:].split(".")
    return Reference(step_id=step_id, path=tuple(path), text=text)


PARSED = [
    ParseCase("whole", "$s1", (ref("$s1"),)),
    ParseCase("whole-path", "$s1.items.0.name", (ref("$s1.items.0.name"),)),
    ParseCase("text-around", "a $s1.x b", ("a ", ref("$s1.x"), " b")),
    ParseCase("adjacent", "$a$b", (ref("$a"), ref("$b"))),
    ParseCase("trailing-dot", "$s1.", (ref("$s1"), ".")),
    ParseCase("stops-at-other-chars", "$s1.x/2", (ref("$s1.x"), "/2")),
    ParseCase("dollar-dollar-merged", "a $$ b", ("a $ b",)),
    ParseCase("no-dollar", "plain", ("plain",)),
    ParseCase("empty", "", ()),
    ParseCase("unicode-ends-ref", "$s1é", (ref("$s1"), "é")),
    ParseCase("malformed-kept-as-text", "x $ y", ("x $ y",), errors=1),
    ParseCase("two-malformed", "$ $", ("$ $",), errors=2),
    ParseCase("underscore-segment", "$s1._x", (ref("$s1._x"),), errors=1),
]


@pytest.mark.parametrize("case", PARSED, ids=[c.id for c in PARSED])
def test_parse_template(case: ParseCase) -> None:
    template = parse_template(case.text)
    assert template.parts == case.parts
    assert len(template.errors) == case.errors
    assert template.is_whole == (len(case.parts) == 1 and isinstance(case.parts[0], Reference))


def test_parse_template_is_cached() -> None:
    text = "cached $s1.level"
    assert parse_template(text) is parse_template(text)


def test_parse_template_rejects_non_strings() -> None:
    with pytest.raises(UsageError, match=r"parse_template\(\) takes a string; got list"):
        parse_template(["$s1"])  # type: ignore[arg-type]


def test_find_references_walks_everything_in_order() -> None:
    args = {
        "a": "$s1.level",
        "b": ["x $s2 y $s3.z", {"c": ("$s1",)}],
        "$key": "$$s4 is literal",
        "n": 5,
        "bad": "$ not a ref",
    }
    found = find_references(args)
    assert [r.text for r in found] == ["$s1.level", "$s2", "$s3.z", "$s1"]
    assert found[2] == Reference("s3", ("z",), "$s3.z")
    assert str(found[0]) == "$s1.level"


def test_find_reference_errors_lists_every_malformed_one() -> None:
    errors = find_reference_errors({"a": ["$", "${x}"], "b": "$s1._x and $s1..y", "c": "$s1"})
    assert len(errors) == 4
    assert errors[0].startswith("The '$' at position 0 of '$' ends the text")
    assert "followed by '{'" in errors[1]
    assert "'_x'" in errors[2]
    assert "empty path segment" in errors[3]
    assert find_reference_errors({"ok": ["$s1.level", "$$", "text"]}) == []


def nested(depth: int, leaf: object) -> object:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def test_deep_values_are_reported_not_crashed() -> None:
    deep = nested(MAX_VALUE_DEPTH + 5, "$s1")
    assert find_references(deep) == []
    assert any("nested deeper than" in e for e in find_reference_errors(deep))
    with pytest.raises(UsageError, match=r"nested deeper than 100 levels"):
        resolve_value(deep, OUTPUTS)
    assert resolve_value(nested(MAX_VALUE_DEPTH - 1, "$s1.level"), OUTPUTS) == nested(
        MAX_VALUE_DEPTH - 1, 17.5
    )


def test_self_containing_value_does_not_loop() -> None:
    loop: list[object] = ["$s1.level"]
    loop.append(loop)
    with pytest.raises(UsageError):
        resolve_value(loop, OUTPUTS)
    assert find_references(loop)[0].text == "$s1.level"


@dataclass(frozen=True)
class RefCase:
    id: str
    ref: Any
    match: str


BAD_REFERENCE_TEXT = [
    RefCase("text-around", "x $s1", r"'x \$s1' is not a reference; write '\$step_id'"),
    RefCase("two", "$s1$s2", r"is not a reference"),
    RefCase("plain", "s1", r"'s1' is not a reference"),
    RefCase("malformed", "$", r"ends the text"),
]


@pytest.mark.parametrize("case", BAD_REFERENCE_TEXT, ids=[c.id for c in BAD_REFERENCE_TEXT])
def test_resolve_reference_needs_one_whole_reference(case: RefCase) -> None:
    with pytest.raises(UnknownReferenceError, match=case.match):
        resolve_reference(case.ref, OUTPUTS)
    with pytest.raises(UnknownReferenceError, match=case.match):
        parse_reference(case.ref)


def test_resolve_reference_takes_a_reference_object() -> None:
    assert (
        resolve_reference(Reference("s1", ("items", "0", "name"), "$s1.items.0.name"), OUTPUTS)
        == "n0"
    )
    built = Reference("s1", ("items", "x" * 30), "$s1.items.xxx")
    with pytest.raises(UnknownReferenceError, match=r"must be a non-negative integer index"):
        resolve_reference(built, OUTPUTS)
    huge_index = Reference("s1", ("items", "9" * 5000), "$s1.items.999")
    with pytest.raises(EngineError):
        resolve_reference(huge_index, OUTPUTS)


def test_reference_is_frozen_and_hashable() -> None:
    reference = parse_reference("$s1.a.b")
    assert reference == Reference("s1", ("a", "b"), "$s1.a.b")
    assert len({reference, parse_reference("$s1.a.b")}) == 1
    with pytest.raises(AttributeError):
        reference.step_id = "s2"  # type: ignore[misc]


@dataclass
class Wrapper:
    inner: dict[str, Any] = field(default_factory=lambda: {"deep": [Reading(1.5, "kPa")]})


def test_paths_mix_every_kind_of_container() -> None:
    outputs = {"w": Wrapper()}
    assert resolve_value("$w.inner.deep.0.level", outputs) == 1.5
    assert resolve_value("$w.inner.deep.0.1", outputs) == "kPa"
