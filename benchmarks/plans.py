"""Benchmark: validation and compilation stay linear in the size of the plan.

Prints seconds for plans of growing size and the ratio between sizes: a
ratio near the size ratio (10x) is linear; near its square (100x) would be
quadratic. Cases:

- validating a valid chain of N steps;
- validating a broken chain of N steps (an unknown reference and an unknown
  argument in every step, and a cycle), which once built the "known steps"
  hint per problem (10.8 s at 30,000 steps);
- compiling a step whose argument is a run of N backticks, which once
  searched for the Markdown fence quadratically (about 2 minutes at 400,000).

Run: `uv run python benchmarks/plans.py` (`--quick` for smaller sizes).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any


def chain(n: int, *, broken: bool) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"id": "s0", "tool": "check_oxygen"}]
    for i in range(1, n):
        args: dict[str, Any] = {"o2_level": f"$s{i - 1}.level"}
        if broken:
            args["typo"] = f"$nowhere{i}"
        steps.append({"id": f"s{i}", "tool": "check_oxygen", "args": args})
    if broken:
        steps[0]["depends_on"] = [f"s{n - 1}"]
    return {"id": "bench", "steps": steps}


def seconds(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main(argv: list[str]) -> int:
    from marimo_engine import plan_to_notebook, validate_plan
    from marimo_engine.tools.examples import example_registry

    quick = "--quick" in argv
    sizes = [300, 3_000] if quick else [3_000, 30_000]
    runs = [400, 40_000] if quick else [40_000, 400_000]
    registry = example_registry()
    rows: list[tuple[str, list[int], list[float]]] = []
    for broken in (False, True):
        name = "validate broken chain" if broken else "validate valid chain"
        times = [
            seconds(lambda n=n, b=broken: validate_plan(chain(n, broken=b), registry))
            for n in sizes
        ]
        rows.append((name, sizes, times))
    backtick_times = [
        seconds(
            lambda n=n: plan_to_notebook(
                {"steps": [{"id": "s1", "tool": "t", "args": {"a": "`" * n}}]}
            )
        )
        for n in runs
    ]
    rows.append(("compile backtick run", runs, backtick_times))
    for name, ns, times in rows:
        ratio = times[1] / times[0] if times[0] > 0 else float("inf")
        figures = ", ".join(f"N={n:,}: {t:.3f} s" for n, t in zip(ns, times, strict=True))
        print(f"{name:24} {figures}  ratio {ratio:.1f}x for {ns[1] // ns[0]}x the size")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
