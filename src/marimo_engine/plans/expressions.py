"""Expressions of `run_if` and `intervention_if`: a small language over references.

The language is the plan language spec's ("Expressions"): literals (numbers,
strings in single or double quotes, `true`/`false`/`True`/`False`,
`null`/`None`, lists of literals), references (`$id`, `$id.path`),
comparisons (`<  <=  >  >=  ==  !=  in  not in`, chains allowed), `and`,
`or`, `not`, parentheses, and `+ - * / %` and unary minus on numbers. Nothing
else.

How it works: outside string literals each `$id.path` is read with the
reference grammar (`references.match_reference`) and replaced by a
placeholder name; the text is parsed with Python's `ast` and every node is
checked against the whitelist above, with the limits `MAX_EXPRESSION_CHARS`
and `MAX_EXPRESSION_DEPTH` (depth counted on the syntax tree: `a + b + c` is
`(a + b) + c`, two levels of `+`). Evaluation walks the checked tree; there is
no `eval`. Parsing is cached, so a plan's expressions are parsed once.

Choices (`docs/plan-language.md`, "Expressions"): a `$` outside
quotes always starts a reference (`$$` is an error there; inside quotes `$`
is plain text and references are not interpolated); `#` comments are
rejected; `and`/`or` short-circuit and return an operand, as in Python;
arithmetic refuses booleans and strings; `evaluate` returns the value and
`is_true` its truth value.
"""

from __future__ import annotations

import ast
import functools
import numbers
import operator
import re
import threading
import unicodedata
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from marimo_engine.errors import ExpressionError, InvalidExpressionError
from marimo_engine.plans.references import Reference, match_reference, resolve_reference

__all__ = [
    "ALLOWED",
    "MAX_EXPRESSION_CHARS",
    "MAX_EXPRESSION_DEPTH",
    "Expression",
    "parse_expression",
]

MAX_EXPRESSION_CHARS = 1_000
"""Longest expression accepted, in characters (spec, "Expressions")."""

MAX_EXPRESSION_DEPTH = 32
"""Deepest nesting accepted, in levels of the syntax tree (spec, "Expressions")."""

ALLOWED = (
    "Allowed: literals (numbers, 'text' or \"text\", true/false/null, lists of literals), "
    "references ($step or $step.path), comparisons (< <= > >= == != in, not in), "
    "and/or/not, parentheses, and + - * / % and unary minus on numbers."
)
"""The sentence every rejection ends with: what the language allows."""

_LITERAL_NAMES: dict[str, object] = {
    "true": True,
    "false": False,
    "null": None,
    "True": True,
    "False": False,
    "None": None,
}

_BINARY: dict[type[ast.operator], tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv),
    ast.Mod: ("%", operator.mod),
}

_COMPARE: dict[type[ast.cmpop], tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
    ast.Eq: ("==", operator.eq),
    ast.NotEq: ("!=", operator.ne),
    ast.In: ("in", lambda a, b: a in b),
    ast.NotIn: ("not in", lambda a, b: a not in b),
}

_REJECTED_OPERATORS = {
    ast.Pow: "'**' (power) is not allowed; multiply instead",
    ast.FloorDiv: "'//' is not allowed; use '/'",
    ast.MatMult: "'@' is not allowed",
    ast.LShift: "'<<' is not allowed",
    ast.RShift: "'>>' is not allowed",
    ast.BitOr: "'|' is not allowed; use 'or'",
    ast.BitXor: "'^' is not allowed",
    ast.BitAnd: "'&' is not allowed; use 'and'",
}

_REJECTED_NODES: dict[type[ast.AST], str] = {
    ast.Call: "calls are not allowed",
    ast.Attribute: (
        "attribute access is not allowed outside a reference path; write the path in the "
        "reference, such as $s1.level"
    ),
    ast.Subscript: (
        "subscripts are not allowed; write the index in the reference path, such as $s1.items.0"
    ),
    ast.IfExp: "conditional expressions (x if c else y) are not allowed; combine with and/or",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "generator expressions are not allowed",
    ast.Lambda: "lambdas are not allowed",
    ast.JoinedStr: "f-strings are not allowed; use a plain 'text' literal",
    ast.FormattedValue: "f-strings are not allowed; use a plain 'text' literal",
    ast.NamedExpr: "the walrus operator ':=' is not allowed",
    ast.Tuple: "tuples are not allowed; write a list such as [1, 2]",
    ast.Dict: "objects (dicts) are not allowed; only lists of literals",
    ast.Set: "sets are not allowed; write a list such as [1, 2]",
    ast.Starred: "'*' unpacking is not allowed",
    ast.Await: "'await' is not allowed",
    ast.Yield: "'yield' is not allowed",
    ast.YieldFrom: "'yield' is not allowed",
    ast.Slice: "slices are not allowed",
}

_WARNINGS_LOCK = threading.Lock()

_SKIPPED_CHILDREN = (ast.expr_context, ast.operator, ast.boolop, ast.cmpop, ast.unaryop)


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _show(value: object) -> str:
    """A short, never-failing description of a value: `None (NoneType)`."""
    try:
        text = repr(value)
    except Exception:
        text = "<unprintable>"
    return f"{_short(text, 40)} ({type(value).__name__})"


@dataclass(frozen=True, eq=False)
class Expression:
    """A parsed, checked expression, ready to evaluate any number of times.

    Attributes:
        text: The expression as written.
        references: The references it holds, in order of appearance
            (repeats kept), such as `(Reference("s2", ("level",), "$s2.level"),)`.
    """

    text: str
    references: tuple[Reference, ...]
    _tree: ast.expr = field(repr=False)
    _source: str = field(repr=False)
    _names: Mapping[str, Reference] = field(repr=False)

    def evaluate(self, outputs: Mapping[str, object]) -> object:
        """Return the value of the expression over step outputs.

        `and`/`or` short-circuit and return an operand, as in Python; a
        comparison chain returns the first false result or the last one.

        Args:
            outputs: Outputs of completed steps, keyed by step id.

        Returns:
            The value; the engine takes its truth value (see `is_true`).

        Raises:
            UnknownReferenceError: A reference names a step without output or
                a missing path segment.
            ExpressionError: An operation failed on the values it got, such
                as `None < 15`, a division by zero or arithmetic on text; the
                message names the expression, the operator and the operands
                with their types.
        """
        return self._eval(self._tree, outputs)

    def is_true(self, outputs: Mapping[str, object]) -> bool:
        """Return the truth value of `evaluate(outputs)`.

        Raises:
            UnknownReferenceError: As for `evaluate`.
            ExpressionError: As for `evaluate`, or the value has no truth
                value (a dataframe, say).
        """
        return self._truth(self.evaluate(outputs), self._tree)

    # --- evaluation -----------------------------------------------------

    def _segment(self, node: ast.AST) -> str:
        segment = ast.get_source_segment(self._source, node) or ""
        return _restore(segment, self._names)

    def _operand(self, node: ast.AST, value: object) -> str:
        if isinstance(node, ast.Constant):
            return _show(value)
        return f"{self._segment(node)!r} = {_show(value)}"

    def _fail(self, what: str, cause: BaseException | None = None) -> ExpressionError:
        error = ExpressionError(
            f"Expression {_short(self.text)!r} failed: {what}.", expression=self.text
        )
        error.__cause__ = cause
        return error

    def _truth(self, value: object, node: ast.AST) -> bool:
        try:
            return bool(value)
        except Exception as exc:
            raise self._fail(
                f"{self._segment(node)!r} gave {_show(value)}, which is neither true nor false "
                f"({type(exc).__name__}: {_short(str(exc), 60)}); compare it to a value instead",
                exc,
            ) from exc

    def _eval(self, node: ast.expr, outputs: Mapping[str, object]) -> object:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            reference = self._names.get(node.id)
            if reference is not None:
                return resolve_reference(reference, outputs)
            return _LITERAL_NAMES[node.id]
        if isinstance(node, ast.List):
            return [self._eval(item, outputs) for item in node.elts]
        if isinstance(node, ast.BoolOp):
            return self._eval_bool(node, outputs)
        if isinstance(node, ast.UnaryOp):
            operand = self._eval(node.operand, outputs)
            if isinstance(node.op, ast.Not):
                return not self._truth(operand, node.operand)
            return self._arith("-", operator.neg, node, [(node.operand, operand)])
        if isinstance(node, ast.BinOp):
            symbol, function = _BINARY[type(node.op)]
            left = self._eval(node.left, outputs)
            right = self._eval(node.right, outputs)
            return self._arith(symbol, function, node, [(node.left, left), (node.right, right)])
        if isinstance(node, ast.Compare):
            return self._eval_compare(node, outputs)
        raise AssertionError(f"unchecked node {type(node).__name__}")  # the checker forbids it

    def _eval_bool(self, node: ast.BoolOp, outputs: Mapping[str, object]) -> object:
        is_and = isinstance(node.op, ast.And)
        value: object = None
        for operand in node.values:
            value = self._eval(operand, outputs)
            if self._truth(value, operand) != is_and:
                return value
        return value

    def _eval_compare(self, node: ast.Compare, outputs: Mapping[str, object]) -> object:
        left_node: ast.expr = node.left
        left = self._eval(left_node, outputs)
        result: object = True
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = self._eval(right_node, outputs)
            symbol, function = _COMPARE[type(op)]
            try:
                result = function(left, right)
            except Exception as exc:
                raise self._fail(
                    f"cannot apply {symbol!r} to {self._operand(left_node, left)} "
                    f"and {self._operand(right_node, right)}; compare values of "
                    "the same kind (check the steps' outputs, or test for null first)",
                    exc,
                ) from exc
            if not self._truth(result, node):
                return result
            left_node, left = right_node, right
        return result

    def _arith(
        self,
        symbol: str,
        function: Callable[..., Any],
        node: ast.expr,
        operands: list[tuple[ast.expr, object]],
    ) -> object:
        shown = " and ".join(self._operand(n, v) for n, v in operands)
        for _, value in operands:
            if not _is_number(value):
                raise self._fail(
                    f"{symbol!r} works on numbers only, but got {shown}; "
                    "check the steps' outputs or compare instead"
                )
        try:
            return function(*(value for _, value in operands))
        except ZeroDivisionError as exc:
            raise self._fail(f"division by zero in {self._segment(node)!r} ({shown})", exc) from exc
        except Exception as exc:
            raise self._fail(
                f"{symbol!r} failed on {shown} ({type(exc).__name__}: {_short(str(exc), 60)})", exc
            ) from exc


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _restore(segment: str, names: Mapping[str, Reference]) -> str:
    """Put references back in place of their placeholder names."""
    for name, reference in names.items():
        if name in segment:
            segment = re.sub(rf" ?\b{re.escape(name)}\b ?", reference.text, segment)
    return segment.strip()


# --- parsing ----------------------------------------------------------------


def parse_expression(text: str) -> Expression:
    """Parse and check a `run_if` / `intervention_if` expression (cached).

    Args:
        text: The expression, such as `"$s1.breach_detected or $s2.level < 19.5"`;
            at most `MAX_EXPRESSION_CHARS` characters.

    Returns:
        The checked `Expression`.

    Raises:
        InvalidExpressionError: The text is not an expression of the plan
            language spec ("Expressions"): a syntax error, a construct that is
            not allowed (calls, attributes, subscripts, `**`, conditional
            expressions, comprehensions, lambdas, f-strings, walrus, bare
            names, ...), a malformed reference, or over the length or depth
            limit. The message says what was wrong and ends with `ALLOWED`.
    """
    if not isinstance(text, str):
        raise InvalidExpressionError(
            f"An expression must be a string; got {type(text).__name__}. {ALLOWED}",
            expression=repr(text),
        )
    return _parse_cached(text)


@functools.lru_cache(maxsize=2048)
def _parse_cached(text: str) -> Expression:
    return _Parser(text).parse()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.names: dict[str, Reference] = {}
        self.source = ""  # the rewritten text, stripped: what `ast` parses
        self.lead = 0  # characters stripped from the front of the rewritten text
        # (index in source, index in text) where each copied run starts
        self.offsets: list[tuple[int, int]] = [(0, 0)]

    def reject(self, what: str) -> InvalidExpressionError:
        return InvalidExpressionError(
            f"Expression {_short(self.text)!r}: {what}. {ALLOWED}", expression=self.text
        )

    def parse(self) -> Expression:
        text = self.text
        if len(text) > MAX_EXPRESSION_CHARS:
            raise self.reject(
                f"it is {len(text)} characters long; the limit is {MAX_EXPRESSION_CHARS}. "
                "Split the condition or compute it in a step"
            )
        if not text.strip():
            raise self.reject("it is empty; write a condition such as $s2.level < 15")
        rewritten = self.rewrite()
        self.lead = len(rewritten) - len(rewritten.lstrip())
        self.source = rewritten.strip()
        tree = self.parse_source()
        self.check_depth(tree)
        self.check(tree)
        return Expression(
            text=text,
            references=tuple(self.names.values()),
            _tree=tree,
            _source=self.source,
            _names=dict(self.names),
        )

    def rewrite(self) -> str:
        """Replace references outside string literals by placeholder names."""
        text = self.text
        prefix = "_ref"
        normalized = unicodedata.normalize("NFKC", text)
        while prefix in normalized:
            prefix += "_"
        out: list[str] = []
        size = 0
        index = 0
        while index < len(text):
            char = text[index]
            if char in "'\"":
                if _is_f_string(text, index):
                    raise self.reject(
                        "f-strings are not allowed; use a plain 'text' literal, and compare "
                        "references directly"
                    )
                end = _string_end(text, index)
            elif char == "#":
                raise self.reject(
                    f"'#' at position {index} starts a comment, which is not allowed; "
                    "put '#' inside quotes to mean the character"
                )
            elif char == "$":
                if text.startswith("$$", index):
                    raise self.reject(
                        f"'$$' at position {index} is outside quotes; outside quotes '$' "
                        "starts a reference, inside quotes it is plain text"
                    )
                reference, end, error = match_reference(text, index)
                if reference is None:
                    raise self.reject(
                        f"'$' at position {index} does not start a reference; outside quotes "
                        "'$' always starts one, such as $s1 or $s1.level (inside quotes it "
                        "is plain text)"
                    )
                if error is not None:
                    raise self.reject(error.rstrip("."))
                name = f"{prefix}{len(self.names)}"
                self.names[name] = reference
                piece = f" {name} "
                out.append(piece)
                size += len(piece)
                index = end
                self.offsets.append((size, index))
                continue
            else:
                end = index + 1
            out.append(text[index:end])
            size += end - index
            index = end
        return "".join(out)

    def parse_source(self) -> ast.expr:
        try:
            # `ast.parse` warns about odd escapes in literals ('\d'); the text is
            # checked below, so the warning says nothing. The lock keeps our own
            # threads from interleaving their save/restore of the filters.
            with _WARNINGS_LOCK, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = ast.parse(self.source, mode="eval")
        except SyntaxError as exc:
            raise self.reject(f"it is not valid syntax ({exc.msg}{self.where(exc)})") from None
        except (ValueError, RecursionError, MemoryError, OverflowError) as exc:
            message = str(exc) or type(exc).__name__
            raise self.reject(f"it cannot be parsed ({_short(message, 60)})") from None
        return tree.body

    def where(self, exc: SyntaxError) -> str:
        if not exc.lineno or not exc.offset:
            return ""
        lines = self.source.split("\n")
        if exc.lineno > len(lines):
            return ""
        position = (
            self.lead + sum(len(line) + 1 for line in lines[: exc.lineno - 1]) + exc.offset - 1
        )
        original = 0
        for source_at, text_at in self.offsets:
            if source_at <= position:
                original = text_at + (position - source_at)
        original = min(max(original, 0), len(self.text))
        near = self.text[original : original + 12]
        return f" at position {original}, near {near!r}" if near else " at the end"

    def check_depth(self, tree: ast.expr) -> None:
        stack: list[tuple[ast.AST, int]] = [(tree, 1)]
        while stack:
            node, depth = stack.pop()
            if depth > MAX_EXPRESSION_DEPTH:
                raise self.reject(
                    f"it is nested deeper than {MAX_EXPRESSION_DEPTH} levels; simplify it "
                    "(a + b + c counts as two levels) or compute part of it in a step"
                )
            stack.extend(
                (child, depth + 1)
                for child in ast.iter_child_nodes(node)
                if not isinstance(child, _SKIPPED_CHILDREN)
            )

    def within(self, node: ast.AST) -> str:
        """` (in '...')` naming the part of the expression, unless it is all of it."""
        segment = self.segment(node)
        return "" if segment == _short(self.text.strip(), 60) else f" (in {segment!r})"

    def segment(self, node: ast.AST) -> str:
        segment = ast.get_source_segment(self.source, node) or type(node).__name__
        return _short(_restore(segment, self.names), 60)

    def check(self, node: ast.expr) -> None:
        if isinstance(node, ast.Constant):
            self.check_constant(node)
        elif isinstance(node, ast.Name):
            if node.id not in self.names and node.id not in _LITERAL_NAMES:
                raise self.reject(
                    f"the name {node.id!r} is not allowed; names are only true, false, null "
                    f"(or True, False, None). For a step's output write ${node.id}, "
                    f"for text write '{node.id}'"
                )
        elif isinstance(node, ast.List):
            for item in node.elts:
                if not _is_literal(item):
                    raise self.reject(
                        f"the list {self.segment(node)!r} holds {self.segment(item)!r}; lists "
                        "hold only literals (numbers, text, true/false/null, lists)"
                    )
                self.check(item)
        elif isinstance(node, ast.BoolOp):
            for value in node.values:
                self.check(value)
        elif isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.UAdd):
                raise self.reject(f"unary '+' in {self.segment(node)!r} is not allowed")
            if isinstance(node.op, ast.Invert):
                raise self.reject(f"'~' in {self.segment(node)!r} is not allowed; use 'not'")
            if isinstance(node.op, ast.USub):
                self.check_number_operand(node.operand, "-")
            self.check(node.operand)
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BINARY:
                reason = _REJECTED_OPERATORS.get(type(node.op), "this operator is not allowed")
                raise self.reject(f"{reason}{self.within(node)}")
            symbol = _BINARY[type(node.op)][0]
            for side in (node.left, node.right):
                self.check_number_operand(side, symbol)
                self.check(side)
        elif isinstance(node, ast.Compare):
            for op in node.ops:
                if isinstance(op, ast.Is | ast.IsNot):
                    word = "is not" if isinstance(op, ast.IsNot) else "is"
                    other = "!=" if isinstance(op, ast.IsNot) else "=="
                    raise self.reject(f"{word!r} is not allowed; use {other!r}")
            for side in (node.left, *node.comparators):
                self.check(side)
        else:
            reason = _REJECTED_NODES.get(type(node), f"{type(node).__name__} is not allowed")
            raise self.reject(f"{reason}{self.within(node)}")

    def check_constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bool) or value is None:
            return
        if isinstance(value, int | float | str):
            return
        kind = {bytes: "a bytes literal", complex: "a complex number"}.get(type(value))
        if value is Ellipsis:
            kind = "'...' (Ellipsis)"
        raise self.reject(f"{kind or type(value).__name__} is not allowed")

    def check_number_operand(self, node: ast.expr, symbol: str) -> None:
        literal = _literal_kind(node)
        if literal is not None:
            raise self.reject(
                f"{symbol!r} works on numbers only, but {self.segment(node)!r} is {literal}"
            )


def _literal_kind(node: ast.expr) -> str | None:
    """The kind of a literal that is not a number (`"text"`, ...), else `None`."""
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or value is None:
            return "a boolean" if isinstance(value, bool) else "null"
        if isinstance(value, str):
            return "text"
        return None
    if isinstance(node, ast.Name) and node.id in _LITERAL_NAMES:
        return "null" if _LITERAL_NAMES[node.id] is None else "a boolean"
    if isinstance(node, ast.List):
        return "a list"
    return None


def _is_literal(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Name):
        return node.id in _LITERAL_NAMES
    if isinstance(node, ast.List):
        return all(_is_literal(item) for item in node.elts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return isinstance(node.operand, ast.Constant)
    return False


def _is_f_string(text: str, quote_at: int) -> bool:
    """Whether the quote at `quote_at` opens an f-string (`f'`, `rf"`, `Fr'` ...)."""
    start = quote_at
    while start > 0 and text[start - 1].isalpha() and quote_at - start < 2:
        start -= 1
    prefix = text[start:quote_at].lower()
    if prefix not in {"f", "rf", "fr"}:
        return False
    return start == 0 or not (text[start - 1].isalnum() or text[start - 1] == "_")


def _string_end(text: str, start: int) -> int:
    """Index just after the string literal that opens at `text[start]`.

    Handles single, double and triple quotes and backslash escapes; an
    unterminated literal ends at the line's end (the parser reports it).
    """
    quote = text[start]
    delimiter = quote * 3 if text.startswith(quote * 3, start) else quote
    index = start + len(delimiter)
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if text.startswith(delimiter, index):
            return index + len(delimiter)
        if char == "\n" and len(delimiter) == 1:
            return index
        index += 1
    return len(text)
