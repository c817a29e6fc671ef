"""References: `$id` and `$id.path` in step arguments, parsed once, resolved late.

The forms and choices are the plan language spec's ("References"), that is
`docs/plan-language.md`:

- A reference is `$`, a step id (`A-Z a-z 0-9 _ -`, as many as follow), then
  any number of `.segment` parts of the same characters. It ends at the
  first other character, so `"O2 is $s2.level."` ends with a literal `.`.
- A string that is exactly one reference is replaced by the value, type kept;
  any other string with references is interpolated with `str(value)`.
- `$$` is a literal `$`. A `$` followed by anything else than `$` or an id
  character (`"5 $"`, `"${s1}"`) is malformed, and so are a path segment that
  starts with `_` and an empty segment (`"$s1..level"`): validation reports
  them (`find_reference_errors`) and resolving them raises.
- Lists, tuples and dicts are walked (dict values, not keys), down to
  `MAX_VALUE_DEPTH` levels.

A path segment is followed as a mapping key (then as an integer key when it
is digits), a field of a dataclass, pydantic model or named tuple, or a
non-negative index into a list or tuple. Nothing else is followed: not the
attributes of arbitrary objects, and never a name that starts with `_`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from marimo_engine.errors import UnknownReferenceError, UsageError

__all__ = [
    "MAX_VALUE_DEPTH",
    "Reference",
    "Template",
    "find_reference_errors",
    "find_references",
    "match_reference",
    "parse_reference",
    "parse_template",
    "resolve_reference",
    "resolve_value",
]

MAX_VALUE_DEPTH = 100
"""Lists and dicts nested deeper than this in `args` are an error."""

_NAME = r"[A-Za-z0-9_-]+"
_REFERENCE_RE = re.compile(rf"\$({_NAME})((?:\.{_NAME})*)")
_EMPTY_SEGMENT_RE = re.compile(r"\.{2,}[A-Za-z0-9_-]")
_MAX_SHOWN_KEYS = 20
_CACHE_MAX_CHARS = 10_000


@dataclass(frozen=True, slots=True)
class Reference:
    """One `$id.path` reference, parsed.

    Attributes:
        step_id: The step whose output is named, such as `"s1"`.
        path: The path segments after the step id, such as
            `("items", "0", "name")`; empty for a whole output (`$s1`).
        text: The reference as written, such as `"$s1.items.0.name"`.
    """

    step_id: str
    path: tuple[str, ...]
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Template:
    """A string parsed into literal text and references.

    Attributes:
        parts: Literal text (`$$` already turned into `$`) and `Reference`s,
            in order; adjacent text is merged, empty text is left out.
        errors: One message per malformed reference, in order (see the
            module docstring); the malformed text is kept in `parts` as
            literal text.
    """

    parts: tuple[str | Reference, ...]
    errors: tuple[str, ...] = ()

    @property
    def references(self) -> tuple[Reference, ...]:
        """The references, in order of appearance (repeats kept)."""
        return tuple(part for part in self.parts if isinstance(part, Reference))

    @property
    def is_whole(self) -> bool:
        """Whether the string is exactly one reference (its value keeps its type)."""
        return len(self.parts) == 1 and isinstance(self.parts[0], Reference)


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def match_reference(text: str, pos: int) -> tuple[Reference | None, int, str | None]:
    """Read one reference that starts with the `$` at `text[pos]`.

    This is the one reference grammar, shared with the expression parser.

    Args:
        text: The text that holds the reference.
        pos: Index of a `$` in `text` (not of a `$$` pair).

    Returns:
        `(reference, end, error)`: the `Reference` (or `None` when no step id
        follows the `$`), the index just after what was read, and a message
        when the reference is malformed (else `None`). A reference with a
        bad segment is still returned, with its error.
    """
    match = _REFERENCE_RE.match(text, pos)
    if match is None:
        following = text[pos + 1 : pos + 2]
        what = f"is followed by {following!r}" if following else "ends the text"
        return (
            None,
            pos + 1,
            f"The '$' at position {pos} of {_short(text)!r} {what}; a reference is "
            "'$step_id' or '$step_id.path' (write '$$' for a literal '$').",
        )
    step_id = match.group(1)
    path = tuple(match.group(2).split(".")[1:])
    reference = Reference(step_id=step_id, path=path, text=match.group(0))
    error = None
    hidden = [segment for segment in path if segment.startswith("_")]
    if hidden:
        error = (
            f"Reference {reference.text!r} follows {hidden[0]!r}; names that start with "
            "'_' are never followed. Name a public key or field instead."
        )
    elif _EMPTY_SEGMENT_RE.match(text, match.end()):
        error = (
            f"Reference {reference.text!r} is followed by an empty path segment ('..') "
            f"in {_short(text)!r}; separate segments with a single '.'."
        )
    return reference, match.end(), error


def parse_template(text: str) -> Template:
    """Parse a string into literal text and references (cached).

    Args:
        text: Any string, such as `"$s2.level"`, `"O2 is $s2.level %"` or
            `"costs $$5"`.

    Returns:
        The `Template`. Malformed references do not raise here: they are
        listed in `Template.errors` and kept as literal text.

    Raises:
        UsageError: `text` is not a string.
    """
    if not isinstance(text, str):
        raise UsageError(f"parse_template() takes a string; got {type(text).__name__}.")
    if "$" not in text:
        return Template(parts=(text,) if text else ())
    if len(text) > _CACHE_MAX_CHARS:
        return _parse_template(text)
    return _parse_template_cached(text)


def _parse_template(text: str) -> Template:
    parts: list[str | Reference] = []
    errors: list[str] = []
    literal: list[str] = []
    index = 0
    while True:
        dollar = text.find("$", index)
        if dollar < 0:
            literal.append(text[index:])
            break
        literal.append(text[index:dollar])
        if text.startswith("$$", dollar):
            literal.append("$")
            index = dollar + 2
            continue
        reference, end, error = match_reference(text, dollar)
        if error is not None:
            errors.append(error)
        if reference is None:
            literal.append("$")
        else:
            if literal_text := "".join(literal):
                parts.append(literal_text)
            literal = []
            parts.append(reference)
        index = end
    if literal_text := "".join(literal):
        parts.append(literal_text)
    return Template(parts=tuple(parts), errors=tuple(errors))


_parse_template_cached = functools.lru_cache(maxsize=4096)(_parse_template)


def parse_reference(text: str) -> Reference:
    """Parse a string that is exactly one reference, such as `"$s1.items.0"`.

    Args:
        text: The whole reference.

    Returns:
        The `Reference`.

    Raises:
        UnknownReferenceError: `text` is not exactly one well-formed
            reference; the message says why.
    """
    template = parse_template(text)
    if template.errors:
        raise UnknownReferenceError(template.errors[0], reference=str(text))
    if not template.is_whole:
        raise UnknownReferenceError(
            f"{_short(text)!r} is not a reference; write '$step_id' or '$step_id.path', "
            "such as '$s1.level'.",
            reference=text,
        )
    reference = template.parts[0]
    assert isinstance(reference, Reference)
    return reference


def _walk_strings(value: object, found: list[str], errors: list[str] | None, depth: int) -> None:
    if isinstance(value, str):
        found.append(value)
    elif isinstance(value, Mapping | list | tuple):
        if depth >= MAX_VALUE_DEPTH:
            if errors is not None:
                errors.append(
                    f"A value is nested deeper than {MAX_VALUE_DEPTH} levels of lists and "
                    "objects; references are not looked for below that. Flatten it."
                )
            return
        items = value.values() if isinstance(value, Mapping) else value
        for item in items:
            _walk_strings(item, found, errors, depth + 1)


def find_references(value: object) -> list[Reference]:
    """Return every reference in a JSON value, whole or interpolated.

    Args:
        value: A string, or lists and dicts (values, not keys) holding
            strings, such as a step's `args`; other values hold none.

    Returns:
        The references in order of appearance, repeats kept. Malformed
        references are left out (see `find_reference_errors`).
    """
    strings: list[str] = []
    _walk_strings(value, strings, None, 0)
    return [ref for text in strings for ref in parse_template(text).references]


def find_reference_errors(value: object) -> list[str]:
    """Return a message for each malformed reference in a JSON value.

    Malformed are: a `$` not followed by `$` or a step id character, a path
    segment that starts with `_`, an empty segment (`$s1..x`), and values
    nested deeper than `MAX_VALUE_DEPTH`.

    Args:
        value: As for `find_references`.

    Returns:
        One line per problem, saying what to write instead; empty when every
        reference is well-formed. Validation reports each as
        `unknown_reference`.
    """
    strings: list[str] = []
    errors: list[str] = []
    _walk_strings(value, strings, errors, 0)
    return errors + [error for text in strings for error in parse_template(text).errors]


def resolve_value(value: object, outputs: Mapping[str, object]) -> object:
    """Return `value` with every reference replaced by what it names.

    Args:
        value: A JSON value such as a step's `args`: strings, and lists,
            tuples and dicts of them (walked recursively, dict keys kept as
            they are); anything else is returned unchanged.
        outputs: Outputs of completed steps, keyed by step id.

    Returns:
        A new value of the same shape. A string that is exactly one
        reference becomes the value itself (type kept, no copy); a string
        with references inside text has each replaced by `str(value)`; `$$`
        becomes `$`.

    Raises:
        UnknownReferenceError: A reference names a step without output or a
            missing path segment, or is malformed.
        UsageError: `value` is nested deeper than `MAX_VALUE_DEPTH`.
    """
    return _resolve(value, outputs, 0)


def _resolve(value: object, outputs: Mapping[str, object], depth: int) -> object:
    if isinstance(value, str):
        return _resolve_text(value, outputs)
    if isinstance(value, Mapping | list | tuple) and depth >= MAX_VALUE_DEPTH:
        raise UsageError(
            f"A value is nested deeper than {MAX_VALUE_DEPTH} levels of lists and objects; "
            "flatten it."
        )
    if isinstance(value, Mapping):
        return {key: _resolve(item, outputs, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, outputs, depth + 1) for item in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_resolve(item, outputs, depth + 1) for item in value)
    return value


def _resolve_text(text: str, outputs: Mapping[str, object]) -> object:
    template = parse_template(text)
    if template.errors:
        raise UnknownReferenceError(template.errors[0], reference=text)
    if template.is_whole:
        reference = template.parts[0]
        assert isinstance(reference, Reference)
        return resolve_reference(reference, outputs)
    pieces = [
        part if isinstance(part, str) else _text_of(resolve_reference(part, outputs), part)
        for part in template.parts
    ]
    return "".join(pieces)


def _text_of(value: object, reference: Reference) -> str:
    try:
        return str(value)
    except Exception as exc:  # a broken __str__ is the output's fault, not ours
        raise UnknownReferenceError(
            f"Reference {reference.text!r} names a {type(value).__name__} that cannot be "
            f"turned into text ({type(exc).__name__}: {exc}); use it as a whole value instead.",
            reference=reference.text,
        ) from exc


def resolve_reference(ref: Reference | str, outputs: Mapping[str, object]) -> object:
    """Return the value that a `$step.path` reference names.

    Args:
        ref: A `Reference`, or a whole reference as text as defined in the
            plan language spec ("References"), such as `"$s2.level"` or
            `"$s1.items.0.name"`.
        outputs: Outputs of completed steps, keyed by step id.

    Returns:
        The value itself, type kept: no copy and no `str()`.

    Raises:
        UnknownReferenceError: The step has no output, or a path segment is
            missing; the message names the reference, the segment and the
            keys or fields that exist. Also raised when `ref` is text that is
            not exactly one well-formed reference.
    """
    reference = ref if isinstance(ref, Reference) else parse_reference(ref)
    if reference.step_id not in outputs:
        known = ", ".join(repr(k) for k in list(outputs)[:_MAX_SHOWN_KEYS]) or "none yet"
        raise UnknownReferenceError(
            f"Reference {reference.text!r} names step {reference.step_id!r}, which has no "
            f"output. Steps with output: {known}.{_minus_hint(reference.step_id, outputs)}",
            reference=reference.text,
        )
    value = outputs[reference.step_id]
    for index, segment in enumerate(reference.path):
        value = _follow(value, segment, reference, index)
    return value


def _minus_hint(name: str, known: Any) -> str:
    if "-" not in name:
        return ""
    head = name.split("-", 1)[0]
    try:
        exists = head in known
    except Exception:
        return ""
    if not exists:
        return ""
    return f" In an expression, put spaces around '-' to subtract: {head!r} - ..."


def _follow(value: object, segment: str, reference: Reference, index: int) -> object:
    place = "$" + ".".join((reference.step_id, *reference.path[:index]))
    where = f"the output of step {reference.step_id!r}" if index == 0 else repr(place)

    def missing(what: str, names: list[str]) -> UnknownReferenceError:
        close = difflib.get_close_matches(segment, names, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        shown = ", ".join(repr(n) for n in names[:_MAX_SHOWN_KEYS])
        if len(names) > _MAX_SHOWN_KEYS:
            shown += f", … ({len(names)} in all)"
        listing = f" It has: {shown}." if names else " It has none."
        return UnknownReferenceError(
            f"Cannot resolve {reference.text!r}: {where} ({type(value).__name__}) has no "
            f"{what} {segment!r}.{hint}{listing}{_minus_hint(segment, names)}",
            reference=reference.text,
            segment=segment,
        )

    if segment.startswith("_"):
        raise UnknownReferenceError(
            f"Cannot resolve {reference.text!r}: the segment {segment!r} starts with '_'; "
            "such names are never followed.",
            reference=reference.text,
            segment=segment,
        )
    if isinstance(value, Mapping):
        return _follow_mapping(value, segment, missing)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        fields = [str(f) for f in value._fields]
        if segment in fields:
            return getattr(value, segment)
        if not _is_index(segment):
            raise missing("field", fields)
    if isinstance(value, list | tuple):
        return _follow_index(value, segment, reference, where)
    fields = _data_fields(value)
    if fields is None:
        raise UnknownReferenceError(
            f"Cannot resolve {reference.text!r}: {where} is {_a(type(value).__name__)}, which a "
            f"reference cannot look into for {segment!r}. References follow mapping keys, "
            "fields of dataclasses, pydantic models and named tuples, and list indexes.",
            reference=reference.text,
            segment=segment,
        )
    if segment in fields:
        return getattr(value, segment)
    raise missing("field", [f for f in fields if not f.startswith("_")])


def _follow_mapping(value: Mapping[Any, Any], segment: str, missing: Any) -> object:
    try:
        return value[segment]
    except KeyError:
        pass
    if _is_index(segment):
        try:
            return value[int(segment)]
        except KeyError:
            pass
    names = [str(k) for k in value if not str(k).startswith("_")]
    raise missing("key", names)


def _follow_index(
    value: list[Any] | tuple[Any, ...], segment: str, reference: Reference, where: str
) -> object:
    kind = type(value).__name__
    if not _is_index(segment):
        raise UnknownReferenceError(
            f"Cannot resolve {reference.text!r}: {where} is {_a(kind)}, so {segment!r} must be "
            f"a non-negative integer index (0 to {len(value) - 1}).",
            reference=reference.text,
            segment=segment,
        )
    position = int(segment) if len(segment) <= 18 else len(value)
    if position >= len(value):
        span = f"0 to {len(value) - 1}" if value else "none: it is empty"
        raise UnknownReferenceError(
            f"Cannot resolve {reference.text!r}: {where} is {_a(kind)} of {len(value)} items, "
            f"so index {position} does not exist (indexes: {span}).",
            reference=reference.text,
            segment=segment,
        )
    return value[position]


def _is_index(segment: str) -> bool:
    """Whether a segment is a non-negative integer index (ASCII digits, at most 18)."""
    return segment.isascii() and segment.isdigit() and len(segment) <= 18


def _data_fields(value: object) -> list[str] | None:
    """Field names of a plain data object, or `None` for any other object."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [f.name for f in dataclasses.fields(value)]
    if isinstance(value, BaseModel):
        names = [*type(value).model_fields, *type(value).model_computed_fields]
        names.extend(str(k) for k in (value.model_extra or {}))
        return names
    return None
