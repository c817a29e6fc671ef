"""Benchmark of plan language 2: a `map` step against `asyncio.gather`, a sub-plan's overhead.

Run with `uv run python benchmarks/plan_language.py` (`--quick` for a smoke
run). Prints a table, then one JSON object with every figure. Times are
medians over repetitions, in one process on one machine.

What it measures (issue 16, "Tests and benchmark"):
- `map` over 1,000 items of a coroutine tool sleeping 50 ms (`map_concurrency`
  1,000, so nothing but the event loop bounds it), against `asyncio.gather`
  of the same 1,000 calls. Two ratios: the map step alone (its
  `STEP_COMPLETE` duration, measured inside the run, against `gather` timed
  inside a running loop) and the whole run (`execute_plan_sync`, with
  validation, compilation, `START`/`FINISH`, against `asyncio.run(gather)`).
  Target: the step within 1.1x of `gather`.
- a sub-plan step: a plan whose one step runs a sub-plan of N no-op steps,
  against the same N steps inlined in the parent, per run (overhead in ms).

The functions are importable (`bench_map`, `bench_subplan`, `main`) so that
`benchmarks/engine.py` can call them and merge the figures into its report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from typing import Any

from marimo_engine import EventType, execute_plan_sync
from marimo_engine.plans.subplans import PlanLibrary

__all__ = ["bench_map", "bench_subplan", "main"]


async def asleep(seconds: float, index: int = 0) -> int:
    """A coroutine tool: sleep `seconds` on the event loop, return `index`."""
    await asyncio.sleep(seconds)
    return index


def items(count: int) -> list[int]:
    """The list a map step runs over: `0 .. count - 1`."""
    return list(range(count))


async def anoop(x: Any = None) -> Any:
    """A coroutine tool that returns its input."""
    return x


def map_plan(count: int, seconds: float) -> dict[str, Any]:
    """A plan: a list of `count` items, then a map of `asleep` over it."""
    return {
        "id": "bench-map",
        "steps": [
            {"id": "list", "tool": "items", "args": {"count": count}},
            {
                "id": "each",
                "tool": "asleep",
                "map": "$list",
                "map_concurrency": count,
                "args": {"seconds": seconds, "index": "$item"},
            },
        ],
    }


async def _gather(count: int, seconds: float) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(asleep(seconds, i) for i in range(count)))
    return time.perf_counter() - started


def bench_map(count: int = 1000, seconds: float = 0.05, reps: int = 7) -> dict[str, Any]:
    """Time a map step of `count` calls against `asyncio.gather` of the same calls.

    Returns:
        `{"items", "sleep_s", "gather_s", "gather_run_s", "map_step_s",
        "map_run_s", "step_ratio", "run_ratio"}`: medians in seconds;
        `step_ratio` is the map step's duration over `gather`'s (inside a
        running loop), `run_ratio` the whole `execute_plan_sync` over
        `asyncio.run(gather)`.
    """
    tools = {"asleep": asleep, "items": items}
    plan = map_plan(count, seconds)
    execute_plan_sync(plan, tools, max_workers=count)  # warm: compiled cells cached
    gather_s, gather_run_s, step_s, run_s = [], [], [], []
    for _ in range(reps):
        started = time.perf_counter()
        gather_s.append(asyncio.run(_gather(count, seconds)))
        gather_run_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        result = execute_plan_sync(plan, tools, max_workers=count)
        run_s.append(time.perf_counter() - started)
        assert result.succeeded and result.outputs["each"] == list(range(count)), result.error
        complete = next(
            e for e in result.events if e.type is EventType.STEP_COMPLETE and e.step_id == "each"
        )
        step_s.append(complete.duration_s or 0.0)
    figures = {
        "items": count,
        "sleep_s": seconds,
        "gather_s": statistics.median(gather_s),
        "gather_run_s": statistics.median(gather_run_s),
        "map_step_s": statistics.median(step_s),
        "map_run_s": statistics.median(run_s),
    }
    figures["step_ratio"] = figures["map_step_s"] / figures["gather_s"]
    figures["run_ratio"] = figures["map_run_s"] / figures["gather_run_s"]
    return figures


def _steps(n: int, prefix: str, first_arg: Any) -> list[dict[str, Any]]:
    steps = []
    for i in range(n):
        x = first_arg if i == 0 else f"${prefix}{i - 1}"
        steps.append({"id": f"{prefix}{i}", "tool": "anoop", "args": {"x": x}})
    return steps


def bench_subplan(steps: int = 10, reps: int = 15) -> dict[str, Any]:
    """Time a sub-plan step of `steps` no-op steps against the same steps inlined.

    Returns:
        `{"steps", "inline_s", "subplan_s", "overhead_ms"}`: medians of a
        whole run in seconds; `overhead_ms` is the sub-plan's cost in ms.
    """
    tools = {"anoop": anoop}
    inline = {"id": "inline", "steps": [{"id": "p0", "tool": "anoop", "args": {"x": 1}}]}
    inline["steps"] += _steps(steps, "c", "$p0")
    child = {"id": "child", "inputs": {"x": {}}, "steps": _steps(steps, "c", "$input.x")}
    parent = {
        "id": "parent",
        "steps": [
            {"id": "p0", "tool": "anoop", "args": {"x": 1}},
            {"id": "sub", "plan": "child", "args": {"x": "$p0"}},
        ],
    }
    library = PlanLibrary({"child": child})
    for _ in range(2):  # warm both
        execute_plan_sync(inline, tools)
        execute_plan_sync(parent, tools, plans=library)
    inline_s, sub_s = [], []
    for _ in range(reps):
        started = time.perf_counter()
        assert execute_plan_sync(inline, tools).succeeded
        inline_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        result = execute_plan_sync(parent, tools, plans=library)
        sub_s.append(time.perf_counter() - started)
        assert result.succeeded, result.error
    figures = {
        "steps": steps,
        "inline_s": statistics.median(inline_s),
        "subplan_s": statistics.median(sub_s),
    }
    figures["overhead_ms"] = (figures["subplan_s"] - figures["inline_s"]) * 1000
    return figures


def main(argv: list[str] | None = None) -> int:
    """Run both benchmarks and print their figures (a table, then one JSON line)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer items and repetitions")
    args = parser.parse_args(argv)
    if args.quick:
        mapped = bench_map(count=200, reps=2)
        sub = bench_subplan(steps=5, reps=3)
    else:
        mapped = bench_map()
        sub = bench_subplan()
    print(f"map over {mapped['items']} items of a {mapped['sleep_s'] * 1000:.0f} ms coroutine:")
    print(
        f"  asyncio.gather {mapped['gather_s'] * 1000:8.1f} ms   map step "
        f"{mapped['map_step_s'] * 1000:8.1f} ms   ratio {mapped['step_ratio']:.3f}x (target 1.1x)"
    )
    print(
        f"  asyncio.run    {mapped['gather_run_s'] * 1000:8.1f} ms   whole run "
        f"{mapped['map_run_s'] * 1000:7.1f} ms   ratio {mapped['run_ratio']:.3f}x"
    )
    print(f"sub-plan of {sub['steps']} steps against the same steps inlined:")
    print(
        f"  inline {sub['inline_s'] * 1000:8.2f} ms   sub-plan {sub['subplan_s'] * 1000:8.2f} ms"
        f"   overhead {sub['overhead_ms']:.2f} ms"
    )
    print(json.dumps({"map": mapped, "subplan": sub}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
