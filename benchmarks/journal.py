"""Benchmark of the run journal: per-step cost with and without it, against LangGraph.

Run with `uv run --group bench python benchmarks/journal.py` (`--n 200` for a
quick run). One chain of N steps (default 1,000), each adding one to the
previous step's output, run in one process:

- the engine without a journal;
- the engine with the SQLite journal (a file in a temporary directory, WAL);
- LangGraph (`StateGraph`, one node per step) with its SQLite checkpointer
  (`langgraph.checkpoint.sqlite.SqliteSaver`) on a file, which checkpoints
  after every step, as the journal records every step.

Prints per-step costs (medians over repetitions, in microseconds), the
journal's own cost per step (with - without), and the ratios; last, one
JSON object with every figure. Target (issue 12): the journaled engine costs
at most half of LangGraph's per step. Without the `bench` group (LangGraph
not installed) the LangGraph row is left out and said so.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from marimo_engine import execute_plan_sync


def add_one(x: int) -> int:
    """The step: one more."""
    return x + 1


def chain(n: int) -> dict[str, Any]:
    steps = [{"id": "s0", "tool": "add_one", "args": {"x": 0}}]
    steps += [{"id": f"s{i}", "tool": "add_one", "args": {"x": f"$s{i - 1}"}} for i in range(1, n)]
    return {"id": "journal-bench", "steps": steps}


def engine_run(n: int, journal: str | None) -> float:
    plan = chain(n)
    started = time.perf_counter()
    result = execute_plan_sync(plan, {"add_one": add_one}, journal=journal)
    elapsed = time.perf_counter() - started
    assert result.succeeded and result.outputs[f"s{n - 1}"] == n, result.error
    return elapsed


def langgraph_run(n: int, path: str) -> float | None:
    try:
        import sqlite3
        from typing import TypedDict

        from langgraph.checkpoint.sqlite import SqliteSaver
        from langgraph.graph import END, START, StateGraph
    except ImportError:
        return None

    class State(TypedDict):
        x: int

    def node(state: State) -> State:
        return {"x": add_one(state["x"])}

    graph = StateGraph(State)
    for i in range(n):
        graph.add_node(f"s{i}", node)
    graph.add_edge(START, "s0")
    for i in range(1, n):
        graph.add_edge(f"s{i - 1}", f"s{i}")
    graph.add_edge(f"s{n - 1}", END)
    conn = sqlite3.connect(path, check_same_thread=False)
    try:
        app = graph.compile(checkpointer=SqliteSaver(conn))
        config = {"configurable": {"thread_id": str(time.time_ns())}, "recursion_limit": n + 10}
        started = time.perf_counter()
        out = app.invoke({"x": 0}, config)
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    assert out["x"] == n
    return elapsed


def median_us_per_step(times: list[float], n: int) -> float:
    return statistics.median(times) / n * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="steps in the chain")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, median taken")
    args = parser.parse_args(argv)
    n = args.n
    with tempfile.TemporaryDirectory() as tmp:
        engine_run(min(n, 50), None)  # warm: imports, compiled cells
        plain = [engine_run(n, None) for _ in range(args.repeat)]
        journaled = [
            engine_run(n, str(Path(tmp) / f"journal-{i}.sqlite3")) for i in range(args.repeat)
        ]
        graph = [langgraph_run(n, str(Path(tmp) / f"lg-{i}.sqlite3")) for i in range(args.repeat)]
    figures: dict[str, Any] = {
        "steps": n,
        "engine_us_per_step": median_us_per_step(plain, n),
        "engine_journal_us_per_step": median_us_per_step(journaled, n),
    }
    figures["journal_cost_us_per_step"] = (
        figures["engine_journal_us_per_step"] - figures["engine_us_per_step"]
    )
    print(f"chain of {n} steps, per step (median of {args.repeat}):")
    print(f"  engine, no journal      {figures['engine_us_per_step']:10.1f} us")
    print(f"  engine, SQLite journal  {figures['engine_journal_us_per_step']:10.1f} us")
    print(f"  the journal's own cost  {figures['journal_cost_us_per_step']:10.1f} us")
    if all(t is not None for t in graph):
        lg = median_us_per_step([t for t in graph if t is not None], n)
        figures["langgraph_sqlite_us_per_step"] = lg
        figures["journal_vs_langgraph"] = figures["engine_journal_us_per_step"] / lg
        print(f"  LangGraph + SqliteSaver {lg:10.1f} us")
        print(
            f"  ratio journaled engine / LangGraph: {figures['journal_vs_langgraph']:.2f} "
            "(target: at most 0.5)"
        )
    else:
        print("  LangGraph: not installed (uv run --group bench ...); row left out")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
