"""Text from plans, models and tools, made safe for the page's markdown and chat.

A plan's name, an error message, a person's reason or a model's plan end up
in `mo.md` and in chat messages: they are shown as written, never read as
markup.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["fenced_json", "md_code", "md_text", "pretty_json"]

_ENTITIES = {ch: f"&#{ord(ch)};" for ch in "\\`*_{}[]()#+-.!|$~=:^"}


def md_text(value: Any) -> str:
    """Text from a plan, a model or a tool, safe to put in `mo.md`: shown as written.

    HTML is escaped (`<` becomes `&lt;`), and every character markdown (or
    marimo's LaTeX: `$...$`, `\\(...\\)`, `\\[...\\]`) reads as syntax is
    written as its HTML character reference, so a plan name, an error
    message or a person's reason can neither inject markup into the page
    nor change how it is laid out.

    Returns:
        The escaped text.
    """
    import html

    text = html.escape(str(value), quote=False)
    return "".join(_ENTITIES.get(ch, ch) for ch in text)


def md_code(value: Any) -> str:
    """An inline code span of `value` for `mo.md` (backticks in it become `'`)."""
    return "`" + str(value).replace("`", "'").replace("\n", " ") + "`"


def fenced_json(value: Any) -> str:
    """A fenced JSON block for a chat message.

    Backticks (only possible inside JSON strings) are written `\\u0060`, so
    no text from the plan can close the fence early.
    """
    return (
        "```json\n"
        + json.dumps(value, indent=2, ensure_ascii=False).replace("`", "\\u0060")
        + "\n```"
    )


def pretty_json(value: Any) -> str:
    """JSON text of a value for the page (the engine's JSON fallback for the rest)."""
    from marimo_engine._json import to_jsonable

    return json.dumps(to_jsonable(value), indent=2, ensure_ascii=False)
