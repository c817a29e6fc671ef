"""Where a sub-plan step's `"plan": "NAME_OR_PATH"` is found: `PlanLibrary`.

The rule (`docs/plan-language.md`, "Sub-plans"), in this order:

1. a plan given to the run by name (`PlanLibrary(plans={"name": plan})`);
2. an example plan shipped with marimo-engine (`marimo_engine.examples`);
3. a plan file: a name that ends with `.json` or holds a `/` is a path,
   relative to the directory of the plan that names it (the library's
   `base_dir` for the top plan: the directory of its file, else the current
   directory); a sub-plan's own sub-plans are found next to its file.

Each resolved plan has a `key` (`name:NAME`, `example:NAME` or the file's
absolute path) so that recursion (a plan that runs itself through any chain
of sub-plans) is found at validation by the keys on the chain.

What a library resolved can be written down (`to_json`) and read back
(`PlanLibrary.from_json`): the run journal keeps the sub-plans a run used,
so that a resume or a rerun runs the same ones (docs/runs.md). A library
read back answers what it holds from there, before the rule above.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from marimo_engine.errors import UsageError

if TYPE_CHECKING:
    from marimo_engine.plans.schema import Plan

__all__ = ["PlanLibrary", "ResolvedPlan", "as_library"]


@dataclass(frozen=True)
class ResolvedPlan:
    """A sub-plan, found.

    Attributes:
        plan: The parsed plan.
        key: What names it uniquely (`name:X`, `example:X`, an absolute path).
        base_dir: The directory its own sub-plan files are found in.
    """

    plan: Plan
    key: str
    base_dir: Path


class PlanLibrary:
    """The plans a run's sub-plan steps may name.

    Args:
        plans: Plans by name (each a `Plan`, a dict or JSON text); `None` for none.
        base_dir: The directory of the top plan's file, where its sub-plan
            files are found; `None` is the current directory.

    Raises:
        UsageError: A name in `plans` is not a string.
    """

    def __init__(
        self,
        plans: Mapping[str, Plan | Mapping[str, Any] | str] | None = None,
        *,
        base_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._plans: dict[str, Any] = {}
        for name, plan in (plans or {}).items():
            if not isinstance(name, str) or not name:
                raise UsageError(f"Plan names must be non-empty strings; got {name!r}.")
            self._plans[name] = plan
        self.base_dir = Path(base_dir) if base_dir is not None else None
        # (name, directory it was read from) to the plan found; shared with `at`'s libraries
        self._cache: dict[tuple[str, str], ResolvedPlan] = {}

    def at(self, base_dir: str | os.PathLike[str]) -> PlanLibrary:
        """This library as seen from another directory (a sub-plan's own sub-plans).

        Args:
            base_dir: The directory of the plan whose sub-plan steps it serves.

        Returns:
            A library with the same plans by name and the same plans found so
            far (one cache: what any of them resolves, all of them know).
        """
        other = PlanLibrary(self._plans, base_dir=base_dir)
        other._cache = self._cache
        return other

    def to_json(self) -> str | None:
        """What this library (and those from `at`) resolved so far, as JSON text.

        Returns:
            `{"base_dir": D, "plans": [{"name", "where", "key", "base_dir",
            "plan"}, ...]}` (`D` the directory top-level names were read from,
            `plan` the plan as JSON data), or `None` when nothing was resolved.
        """
        if not self._cache:
            return None
        found = [
            {
                "name": name,
                "where": where,
                "key": resolved.key,
                "base_dir": str(resolved.base_dir),
                "plan": json.loads(resolved.plan.model_dump_json(exclude_defaults=True)),
            }
            for (name, where), resolved in self._cache.items()
        ]
        root = str(self.base_dir or Path.cwd())
        return json.dumps({"base_dir": root, "plans": found}, ensure_ascii=False)

    @classmethod
    def from_json(
        cls, text: str, plans: Mapping[str, Plan | Mapping[str, Any] | str] | None = None
    ) -> PlanLibrary:
        """A library that resolves what `to_json` wrote as it was resolved then.

        Names it holds are answered from `text`, whatever is in the files or
        the examples now; others follow the rule (module docstring) from the
        directory top-level names were read from then.

        Args:
            text: What `to_json` returned.
            plans: Plans by name for names `text` does not hold.

        Raises:
            ValueError: `text` is not what `to_json` writes.
            PlanValidationError: A plan in it no longer parses (a newer format).
        """
        from marimo_engine.plans.schema import load_plan

        data = json.loads(text)
        library = cls(plans, base_dir=data["base_dir"])
        for item in data["plans"]:
            library._cache[(item["name"], item["where"])] = ResolvedPlan(
                load_plan(item["plan"]), item["key"], Path(item["base_dir"])
            )
        return library

    @property
    def given(self) -> dict[str, Any]:
        """The plans given by name (a copy)."""
        return dict(self._plans)

    def names(self) -> list[str]:
        """The names of the plans given by name, then of the example plans."""
        from marimo_engine.examples import example_names

        return [*self._plans, *(n for n in example_names() if n not in self._plans)]

    def resolve(self, name: str, base_dir: Path | None = None) -> ResolvedPlan:
        """Find the plan that a step's `"plan"` names.

        Args:
            name: The step's `plan` value.
            base_dir: The directory of the plan holding the step (`None`: the
                library's `base_dir`, else the current directory).

        Returns:
            The `ResolvedPlan` (cached: the same name finds the same object).

        Raises:
            LookupError: Nothing of that name; the message lists what exists.
            PlanValidationError: The file or the given plan is not a plan
                (its problems, as `load_plan` reports them).
        """
        from marimo_engine.plans.schema import load_plan

        where = base_dir or self.base_dir or Path.cwd()
        cache_key = (name, str(where))
        if cache_key in self._cache:
            return self._cache[cache_key]
        if name in self._plans:
            found = ResolvedPlan(load_plan(self._plans[name]), f"name:{name}", where)
        elif _is_path(name):
            path = (where / name).resolve()
            if not path.is_file():
                raise LookupError(
                    f"There is no plan file {str(path)!r} (the path {name!r} is read from "
                    f"{str(where)!r}, the directory of the plan that names it)."
                )
            try:
                text = path.read_bytes()
            except OSError as exc:
                raise LookupError(f"The plan file {str(path)!r} cannot be read: {exc}.") from exc
            found = ResolvedPlan(load_plan(text), str(path), path.parent)
        else:
            from marimo_engine.examples import example_names, load_example

            if name not in example_names():
                import difflib

                names = self.names()
                close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                shown = ", ".join(repr(n) for n in names[:20]) or "none"
                raise LookupError(
                    f"There is no plan {name!r}.{hint} Plans: {shown}; or name a plan file "
                    "next to this plan, such as 'clean.json'."
                )
            found = ResolvedPlan(load_plan(load_example(name)), f"example:{name}", where)
        self._cache[cache_key] = found
        return found


def _is_path(name: str) -> bool:
    return name.endswith(".json") or "/" in name or os.sep in name


def as_library(plans: PlanLibrary | Mapping[str, Any] | None) -> PlanLibrary:
    """Return `plans` as a `PlanLibrary` (a mapping is plans by name; `None`: no names).

    Raises:
        UsageError: `plans` is neither.
    """
    if isinstance(plans, PlanLibrary):
        return plans
    if plans is None or isinstance(plans, Mapping):
        return PlanLibrary(plans)
    raise UsageError(
        f"plans must be a PlanLibrary or a mapping of names to plans, got {type(plans).__name__}."
    )
