"""Benchmark of the plan engine: overhead per step, scale, fan-out, memory.

Run with `uv run python benchmarks/engine.py` (about 2-3 minutes on 2 cores;
`--quick` for a smoke run). Prints a table and, last, one JSON object with
every figure. All times are medians over repetitions, in one process on one
machine; per-step overhead is `(engine - direct loop) / N`.

What it measures (issue "The engine", Benchmark):
- chains of N = 10, 100, 1000, 3000 no-op steps, each reading the previous
  step's output, with plain-function tools (they run in worker threads) and
  with coroutine tools, against a direct Python loop calling the same
  functions and against marimo's plain `App.run()` on the equivalent cells
  (a fresh app each time; its load time is not counted);
- fan-out: K = 10 and 100 independent steps that sleep 50 ms, then one step
  that reads them all, against `asyncio.gather` (coroutines) and a thread
  pool of K workers (blocking `time.sleep`), which are the floors;
- the peak Python heap (tracemalloc) of the 1,000-step run.

"cold" is the first run of a plan in the process (marimo compiles each cell);
"warm" runs find the compiled cells in the engine's cache.
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

from marimo_engine import execute_plan_sync
from marimo_engine.engine._cells import _template


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


TOOLS = {"noop": noop, "anoop": anoop, "asleep": asleep, "bsleep": bsleep, "join": join}


def chain_plan(n: int, tool: str) -> dict[str, Any]:
    steps = [{"id": "s0", "tool": tool}]
    steps += [{"id": f"s{i}", "tool": tool, "args": {"x": f"$s{i - 1}"}} for i in range(1, n)]
    return {"id": f"chain-{tool}-{n}", "steps": steps}


def fan_out_plan(k: int, tool: str, seconds: float) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [
        {"id": f"w{i}", "tool": tool, "args": {"seconds": seconds}} for i in range(k)
    ]
    steps.append({"id": "join", "tool": "join", "args": {f"v{i}": f"$w{i}" for i in range(k)}})
    return {"id": f"fan-{tool}-{k}", "steps": steps}


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    """Seconds one call of `fn(*args, **kwargs)` takes, after a full collection."""
    gc.collect()
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def median_time(reps: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    """Median seconds of `reps` calls."""
    return statistics.median(timed(fn, *args, **kwargs) for _ in range(reps))


def engine_run(plan: dict[str, Any], **options: Any) -> None:
    result = execute_plan_sync(plan, TOOLS, **options)
    if result.verdict != "SUCCESS":
        raise SystemExit(f"benchmark plan {plan['id']} failed: {result.error}")


def thread_hop_chain(n: int) -> None:
    """The floor for plain tools off the loop: N chained `run_in_executor` calls."""

    async def loop() -> None:
        running = asyncio.get_running_loop()
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            x = None
            for _ in range(n):
                x = await running.run_in_executor(pool, noop, x)

    asyncio.run(loop())


def direct_chain(n: int, tool: str) -> None:
    if tool == "noop":
        x = None
        for _ in range(n):
            x = noop(x)
        return

    async def loop() -> None:
        x = None
        for _ in range(n):
            x = await anoop(x)

    asyncio.run(loop())


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


def marimo_run(path: Path) -> float:
    from marimo._ast.load import load_app

    app = load_app(path)
    assert app is not None
    return timed(app.run)


def bench_chains(sizes: list[int], reps: dict[int, int], marimo_max: int) -> list[dict[str, Any]]:
    rows = []
    folder = Path(tempfile.mkdtemp(prefix="marimo-engine-bench-"))
    (folder / "benchmarks_engine_tools.py").write_text("def noop(x=None):\n    return x\n")
    sys.path.insert(0, str(folder))
    for n in sizes:
        r = reps[n]
        row: dict[str, Any] = {"n": n, "reps": r}
        for tool in ("noop", "anoop"):
            plan = chain_plan(n, tool)
            _template.cache_clear()  # cold: marimo compiles every cell
            cold = timed(engine_run, plan)
            warm = median_time(r, engine_run, plan)
            direct = median_time(r, direct_chain, n, tool)
            kind = "plain" if tool == "noop" else "async"
            row[f"engine_{kind}_cold_s"] = cold
            row[f"engine_{kind}_s"] = warm
            row[f"direct_{kind}_s"] = direct
            row[f"overhead_{kind}_us_per_step"] = (warm - direct) / n * 1e6
            row[f"overhead_{kind}_cold_us_per_step"] = (cold - direct) / n * 1e6
        hop = median_time(r, thread_hop_chain, n)
        row["thread_hop_us_per_step"] = hop / n * 1e6
        if n <= marimo_max:
            path = marimo_chain_file(n, folder)
            marimo_reps = 1 if n >= 3000 else (2 if n >= 1000 else r)
            row["marimo_app_run_s"] = statistics.median(
                marimo_run(path) for _ in range(marimo_reps)
            )
            row["marimo_us_per_step"] = row["marimo_app_run_s"] / n * 1e6
        else:
            row["marimo_app_run_s"] = None
            row["marimo_us_per_step"] = None
        rows.append(row)
        print(f"  chain N={n}: done", file=sys.stderr)
    return rows


def bench_fan_out(ks: list[int], reps: int, seconds: float = 0.05) -> list[dict[str, Any]]:
    rows = []
    for k in ks:
        async_plan = fan_out_plan(k, "asleep", seconds)
        blocking_plan = fan_out_plan(k, "bsleep", seconds)
        engine_run(async_plan)  # compile once; warm runs below
        engine_run(blocking_plan, max_workers=k)

        async def gather_floor(k: int = k) -> None:
            values = await asyncio.gather(*(asleep(seconds) for _ in range(k)))
            join(**{f"v{i}": v for i, v in enumerate(values)})

        def thread_floor(k: int = k) -> None:
            with concurrent.futures.ThreadPoolExecutor(max_workers=k) as pool:
                values = list(pool.map(bsleep, [seconds] * k))
            join(**{f"v{i}": v for i, v in enumerate(values)})

        engine_async = median_time(reps, engine_run, async_plan)
        floor_async = median_time(reps, lambda floor=gather_floor: asyncio.run(floor()))
        engine_blocking = median_time(reps, engine_run, blocking_plan, max_workers=k)
        floor_blocking = median_time(reps, thread_floor)
        rows.append(
            {
                "k": k,
                "engine_async_s": engine_async,
                "gather_floor_s": floor_async,
                "async_ratio": engine_async / floor_async,
                "engine_blocking_s": engine_blocking,
                "thread_floor_s": floor_blocking,
                "blocking_ratio": engine_blocking / floor_blocking,
            }
        )
        print(f"  fan-out K={k}: done", file=sys.stderr)
    return rows


def bench_memory(n: int) -> dict[str, Any]:
    plan = chain_plan(n, "noop")
    engine_run(plan)
    gc.collect()
    tracemalloc.start()
    engine_run(plan)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"n": n, "peak_heap_bytes": peak, "peak_heap_mib": peak / 2**20}


def fmt(value: float | None, unit: str = "", digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}{unit}"


def print_report(
    chains: list[dict[str, Any]], fans: list[dict[str, Any]], memory: dict[str, Any]
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=sys.stdout, width=160)
    table = Table(title="Chains of N no-op steps (seconds, medians; overhead per step in µs)")
    for col in (
        "N",
        "direct",
        "engine plain",
        "cold",
        "µs/step",
        "engine async",
        "cold",
        "µs/step",
        "hop µs",
        "marimo App.run",
        "µs/step",
    ):
        table.add_column(col, justify="right")
    for row in chains:
        table.add_row(
            str(row["n"]),
            fmt(row["direct_plain_s"], digits=5),
            fmt(row["engine_plain_s"]),
            fmt(row["engine_plain_cold_s"]),
            fmt(row["overhead_plain_us_per_step"], digits=0),
            fmt(row["engine_async_s"]),
            fmt(row["engine_async_cold_s"]),
            fmt(row["overhead_async_us_per_step"], digits=0),
            fmt(row["thread_hop_us_per_step"], digits=0),
            fmt(row["marimo_app_run_s"]),
            fmt(row["marimo_us_per_step"], digits=0),
        )
    console.print(table)
    fan = Table(title="Fan-out: K steps sleeping 50 ms, then one join (seconds, medians)")
    for col in (
        "K",
        "engine async",
        "gather floor",
        "ratio",
        "engine blocking",
        "thread floor",
        "ratio",
    ):
        fan.add_column(col, justify="right")
    for row in fans:
        fan.add_row(
            str(row["k"]),
            fmt(row["engine_async_s"]),
            fmt(row["gather_floor_s"]),
            fmt(row["async_ratio"], "x", 2),
            fmt(row["engine_blocking_s"]),
            fmt(row["thread_floor_s"]),
            fmt(row["blocking_ratio"], "x", 2),
        )
    console.print(fan)
    console.print(
        f"Peak Python heap of the {memory['n']}-step run: {memory['peak_heap_mib']:.1f} MiB"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few repetitions")
    parser.add_argument("--json-out", type=Path, help="also write the JSON figures to this file")
    args = parser.parse_args(argv)
    if args.quick:
        sizes, reps, marimo_max, ks, fan_reps = [10, 100], {10: 3, 100: 3}, 100, [10], 3
    else:
        sizes = [10, 100, 1000, 3000]
        reps = {10: 30, 100: 15, 1000: 5, 3000: 3}
        marimo_max, ks, fan_reps = 3000, [10, 100], 7
    started = time.perf_counter()
    chains = bench_chains(sizes, reps, marimo_max)
    fans = bench_fan_out(ks, fan_reps)
    memory = bench_memory(1000 if not args.quick else 100)
    print_report(chains, fans, memory)
    growth = None
    by_n = {row["n"]: row for row in chains}
    if 1000 in by_n and 3000 in by_n:
        growth = {
            "engine_plain_3000_over_1000": by_n[3000]["engine_plain_s"]
            / by_n[1000]["engine_plain_s"],
            "engine_async_3000_over_1000": by_n[3000]["engine_async_s"]
            / by_n[1000]["engine_async_s"],
            "marimo_3000_over_1000": (
                by_n[3000]["marimo_app_run_s"] / by_n[1000]["marimo_app_run_s"]
                if by_n[3000]["marimo_app_run_s"] and by_n[1000]["marimo_app_run_s"]
                else None
            ),
        }
    figures = {
        "python": sys.version.split()[0],
        "chains": chains,
        "growth": growth,
        "fan_out": fans,
        "memory": memory,
        "benchmark_seconds": time.perf_counter() - started,
    }
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
