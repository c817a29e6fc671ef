"""The plan's JSON schema, published as a file in the package.

`plan_json_schema()` builds it from the `Plan` model (the one source of the
plan language's fields, their types, ranges and descriptions);
`plan.schema.json`, next to this module, is that schema as committed text, so
that editors can point a plan's `"$schema"` at it and autocomplete, and a
test keeps the file equal to the model. `marimo-engine schema` prints the
file; the planner agent's model gets the same schema as its output tool's
parameters (`model_plan_schema`, without the parts that describe the file
rather than the plan).

Regenerate the file after changing `Plan` or `Step`:

    uv run python -m marimo_engine.plans.json_schema > src/marimo_engine/plans/plan.schema.json
"""

from __future__ import annotations

import copy
import json
from typing import Any

__all__ = [
    "SCHEMA_FILE",
    "SCHEMA_ID",
    "model_plan_schema",
    "plan_json_schema",
    "plan_json_schema_text",
    "published_plan_schema_text",
]

SCHEMA_FILE = "plan.schema.json"
"""The published schema's file name, in the `marimo_engine.plans` package."""

SCHEMA_ID = "https://marimo-engine.dev/schemas/plan.schema.json"
"""The schema's `$id`: a name for it, not a place it must be fetched from."""

_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def plan_json_schema() -> dict[str, Any]:
    """Return the JSON schema (draft 2020-12) of a plan, generated from `Plan`.

    Returns:
        `Plan.model_json_schema()` (field names as plans spell them, such
        as `"schema"`), with `$schema`, `$id`, a title and a description, and
        the optional top-level `"$schema"` key a plan may hold (the path or
        URL of this schema; `load_plan` ignores it).
    """
    from marimo_engine.plans.schema import SCHEMA_KEY, Plan

    body = Plan.model_json_schema(by_alias=True)
    schema: dict[str, Any] = {
        "$schema": _DIALECT,
        "$id": SCHEMA_ID,
        "title": "marimo-engine plan",
        "description": (
            "A plan of the marimo-engine plan language (docs/plan-language.md): a name and "
            "at least one step. Each step calls a tool or is a markdown text."
        ),
    }
    # The title and description are the plan's, not the model class's docstring.
    schema.update(
        {key: value for key, value in body.items() if key not in ("title", "description")}
    )
    properties = {
        SCHEMA_KEY: {
            "type": "string",
            "description": "The path or URL of this JSON schema, for editors; ignored.",
        }
    }
    properties.update(schema.get("properties", {}))
    schema["properties"] = properties
    return schema


def plan_json_schema_text() -> str:
    """Return `plan_json_schema()` as the published file's text: indented, keys sorted."""
    return json.dumps(plan_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def published_plan_schema_text() -> str:
    """Return the text of the published file `plan.schema.json` in the package.

    Raises:
        FileNotFoundError: The package was installed without it (a broken build).
    """
    from importlib.resources import files

    return files("marimo_engine.plans").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


def model_plan_schema() -> dict[str, Any]:
    """Return the schema of the plans a planner's model submits: the published one.

    Left out: the `$schema`, `$id` keywords and the plan's `"$schema"` key
    (they describe the file, not the plan) and the plan's `id` (the engine
    generates it). Everything else, every step field and its description,
    is the published schema's.
    """
    from marimo_engine.plans.schema import SCHEMA_KEY

    schema = copy.deepcopy(json.loads(published_plan_schema_text()))
    for key in ("$schema", "$id"):
        schema.pop(key, None)
    schema.get("properties", {}).pop(SCHEMA_KEY, None)
    schema.get("properties", {}).pop("id", None)
    return schema


if __name__ == "__main__":  # pragma: no cover - the regeneration command in the docstring
    import sys

    sys.stdout.write(plan_json_schema_text())
