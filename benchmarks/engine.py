"""Benchmark of the plan engine against its floors and peers: first runs, repeat runs, scale,
fan-out and memory.

Run with `uv sync --frozen --group bench` (LangGraph is a benchmark-only
dependency), then `uv run python benchmarks/engine.py` (about 5 minutes on
2 busy cores; `--quick` for a smoke run, `--rounds R` for more rounds).
Prints tables, the issue's "done when" figures with met / not met, and last
one JSON object with every figure (`--json-out FILE` also writes it).

How it measures (marimo-engine issue 19):

- **Interleaved, round by round.** Each round runs every system once, in an
  order that rotates from round to round, so load from other work on the
  machine falls on all of them alike. Figures are medians over rounds;
  ratios are **paired**: the ratio within each round, then the median.
- **CPU and wall time.** CPU is the process's (`time.process_time`, all
  threads), which other work on the machine disturbs less; wall time is
  what a caller waits. Fan-out figures are wall time (the floors sleep).
- **First runs and repeat runs, apart.** A first run is what a new plan
  costs: the engine validates and compiles it, and marimo compiles its
  cells (its plan id was never run before, marimo's compiled cell shapes
  are cleared first, and its cache entry is dropped after it: the plans of
  the repeat runs beside it stay prepared); a repeat run finds the plan prepared;
  LangGraph builds and compiles its graph; marimo loads its notebook. A
  repeat run runs the same plan (compiled graph, loaded app) again.
  Imports are paid before any measurement.
- **Floors.** The asyncio floor awaits the same coroutines in a plain loop
  (`asyncio.gather` for a fan-out); the thread-hop floor sends each call to
  a thread pool and back (`run_in_executor`), the least any engine that
  keeps plain functions off the event loop pays; the thread-pool floor runs
  K blocking calls on K threads.

Plan language 2 figures come from `benchmarks/plan_language.py` (`bench_map`,
`bench_subplan`), under "map" and "subplan" in the JSON: a map step against
`asyncio.gather` (`step_ratio`, `run_ratio`) and a sub-plan step's overhead
against the same steps inlined (`overhead_ms`).

Workloads: chains of N no-op steps (each reads the previous output), with
plain-function tools (run in worker threads) and coroutine tools; fan-outs
of K steps sleeping 50 ms, then one step reading them all; a chain of 10
steps passing a 10^6-row DataFrame along (peak traced memory, tracemalloc).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import gc
import json
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

# plan language 2 (a map step against asyncio.gather, a sub-plan's overhead): its own
# script, importable because `python benchmarks/engine.py` puts benchmarks/ on sys.path
from plan_language import bench_map, bench_subplan

from marimo_engine import execute_plan_sync
from marimo_engine.engine import _plan_cache
from marimo_engine.engine._cells import _template


def first_run(plan: dict[str, Any]) -> Any:
    """Run `plan` (an id never run before) as a first run, leaving the caches as they were.

    marimo compiles its cell shapes afresh (that cache is read only when a
    plan is compiled), and the plan's own cache entry is dropped after it,
    so the plans of the repeat runs measured beside it stay prepared: a
    repeat run is never a first run in disguise.
    """
    from marimo_engine.tools.registry import as_registry

    _template.cache_clear()
    try:
        return engine_run(plan)
    finally:
        _plan_cache.discard(_plan_cache.cache_key(plan, as_registry(TOOLS)))


# -- tools and plans -------------------------------------------------------------------------


def noop(x: Any = None) -> Any:
    """A plain-function tool that returns its input."""
    return x


async def anoop(x: Any = None) -> Any:
    """A coroutine tool that returns its input."""
    return x


async def asleep(seconds: float) -> float:
    """Sleep on the event loop."""
    await asyncio.sleep(seconds)
    return seconds


def bsleep(seconds: float) -> float:
    """Block a thread."""
    time.sleep(seconds)
    return seconds


def join(**values: Any) -> int:
    """Read every fanned-out output."""
    return len(values)


ROWS = 1_000_000


def make_frame() -> Any:
    """A 10^6-row DataFrame of three float columns (24 MB)."""
    import numpy as np
    import pandas as pd

    values = np.arange(ROWS, dtype="float64")
    return pd.DataFrame({"a": values, "b": values * 2, "c": values * 3})


def shift(df: Any) -> Any:
    """A new frame from the old one (the old one is no longer needed by this step)."""
    return df + 1.0


TOOLS = {
    "noop": noop,
    "anoop": anoop,
    "asleep": asleep,
    "bsleep": bsleep,
    "join": join,
    "make_frame": make_frame,
    "shift": shift,
}


def chain_plan(n: int, tool: str, plan_id: str | None = None) -> dict[str, Any]:
    steps = [{"id": "s0", "tool": tool}]
    steps += [{"id": f"s{i}", "tool": tool, "args": {"x": f"$s{i - 1}"}} for i in range(1, n)]
    return {"id": plan_id or f"chain-{tool}-{n}", "steps": steps}


def fan_out_plan(k: int, tool: str, seconds: float) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [
        {"id": f"w{i}", "tool": tool, "args": {"seconds": seconds}} for i in range(k)
    ]
    steps.append({"id": "join", "tool": "join", "args": {f"v{i}": f"$w{i}" for i in range(k)}})
    return {"id": f"fan-{tool}-{k}", "steps": steps}


def frame_plan(steps: int) -> dict[str, Any]:
    plan_steps: list[dict[str, Any]] = [{"id": "f0", "tool": "make_frame"}]
    plan_steps += [
        {"id": f"f{i}", "tool": "shift", "args": {"df": f"$f{i - 1}"}} for i in range(1, steps)
    ]
    return {"id": "frames", "steps": plan_steps}


# -- measuring -------------------------------------------------------------------------------


def measure(fn: Callable[[], Any]) -> tuple[float, float]:
    """`(wall seconds, CPU seconds)` of one call, after a full collection."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def interleave(
    systems: dict[str, Callable[[], Any]], rounds: int
) -> dict[str, list[tuple[float, float]]]:
    """Run every system once per round, the order rotating; each system's `(wall, cpu)`s."""
    names = list(systems)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for r in range(rounds):
        shift_by = r % len(names)
        for name in names[shift_by:] + names[:shift_by]:
            times[name].append(measure(systems[name]))
    return times


def med(samples: list[tuple[float, float]], which: int) -> float:
    return statistics.median(s[which] for s in samples)


def paired(times: dict[str, list[tuple[float, float]]], a: str, b: str, which: int) -> float | None:
    """Median over rounds of `a / b` within each round (`which`: 0 wall, 1 CPU)."""
    if a not in times or b not in times:
        return None
    return statistics.median(x[which] / y[which] for x, y in zip(times[a], times[b], strict=True))


def engine_run(plan: dict[str, Any], **options: Any) -> Any:
    result = execute_plan_sync(plan, TOOLS, **options)
    if result.verdict != "SUCCESS":
        raise SystemExit(f"benchmark plan {plan['id']} failed: {result.error}")
    return result


class EngineFirst:
    """A first run each call: a plan id never seen, the compiled-shape cache cleared."""

    def __init__(self, n: int, tool: str) -> None:
        self.n, self.tool, self.count = n, tool, 0

    def __call__(self) -> None:
        self.count += 1
        first_run(chain_plan(self.n, self.tool, f"first-{self.tool}-{self.n}-{self.count}"))


# -- floors ----------------------------------------------------------------------------------


def direct_plain(n: int) -> None:
    x = None
    for _ in range(n):
        x = noop(x)


def asyncio_chain(n: int) -> None:
    async def loop() -> None:
        x = None
        for _ in range(n):
            x = await anoop(x)

    asyncio.run(loop())


def thread_hop_chain(n: int) -> None:
    """N chained `run_in_executor` calls: the floor for plain tools off the loop."""

    async def loop() -> None:
        running = asyncio.get_running_loop()
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            x = None
            for _ in range(n):
                x = await running.run_in_executor(pool, noop, x)

    asyncio.run(loop())


# -- peers -----------------------------------------------------------------------------------


def langgraph_chain(n: int, tool: str) -> Any:
    """The chain as a LangGraph `StateGraph`, compiled (one node per step, state key per step)."""
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    state = TypedDict("State", {f"s{i}": Any for i in range(n)}, total=False)  # type: ignore[misc]
    graph = StateGraph(state)
    for i in range(n):
        key, prev = f"s{i}", (f"s{i - 1}" if i else None)
        if tool == "noop":

            def node(s: dict[str, Any], key: str = key, prev: str | None = prev) -> dict[str, Any]:
                return {key: noop(s.get(prev) if prev else None)}
        else:

            async def node(  # type: ignore[misc]
                s: dict[str, Any], key: str = key, prev: str | None = prev
            ) -> dict[str, Any]:
                return {key: await anoop(s.get(prev) if prev else None)}

        graph.add_node(key, node)
        graph.add_edge(START if i == 0 else f"s{i - 1}", key)
    graph.add_edge(f"s{n - 1}", END)
    return graph.compile()


def langgraph_invoke(app: Any, tool: str) -> Any:
    if tool == "noop":
        return app.invoke({})
    return asyncio.run(app.ainvoke({}))


def marimo_chain_file(n: int, folder: Path) -> Path:
    """The equivalent marimo notebook: one cell per step, `s{i} = noop(s{i-1})`."""
    lines = ["import marimo", "app = marimo.App()", ""]
    lines += [
        "@app.cell",
        "def _():",
        "    from benchmarks_engine_tools import noop",
        "    return (noop,)",
        "",
    ]
    for i in range(n):
        prev = f"s{i - 1}" if i else ""
        params = ", ".join(["noop", prev] if prev else ["noop"])
        lines += [
            "@app.cell",
            f"def _({params}):",
            f"    s{i} = noop({prev})",
            f"    return (s{i},)",
            "",
        ]
    path = folder / f"chain_{n}.py"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


class MarimoApp:
    """marimo's `App.run()` on the chain: `first()` loads the notebook and runs it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.app: Any = None

    def first(self) -> None:
        from marimo._ast.load import load_app

        self.app = load_app(self.path)
        self.app.run()

    def repeat(self) -> None:
        if self.app is None:
            self.first()
        else:
            self.app.run()


# -- the sections ----------------------------------------------------------------------------


def bench_chain(n: int, kind: str, rounds: int, folder: Path, peers: bool) -> dict[str, Any]:
    tool = "noop" if kind == "plain" else "anoop"
    plan = chain_plan(n, tool)
    engine_run(plan)  # the repeat runs find this plan compiled
    systems: dict[str, Callable[[], Any]] = {
        "engine_first": EngineFirst(n, tool),
        "engine_repeat": lambda: engine_run(plan),
    }
    if kind == "plain":
        systems["direct"] = lambda: direct_plain(n)
        systems["thread_hop"] = lambda: thread_hop_chain(n)
    else:
        systems["asyncio"] = lambda: asyncio_chain(n)
    if peers:
        compiled: dict[str, Any] = {"app": langgraph_chain(n, tool)}

        def lg_first() -> None:
            compiled["app"] = langgraph_chain(n, tool)
            langgraph_invoke(compiled["app"], tool)

        systems["langgraph_first"] = lg_first
        systems["langgraph_repeat"] = lambda: langgraph_invoke(compiled["app"], tool)
        if kind == "plain":
            app = MarimoApp(marimo_chain_file(n, folder))
            systems["marimo_first"] = app.first
            systems["marimo_repeat"] = app.repeat
    times = interleave(systems, rounds)
    row: dict[str, Any] = {"n": n, "kind": kind, "rounds": rounds}
    for name, samples in times.items():
        row[f"{name}_wall_s"] = med(samples, 0)
        row[f"{name}_cpu_s"] = med(samples, 1)
        row[f"{name}_cpu_us_per_step"] = med(samples, 1) / n * 1e6
    floor = "thread_hop" if kind == "plain" else "asyncio"
    for which, label in ((0, "wall"), (1, "cpu")):
        for run in ("first", "repeat"):
            row[f"{run}_vs_langgraph_first_{label}"] = paired(
                times, f"engine_{run}", "langgraph_first", which
            )
            row[f"{run}_vs_langgraph_repeat_{label}"] = paired(
                times, f"engine_{run}", "langgraph_repeat", which
            )
            row[f"{run}_vs_marimo_{run}_{label}"] = paired(
                times, f"engine_{run}", f"marimo_{run}", which
            )
            row[f"{run}_vs_{floor}_{label}"] = paired(times, f"engine_{run}", floor, which)
    print(f"  chain {kind} N={n}: done", file=sys.stderr)
    return row


def bench_fan_out(k: int, kind: str, rounds: int, seconds: float = 0.05) -> dict[str, Any]:
    tool = "asleep" if kind == "async" else "bsleep"
    plan = fan_out_plan(k, tool, seconds)
    engine_run(plan)

    def gather_floor() -> None:
        async def go() -> None:
            values = await asyncio.gather(*(asleep(seconds) for _ in range(k)))
            join(**{f"v{i}": v for i, v in enumerate(values)})

        asyncio.run(go())

    def thread_floor() -> None:
        with concurrent.futures.ThreadPoolExecutor(max_workers=k) as pool:
            values = list(pool.map(bsleep, [seconds] * k))
        join(**{f"v{i}": v for i, v in enumerate(values)})

    def first() -> None:
        first_run({**plan, "id": f"{plan['id']}-first"})

    floor = gather_floor if kind == "async" else thread_floor
    times = interleave(
        {"engine_repeat": lambda: engine_run(plan), "engine_first": first, "floor": floor}, rounds
    )
    row = {"k": k, "kind": kind, "rounds": rounds}
    for name, samples in times.items():
        row[f"{name}_wall_s"] = med(samples, 0)
        row[f"{name}_cpu_s"] = med(samples, 1)
    row["repeat_ratio_wall"] = paired(times, "engine_repeat", "floor", 0)
    row["first_ratio_wall"] = paired(times, "engine_first", "floor", 0)
    print(f"  fan-out {kind} K={k}: done", file=sys.stderr)
    return row


def bench_growth(rounds: int, small: int, large: int) -> dict[str, Any]:
    """Repeat-run CPU per step at `small` and `large` steps, interleaved."""
    row: dict[str, Any] = {"small": small, "large": large}
    for kind, tool in (("plain", "noop"), ("async", "anoop")):
        plans = {n: chain_plan(n, tool) for n in (small, large)}
        for p in plans.values():
            engine_run(p)
        times = interleave(
            {
                "small": lambda p=plans[small]: engine_run(p),
                "large": lambda p=plans[large]: engine_run(p),
            },
            rounds,
        )
        per_step = {n: med(times[name], 1) / n for name, n in (("small", small), ("large", large))}
        row[f"{kind}_small_cpu_us_per_step"] = per_step[small] * 1e6
        row[f"{kind}_large_cpu_us_per_step"] = per_step[large] * 1e6
        row[f"{kind}_growth_over_linear"] = statistics.median(
            (b[1] / large) / (a[1] / small)
            for a, b in zip(times["small"], times["large"], strict=True)
        )
    print(f"  growth {small} -> {large}: done", file=sys.stderr)
    return row


def peak_traced(fn: Callable[[], Any]) -> float:
    """Peak traced Python memory (tracemalloc, numpy's buffers included) of one call, in MiB."""
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def bench_memory(steps: int) -> dict[str, Any]:
    plan = frame_plan(steps)
    last = f"f{steps - 1}"

    def direct() -> Any:
        df = make_frame()
        for _ in range(steps - 1):
            df = shift(df)
        return df

    def langgraph() -> Any:
        from typing import TypedDict

        from langgraph.graph import END, START, StateGraph

        state = TypedDict("State", {f"f{i}": Any for i in range(steps)}, total=False)  # type: ignore[misc]
        graph = StateGraph(state)
        graph.add_node("f0", lambda s: {"f0": make_frame()})
        graph.add_edge(START, "f0")
        for i in range(1, steps):
            graph.add_node(f"f{i}", lambda s, i=i: {f"f{i}": shift(s[f"f{i - 1}"])})
            graph.add_edge(f"f{i - 1}", f"f{i}")
        graph.add_edge(last, END)
        return graph.compile().invoke({})[last]

    engine_run(plan)  # compiled, imports paid
    row: dict[str, Any] = {"steps": steps, "rows": ROWS}
    row["direct_peak_mib"] = peak_traced(direct)
    row["engine_all_peak_mib"] = peak_traced(lambda: engine_run(plan))
    row["engine_needed_peak_mib"] = peak_traced(
        lambda: engine_run(plan, keep_outputs=[last])  # "needed", and the last frame asked for
    )
    try:
        row["langgraph_peak_mib"] = peak_traced(langgraph)
    except ImportError:
        row["langgraph_peak_mib"] = None
    row["needed_over_direct"] = row["engine_needed_peak_mib"] / row["direct_peak_mib"]
    print("  memory: done", file=sys.stderr)
    return row


# -- the report ------------------------------------------------------------------------------


def fmt(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}{unit}"


def done_when(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the figure measured and whether it is met."""
    rows: list[dict[str, Any]] = []
    chains = {(r["n"], r["kind"]): r for r in figures["chains"]}

    def add(target: str, value: float | None, limit: float, note: str = "") -> None:
        met = value is not None and value <= limit
        rows.append({"target": target, "figure": value, "limit": limit, "met": met, "note": note})

    for kind in ("plain", "async"):
        row = chains.get((100, kind))
        add(
            f"first run per step, N=100, {kind}, vs LangGraph first run (CPU)",
            row and row.get("first_vs_langgraph_first_cpu"),
            0.3,
        )
    growth = figures.get("growth")
    for kind in ("plain", "async"):
        add(
            f"growth {growth['small']:,} -> {growth['large']:,} steps over linear, {kind} (CPU)"
            if growth
            else f"growth over linear, {kind}",
            growth and growth[f"{kind}_growth_over_linear"],
            1.2,
        )
    fans = {(r["k"], r["kind"]): r for r in figures["fan_out"]}
    fan = fans.get((1000, "async"))
    add("fan-out K=1000 async vs asyncio.gather (wall)", fan and fan["repeat_ratio_wall"], 1.1)
    fan = fans.get((100, "blocking"))
    add(
        "fan-out K=100 blocking, default options, vs K-thread pool (wall)",
        fan and fan["repeat_ratio_wall"],
        1.2,
    )
    memory = figures["memory"]
    add(
        "peak memory, 10^6-row chain, keep_outputs='needed' vs direct loop",
        memory["needed_over_direct"],
        1.3,
    )
    return rows


def print_report(figures: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=sys.stdout, width=200)
    table = Table(title="Chains of N no-op steps: CPU µs per step, medians over rounds (wall s)")
    cols = [
        "N",
        "tools",
        "engine first",
        "engine repeat",
        "floor",
        "LangGraph first",
        "LangGraph repeat",
        "marimo first",
        "marimo repeat",
        "first/LG first",
        "repeat/LG repeat",
        "repeat/floor",
    ]
    for col in cols:
        table.add_column(col, justify="right")
    for row in figures["chains"]:
        floor = "thread_hop" if row["kind"] == "plain" else "asyncio"

        def us(name: str, row: dict[str, Any] = row) -> str:
            value = row.get(f"{name}_cpu_us_per_step")
            wall = row.get(f"{name}_wall_s")
            return "—" if value is None else f"{value:,.1f} ({wall:.3f})"

        table.add_row(
            f"{row['n']:,}",
            row["kind"],
            us("engine_first"),
            us("engine_repeat"),
            us(floor),
            us("langgraph_first"),
            us("langgraph_repeat"),
            us("marimo_first"),
            us("marimo_repeat"),
            fmt(row.get("first_vs_langgraph_first_cpu"), "x"),
            fmt(row.get("repeat_vs_langgraph_repeat_cpu"), "x"),
            fmt(row.get(f"repeat_vs_{floor}_cpu"), "x"),
        )
    console.print(table)
    console.print(
        "floor: plain tools, a thread-pool round trip per step (run_in_executor); async "
        "tools, awaiting the coroutines in a loop. Ratios are paired per round."
    )

    fan = Table(title="Fan-out: K steps sleeping 50 ms, then one join (wall seconds, medians)")
    for col in (
        "K",
        "tools",
        "engine repeat",
        "engine first",
        "floor",
        "repeat/floor",
        "first/floor",
    ):
        fan.add_column(col, justify="right")
    for row in figures["fan_out"]:
        fan.add_row(
            f"{row['k']:,}",
            row["kind"],
            fmt(row["engine_repeat_wall_s"], digits=4),
            fmt(row["engine_first_wall_s"], digits=4),
            fmt(row["floor_wall_s"], digits=4),
            fmt(row["repeat_ratio_wall"], "x"),
            fmt(row["first_ratio_wall"], "x"),
        )
    console.print(fan)
    console.print(
        "floor: asyncio.gather (async); a thread pool of K workers (blocking). The engine "
        "runs with default options (no max_workers)."
    )

    growth = figures["growth"]
    parts = [
        f"{kind} {growth[f'{kind}_small_cpu_us_per_step']:.1f} -> "
        f"{growth[f'{kind}_large_cpu_us_per_step']:.1f} µs "
        f"({growth[f'{kind}_growth_over_linear']:.2f}x linear)"
        for kind in ("plain", "async")
    ]
    console.print(
        f"Growth {growth['small']:,} -> {growth['large']:,} steps (repeat runs, CPU per step): "
        + "; ".join(parts)
    )
    memory = figures["memory"]
    console.print(
        f"Peak traced memory, {memory['steps']} steps passing a {memory['rows']:,}-row frame: "
        f"direct loop {memory['direct_peak_mib']:.1f} MiB; engine keep_outputs='all' "
        f"{memory['engine_all_peak_mib']:.1f} MiB, 'needed' {memory['engine_needed_peak_mib']:.1f} "
        f"MiB; LangGraph {fmt(memory['langgraph_peak_mib'], ' MiB', 1)}"
    )
    mapped = figures["map"]
    console.print(
        f"Map step over {mapped['items']:,} items of a {mapped['sleep_s'] * 1000:.0f} ms "
        f"coroutine (wall, medians): step {mapped['map_step_s'] * 1000:.1f} ms vs asyncio.gather "
        f"{mapped['gather_s'] * 1000:.1f} ms, step_ratio {mapped['step_ratio']:.3f}x "
        f"(target 1.1x); whole run vs asyncio.run(gather) run_ratio {mapped['run_ratio']:.3f}x"
    )
    subplan = figures["subplan"]
    console.print(
        f"Sub-plan of {subplan['steps']} steps vs the same steps inlined (wall, medians): "
        f"{subplan['subplan_s'] * 1000:.2f} ms vs {subplan['inline_s'] * 1000:.2f} ms, "
        f"overhead_ms {subplan['overhead_ms']:.2f}"
    )

    done = Table(title="Done when (marimo-engine issue 19)")
    for col in ("target", "figure", "limit", "result"):
        done.add_column(col, justify="left" if col == "target" else "right")
    for row in figures["done_when"]:
        done.add_row(
            row["target"],
            fmt(row["figure"], "x"),
            f"≤ {row['limit']}x",
            "[green]met[/green]" if row["met"] else "[red]not met[/red]",
        )
    console.print(done)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few rounds")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per comparison")
    parser.add_argument("--json-out", type=Path, help="also write the JSON figures to this file")
    args = parser.parse_args(argv)
    quick = args.quick
    rounds = args.rounds or (2 if quick else 5)
    started = time.perf_counter()

    # Imports and first-use costs paid before any measurement.
    engine_run(chain_plan(5, "noop"))
    engine_run(chain_plan(5, "anoop"))
    langgraph_invoke(langgraph_chain(3, "noop"), "noop")
    folder = Path(tempfile.mkdtemp(prefix="marimo-engine-bench-"))
    (folder / "benchmarks_engine_tools.py").write_text("def noop(x=None):\n    return x\n")
    sys.path.insert(0, str(folder))
    MarimoApp(marimo_chain_file(3, folder)).first()

    chains = []
    sizes = [10, 100] if quick else [10, 100, 1000]
    for n in sizes:
        for kind in ("plain", "async"):
            chains.append(bench_chain(n, kind, rounds, folder, peers=True))
    growth = bench_growth(rounds, 100 if quick else 1000, 1000 if quick else 10_000)
    fans = [
        bench_fan_out(100, "async", rounds),
        bench_fan_out(1000, "async", rounds),
        bench_fan_out(100, "blocking", rounds),
    ]
    memory = bench_memory(10)
    if quick:
        mapped = bench_map(count=200, reps=2)
        subplan = bench_subplan(steps=5, reps=3)
    else:
        mapped = bench_map()
        subplan = bench_subplan()
    figures: dict[str, Any] = {
        "python": sys.version.split()[0],
        "quick": quick,
        "rounds": rounds,
        "chains": chains,
        "growth": growth,
        "fan_out": fans,
        "memory": memory,
        "map": mapped,
        "subplan": subplan,
    }
    figures["done_when"] = done_when(figures)
    figures["benchmark_seconds"] = time.perf_counter() - started
    print_report(figures)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
