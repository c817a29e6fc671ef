"""Benchmark of plans on a Dask cluster against Dask's own futures, on the same cluster.

Run with `uv run python benchmarks/dask.py` (about 2-4 minutes on 2 cores;
`--quick` for a smoke run, `--json-out FILE` to keep the figures). Starts one
`distributed.LocalCluster` (2 worker processes, 50 threads each: the tools
sleep, so threads, not cores, bound them), then, in one run, as medians over
repetitions taken in turn (engine, Dask, engine, Dask, ...):

- fan-out: K = 1,000 independent steps of a tool that sleeps 50 ms
  (`execute_plan(..., executor=client)`) against `client.map` of the same
  function with `client.gather` of the results (target: within 1.2x);
- chain: N = 1,000 steps of a no-op tool, each reading the previous step's
  output (`"$s{i-1}"`), against Dask's own chain of futures
  (`f = client.submit(noop, f)`, N times, then awaiting the last);
  per-step overhead is total / N (target: within 1.5x);
- the one-off cost of `executor="dask"`: starting a local cluster for a
  one-step run and closing it.

The engine's figures include validating and compiling the plan (the run's
own work before the first step) and the events of every step.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `python benchmarks/dask.py` puts this folder first on sys.path, where this
# file would shadow the `dask` package: take it off before importing Dask.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

SLEEP_S = 0.05


def bsleep(seconds: float) -> float:
    """Block the worker's thread for `seconds`."""
    time.sleep(seconds)
    return seconds


def noop(x: Any = None) -> Any:
    """Return the input."""
    return x


async def _engine(plan: dict[str, Any], client: Any) -> float:
    from marimo_engine.engine.executor import execute_plan

    began = time.perf_counter()
    async with execute_plan(plan, {"bsleep": bsleep, "noop": noop}, executor=client) as run:
        async for _ in run:
            pass
    elapsed = time.perf_counter() - began
    verdict = run.result.verdict.value
    if verdict != "SUCCESS":
        raise RuntimeError(f"the benchmark plan failed: {run.result.error}")
    return elapsed


async def _dask_map(client: Any, k: int) -> float:
    began = time.perf_counter()
    futures = client.map(bsleep, [SLEEP_S] * k, pure=False)
    await client.gather(futures)
    return time.perf_counter() - began


async def _dask_chain(client: Any, n: int) -> float:
    began = time.perf_counter()
    future = client.submit(noop, None, pure=False)
    for _ in range(n - 1):
        future = client.submit(noop, future, pure=False)
    await future
    return time.perf_counter() - began


def _fan_out_plan(k: int) -> dict[str, Any]:
    return {
        "id": f"fan-out-{k}",
        "steps": [
            {"id": f"s{i}", "tool": "bsleep", "args": {"seconds": SLEEP_S}} for i in range(k)
        ],
    }


def _chain_plan(n: int) -> dict[str, Any]:
    steps = [{"id": "s0", "tool": "noop"}]
    steps += [{"id": f"s{i}", "tool": "noop", "args": {"x": f"$s{i - 1}"}} for i in range(1, n)]
    return {"id": f"chain-{n}", "steps": steps}


async def _pairs(reps: int, engine: Any, dask: Any) -> tuple[list[float], list[float]]:
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(reps):
        ours.append(await engine())
        theirs.append(await dask())
    return ours, theirs


async def main(quick: bool) -> dict[str, Any]:
    """Run every measurement; return the figures."""
    from distributed import Client, LocalCluster

    from marimo_engine.engine.executor import execute_plan

    k = 100 if quick else 1000
    n = 100 if quick else 1000
    reps = 2 if quick else 3
    figures: dict[str, Any] = {"k": k, "n": n, "repetitions": reps, "sleep_s": SLEEP_S}

    began = time.perf_counter()
    async with execute_plan(
        {"steps": [{"id": "one", "tool": "noop"}]}, {"noop": noop}, executor="dask"
    ) as run:
        async for _ in run:
            pass
    figures["local_cluster_run_s"] = time.perf_counter() - began

    async with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=50,
            processes=True,
            dashboard_address=None,
            asynchronous=True,
        ) as cluster,
        Client(cluster, asynchronous=True) as client,
    ):
        # Warm both paths (imports, the workers' tool cache, compiled cells).
        await _engine(_fan_out_plan(10), client)
        await _dask_map(client, 10)

        ours, theirs = await _pairs(
            reps, lambda: _engine(_fan_out_plan(k), client), lambda: _dask_map(client, k)
        )
        figures["fan_out"] = {
            "engine_s": statistics.median(ours),
            "client_map_s": statistics.median(theirs),
            "ratio": statistics.median(ours) / statistics.median(theirs),
            "floor_s": k * SLEEP_S / 100,
            "engine_runs_s": ours,
            "client_map_runs_s": theirs,
        }

        ours, theirs = await _pairs(
            reps, lambda: _engine(_chain_plan(n), client), lambda: _dask_chain(client, n)
        )
        figures["chain"] = {
            "engine_s": statistics.median(ours),
            "dask_chain_s": statistics.median(theirs),
            "engine_ms_per_step": statistics.median(ours) / n * 1000,
            "dask_ms_per_step": statistics.median(theirs) / n * 1000,
            "ratio": statistics.median(ours) / statistics.median(theirs),
            "engine_runs_s": ours,
            "dask_chain_runs_s": theirs,
        }
    return figures


def _print(figures: dict[str, Any]) -> None:
    fan, chain = figures["fan_out"], figures["chain"]
    print(
        f"executor='dask', one step, cluster start to close: {figures['local_cluster_run_s']:.2f} s"
    )
    print(
        f"fan-out K={figures['k']} x {SLEEP_S * 1000:.0f} ms: engine {fan['engine_s']:.3f} s, "
        f"client.map {fan['client_map_s']:.3f} s, ratio {fan['ratio']:.2f}x (target 1.2x); "
        f"floor {fan['floor_s']:.2f} s (100 threads)"
    )
    print(
        f"chain N={figures['n']}: engine {chain['engine_ms_per_step']:.2f} ms/step, "
        f"Dask chained futures {chain['dask_ms_per_step']:.2f} ms/step, "
        f"ratio {chain['ratio']:.2f}x (target 1.5x)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="K = N = 100, 2 repetitions")
    parser.add_argument("--json-out", metavar="FILE", help="also write the figures as JSON")
    options = parser.parse_args()
    result = asyncio.run(main(options.quick))
    _print(result)
    print(json.dumps(result))
    if options.json_out:
        Path(options.json_out).write_text(json.dumps(result, indent=2), encoding="utf-8")
