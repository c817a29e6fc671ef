"""Benchmark of `marimo-engine run`'s displays: the terminal view against `--json`.

Run with `uv run python benchmarks/cli.py` (about a minute on 2 cores;
`--quick` for a smoke run). Prints a table and, last, one JSON object with
every figure.

What it measures (issue 9, item 16: "a 3,000-step chain takes 135 s on a
terminal against 4 s with --json"):
- chains of N = 300, 1000, 3000 no-op steps, each reading the previous
  step's output, run in process with `execute_plan_sync`, with three
  consumers of the events: none (the engine alone), the `--json` display
  (`JsonLinesProgress`, to /dev/null) and the terminal display
  (`RichProgress` on a rich console that believes it is a 120x40 terminal,
  writing to /dev/null, refreshing at its default rate);
- the same through the installed command in a pseudo-terminal (`pty`), so
  that rich sees a real terminal, against `--json` into a pipe (N = 1000).

The ratio `terminal / json` is the figure to watch: the display must cost
about as much as writing JSON lines, whatever the plan's length.
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from marimo_engine import execute_plan_sync
from marimo_engine.cli.progress import JsonLinesProgress, ProgressModel, RichProgress
from marimo_engine.plans.schema import load_plan

TOOLS_SOURCE = "def noop(x=None):\n    return x\n"


def noop(x: Any = None) -> Any:
    """A plain-function tool that returns its input."""
    return x


def chain_plan(n: int) -> dict[str, Any]:
    steps = [{"id": "s0", "tool": "noop"}]
    steps += [{"id": f"s{i}", "tool": "noop", "args": {"x": f"$s{i - 1}"}} for i in range(1, n)]
    return {"id": f"chain-{n}", "name": f"Chain of {n}", "steps": steps}


def run_with(plan: dict[str, Any], display: str) -> float:
    """Seconds for one in-process run with `display` in ("none", "json", "terminal")."""
    from rich.console import Console

    parsed = load_plan(plan)
    model = ProgressModel.from_plan(parsed)
    with open(os.devnull, "w", encoding="utf-8") as sink:
        renderer: Any = None
        if display == "json":
            renderer = JsonLinesProgress(sink)
        elif display == "terminal":
            console = Console(file=sink, force_terminal=True, width=120, height=40)
            renderer = RichProgress(model, console=console)
        on_event: Callable[[Any], None] | None = None
        if renderer is not None:
            handle = renderer.handle
            fold = display == "json"

            def on_event(event: Any) -> None:
                if fold:
                    model.apply(event)
                handle(event)

        started = time.perf_counter()
        try:
            execute_plan_sync(parsed, {"noop": noop}, on_event=on_event)
        finally:
            if renderer is not None:
                renderer.close()
        return time.perf_counter() - started


def bench_in_process(sizes: list[int], reps: int) -> list[dict[str, Any]]:
    rows = []
    run_with(chain_plan(10), "terminal")  # warm imports and the cell cache
    for n in sizes:
        plan = chain_plan(n)
        run_with(plan, "none")  # compile this size's cells once, untimed
        row: dict[str, Any] = {"n": n}
        for display in ("none", "json", "terminal"):
            row[display] = statistics.median(run_with(plan, display) for _ in range(reps))
        row["terminal_per_step_ms"] = (row["terminal"] - row["none"]) / n * 1000
        row["json_per_step_ms"] = (row["json"] - row["none"]) / n * 1000
        row["terminal_over_json"] = row["terminal"] / row["json"]
        rows.append(row)
    return rows


def _command() -> list[str]:
    script = Path(sys.executable).with_name("marimo-engine")
    return [str(script)] if script.exists() else [sys.executable, "-m", "marimo_engine.cli.main"]


def _in_pty(argv: list[str], cwd: Path, timeout_s: float) -> float:
    """Run `argv` with a pseudo-terminal as stdout; return its seconds."""
    primary, secondary = pty.openpty()
    os.set_blocking(primary, False)
    env = {**os.environ, "COLUMNS": "120", "LINES": "40", "TERM": "xterm-256color"}
    started = time.perf_counter()
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
        env=env,
        start_new_session=True,
    )
    os.close(secondary)
    try:
        while process.poll() is None:
            if time.perf_counter() - started > timeout_s:
                raise TimeoutError(f"{argv} took more than {timeout_s} s")
            ready, _, _ = select.select([primary], [], [], 0.02)
            if ready:
                try:
                    os.read(primary, 1 << 16)  # drain, as a terminal would
                except OSError:
                    break
        process.wait(timeout=timeout_s)
        return time.perf_counter() - started
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 9)
            process.wait()
        os.close(primary)


def _in_pipe(argv: list[str], cwd: Path, timeout_s: float) -> float:
    started = time.perf_counter()
    subprocess.run(
        argv,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=timeout_s,
        check=True,
        start_new_session=True,
    )
    return time.perf_counter() - started


def bench_command(n: int, reps: int, timeout_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="marimo-engine-bench-cli-") as name:
        folder = Path(name)
        (folder / "bench_cli_tools.py").write_text(TOOLS_SOURCE, encoding="utf-8")
        plan = folder / "chain.json"
        plan.write_text(json.dumps(chain_plan(n)), encoding="utf-8")
        base = [*_command(), "run", str(plan), "--tools", "bench_cli_tools"]
        terminal = statistics.median(_in_pty(base, folder, timeout_s) for _ in range(reps))
        as_json = statistics.median(
            _in_pipe([*base, "--json"], folder, timeout_s) for _ in range(reps)
        )
    return {"n": n, "terminal": terminal, "json": as_json, "terminal_over_json": terminal / as_json}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and one repetition")
    parser.add_argument("--json-out", type=Path, help="also write the JSON figures to this file")
    args = parser.parse_args(argv)
    sizes = [100, 300] if args.quick else [300, 1000, 3000]
    reps = 1 if args.quick else 3
    in_process = bench_in_process(sizes, reps)
    command = bench_command(300 if args.quick else 1000, reps, timeout_s=600.0)

    print("In process: seconds for a chain of N no-op steps, by display")
    print(f"{'N':>6} {'engine':>9} {'--json':>9} {'terminal':>9} {'ms/step':>9} {'term/json':>10}")
    for row in in_process:
        print(
            f"{row['n']:>6} {row['none']:>9.3f} {row['json']:>9.3f} {row['terminal']:>9.3f} "
            f"{row['terminal_per_step_ms']:>9.3f} {row['terminal_over_json']:>10.2f}"
        )
    print()
    print(f"The installed command, N = {command['n']}: terminal (pty) against --json (pipe)")
    print(
        f"  terminal {command['terminal']:.3f} s, --json {command['json']:.3f} s, "
        f"ratio {command['terminal_over_json']:.2f}"
    )
    figures = {"in_process": in_process, "command": command}
    print(json.dumps(figures))
    if args.json_out:
        args.json_out.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
