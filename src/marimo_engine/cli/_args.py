"""Argument types shared by the command line's sub-commands (argparse `type=`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


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
