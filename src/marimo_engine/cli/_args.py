"""Argument types shared by the command line's sub-commands (argparse `type=`)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """Return an argparse type for a whole number from `low` to `high` (inclusive).

    Args:
        low: Smallest value accepted.
        high: Largest value accepted; `None` for no upper bound.

    Returns:
        A function that turns the argument's text into an `int`, raising
        `argparse.ArgumentTypeError` with a one-line message otherwise.
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            wanted = f"{low} or more" if high is None else f"{low} to {high}"
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {value}")
        return value

    parse.__name__ = "whole number"
    return parse


positive_int = whole_number(1)
"""A whole number of 1 or more (`--max-workers`, `--max-requests`, ...)."""


def name_values(items: Sequence[str], option: str, form: str) -> dict[str, Any]:
    """Parse repeated `NAME=VALUE` options (`run --input`, `rerun --set`) into a dict.

    A value is read as JSON when it parses as JSON (`3`, `true`, `[1, 2]`,
    `{"a": 1}`, `"quoted"`), else taken as the text it is (`data.csv`).

    Args:
        items: The options' texts, in the order given.
        option: The option's name, for messages (`--input`).
        form: How one is written, for messages (`NAME=VALUE`).

    Returns:
        Name (stripped) to value, in the order given.

    Raises:
        UsageError: An item has no `=` or no name, or a name is given twice.
    """
    from marimo_engine.errors import UsageError

    values: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"{option} {item!r}: write {form}.")
        if name in values:
            raise UsageError(f"{option} gives {name!r} twice; give it once.")
        try:
            values[name] = json.loads(text)
        except ValueError:
            values[name] = text
    return values


def add_input_option(parser: argparse.ArgumentParser) -> None:
    """Add `--input NAME=VALUE` (repeatable) to a command that runs a plan; read it with
    `plan_inputs(args)`."""
    parser.add_argument(
        "--input",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="a plan input, read by steps as $input.NAME (repeatable); VALUE is JSON when it "
        "parses as JSON (3, true, [1, 2]), else text",
    )


def plan_inputs(args: argparse.Namespace, plan: Any) -> dict[str, Any] | None:
    """The `--input` values for `plan`, checked against its `inputs` before anything runs.

    Args:
        args: Parsed arguments with `input` (`add_input_option`).
        plan: The parsed `Plan`.

    Returns:
        Input name to value, or `None` when none were given.

    Raises:
        UsageError: A malformed `--input`, a name given twice or not an
            input of the plan, or a required input missing (the message says
            `--input NAME=VALUE`).
    """
    from marimo_engine.engine._subplan import input_values

    given = name_values(getattr(args, "input", None) or [], "--input", "NAME=VALUE") or None
    input_values(plan, given, how="--input {name}=VALUE")
    return given
