"""Output contracts: a step's `expect` expressions and its `schema`, checked on its output.

The rules are `docs/plan-language.md`'s ("Output contracts"):

- `expect` is a list of expressions in the expression language
  (`marimo_engine.plans.expressions`) evaluated once the step has its
  output. `$self` names the step's own output (`$self.rows`); the step's own
  id works too, and other steps' outputs may be named (they become
  dependencies). Each must be true; a false one, or one that fails to
  evaluate (a missing field, `None < 0`), breaks the contract.
- `schema` is a JSON schema (draft 2020-12 unless it names another with
  `$schema`) that the output, in its JSON form (`marimo_engine._json.to_jsonable`),
  must match. It is checked with `jsonschema`, imported only when a plan has one.
- A broken contract is the step's `ERROR` with `ContractError`, naming the
  expression (or the schema's rule and place) and the values seen. It is
  not retried: the tool answered, and asking again gives the same answer.

The expressions are checked first, in order, then the schema; the first
break is reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from marimo_engine.errors import ContractError, EngineError

if TYPE_CHECKING:
    from marimo_engine.plans.expressions import Expression

__all__ = ["SELF", "Contract", "schema_problem"]

SELF = "self"
"""`$self` in `expect` (and `intervention_if`) names the step's own output; a reserved id."""

_MAX_VALUE_CHARS = 200
"""A value seen is shown in a message up to this many characters."""


def schema_problem(schema: Mapping[str, Any]) -> str | None:
    """Return why `schema` is not a valid JSON schema, or `None` when it is.

    Args:
        schema: The step's `schema`, a JSON object.

    Returns:
        One sentence naming the failing keyword and where it is, or `None`.
        The schema's draft is its `$schema`, else 2020-12.
    """
    from jsonschema.exceptions import SchemaError

    try:
        _validator_class(schema).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.path) or "the top level"
        return f"{exc.message} (at {where})"
    return None


def _validator_class(schema: Mapping[str, Any]) -> Any:
    from jsonschema.validators import Draft202012Validator, validator_for

    return validator_for(schema, default=Draft202012Validator)


@dataclass(frozen=True, slots=True)
class Contract:
    """A step's contract, parsed once per run.

    Attributes:
        step_id: The step.
        expect: The parsed `expect` expressions, in order, with their text.
        schema: The step's `schema`, or `None`.
        validator: The `jsonschema` validator of `schema`, built once, or `None`.
    """

    step_id: str
    expect: tuple[Expression, ...]
    schema: Mapping[str, Any] | None
    validator: Any = None

    @classmethod
    def of(cls, step: Any) -> Contract | None:
        """Return the contract of a step, or `None` when it has neither `expect` nor `schema`.

        Args:
            step: A `Step`.

        Raises:
            InvalidExpressionError: An `expect` expression does not parse
                (validation rejects those plans first).
        """
        expect = getattr(step, "expect", None) or ()
        schema = getattr(step, "output_schema", None)
        if not expect and schema is None:
            return None
        from marimo_engine.plans.expressions import parse_expression

        validator = None if schema is None else _validator_class(schema)(schema)
        return cls(step.id, tuple(parse_expression(text) for text in expect), schema, validator)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as the step id, the `expect` texts and the schema; unpickling parses them again.

        A `jsonschema` validator does not pickle; a contract sent to another
        process (a Dask worker: `engine.dask_host`) is rebuilt there.
        """
        return (_rebuild, (self.step_id, tuple(e.text for e in self.expect), self.schema))

    def check(self, output: object, inputs: Mapping[str, object]) -> None:
        """Check the step's output against the contract.

        Args:
            output: What the step returned.
            inputs: Outputs of the other steps (at least those the
                expressions name), by step id.

        Raises:
            ContractError: An expression is false or fails to evaluate, or the
                output does not match the schema.
        """
        outputs = {**inputs, self.step_id: output, SELF: output}
        for position, expression in enumerate(self.expect):
            try:
                holds = expression.is_true(outputs)
                failure = "is false"
            except EngineError as exc:
                holds = False
                failure = f"could not be evaluated ({exc})"
            if not holds:
                values = _values_seen(expression, outputs)
                seen = ", ".join(f"{text} = {_show(value)}" for text, value in values.items())
                raise ContractError(
                    f"The output of step {self.step_id!r} breaks its contract: expect[{position}] "
                    f"{expression.text!r} {failure}" + (f"; seen: {seen}." if seen else "."),
                    step_id=self.step_id,
                    expression=expression.text,
                    values=values,
                )
        if self.validator is not None:
            self._check_schema(output)

    def _check_schema(self, output: object) -> None:
        from jsonschema.exceptions import best_match

        from marimo_engine._json import to_jsonable

        error = best_match(self.validator.iter_errors(to_jsonable(output)))
        if error is None:
            return
        where = "$self" + "".join(f".{part}" for part in error.absolute_path)
        rule = "/".join(str(part) for part in error.absolute_schema_path)
        raise ContractError(
            f"The output of step {self.step_id!r} does not match its schema: at {where}, "
            f"{error.message} (schema rule {rule or error.validator!r}).",
            step_id=self.step_id,
            values={where: error.instance},
        )


def _rebuild(step_id: str, expect: tuple[str, ...], schema: Mapping[str, Any] | None) -> Contract:
    """A pickled contract, parsed again (`Contract.__reduce__`)."""
    from types import SimpleNamespace

    step = SimpleNamespace(id=step_id, expect=list(expect), output_schema=schema)
    contract = Contract.of(step)
    assert contract is not None  # it had `expect` or `schema` when it was pickled
    return contract


def _values_seen(expression: Expression, outputs: Mapping[str, object]) -> dict[str, Any]:
    """What each reference of the expression named; one that names nothing is left out."""
    from marimo_engine.plans.references import resolve_reference

    values: dict[str, Any] = {}
    for ref in expression.references:
        if ref.text in values:
            continue
        try:
            values[ref.text] = resolve_reference(ref, outputs)
        except EngineError:
            continue
    return values


def _show(value: object) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 1] + "…"
