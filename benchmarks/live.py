"""Benchmark of the live bridge: LiveClient's overhead per round trip, and opening a session.

Run with `uv run python benchmarks/live.py` (about 2 minutes on 2 cores;
`--quick` for a smoke run). Prints a table and, last, one JSON object with
every figure.

What it measures (issue "The live bridge", Benchmark):
- the median round trip of `execute("pass")` through `LiveClient` against a
  raw `httpx` request to the same endpoint (`POST /api/kernel/execute`,
  read until the `done` event), interleaved so that both see the same
  machine load; the target is LiveClient within 5 % of raw;
- the time to open a headless session from nothing: start `marimo edit
  --headless`, wait for `/health`, open the kernel's websocket from Python,
  run the notebook's cells (`open_session()`, measured end to end), and
  where it goes (`LiveSession.open_phases`), next to what a bare
  `python -c "import marimo"` and marimo's CLI import cost on the same machine;
- memory: the resident set of `marimo-engine live open` (peak), of the
  `marimo edit` server and of each process it starts (the kernel).

Servers run with a private `XDG_STATE_HOME` and are stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from marimo_engine.live import LiveClient, open_session

NOTEBOOK = """import marimo

app = marimo.App()


@app.cell
def _():
    value = 1
    return (value,)


if __name__ == "__main__":
    app.run()
"""


async def raw_round_trip(http: httpx.AsyncClient, url: str, session_id: str) -> float:
    """Time one raw `execute("pass")`: POST, then read lines until the `done` event."""
    started = time.perf_counter()
    async with http.stream(
        "POST",
        f"{url}/api/kernel/execute",
        json={"code": "pass"},
        headers={"Marimo-Session-Id": session_id},
        timeout=httpx.Timeout(30.0, read=None),
    ) as response:
        async for line in response.aiter_lines():
            if line == "event: done":
                break
    return time.perf_counter() - started


async def client_round_trip(client: LiveClient) -> float:
    """Time one `LiveClient.execute("pass")`."""
    started = time.perf_counter()
    result = await client.execute("pass")
    elapsed = time.perf_counter() - started
    assert result.success
    return elapsed


async def measure_round_trips(url: str, session_id: str, repeats: int) -> dict[str, Any]:
    """Interleave raw and LiveClient round trips; return their medians in seconds."""
    raw: list[float] = []
    ours: list[float] = []
    async with httpx.AsyncClient() as http, LiveClient(url, session_id) as client:
        for _ in range(5):  # warm up connections and the kernel
            await raw_round_trip(http, url, session_id)
            await client_round_trip(client)
        for i in range(repeats):
            if i % 2:
                raw.append(await raw_round_trip(http, url, session_id))
                ours.append(await client_round_trip(client))
            else:
                ours.append(await client_round_trip(client))
                raw.append(await raw_round_trip(http, url, session_id))
    raw_median = statistics.median(raw)
    ours_median = statistics.median(ours)
    return {
        "repeats": repeats,
        "raw_median_s": raw_median,
        "client_median_s": ours_median,
        "overhead_pct": 100.0 * (ours_median - raw_median) / raw_median,
        "raw_p90_s": statistics.quantiles(raw, n=10)[-1],
        "client_p90_s": statistics.quantiles(ours, n=10)[-1],
    }


def measure_open(folder: Path, env: dict[str, str], runs: int) -> dict[str, Any]:
    """Open a headless session from nothing `runs` times; return medians, phases and each time."""
    times = []
    phases: dict[str, list[float]] = {}
    for i in range(runs):
        notebook = folder / f"open_{i}.py"
        notebook.write_text(NOTEBOOK, encoding="utf-8")
        started = time.perf_counter()
        with open_session(notebook, env=env, startup_timeout_s=120.0) as live:
            elapsed = time.perf_counter() - started
            for name, seconds in live.open_phases.items():
                phases.setdefault(name, []).append(seconds)
            with live.sync_client() as client:
                assert client.execute("print(value)").stdout == "1\n"
        times.append(elapsed)
    return {
        "runs": runs,
        "median_s": statistics.median(times),
        "each_s": times,
        "phases_median_s": {name: statistics.median(v) for name, v in phases.items()},
    }


def measure_imports(env: dict[str, str], runs: int) -> dict[str, float]:
    """Median seconds of a fresh interpreter: bare, `import marimo`, marimo's CLI and server."""
    programs = {
        "python_s": "pass",
        "import_marimo_s": "import marimo",
        "import_marimo_server_s": "import marimo._cli.cli, marimo._server.start",
    }
    figures = {}
    for name, program in programs.items():
        each = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", program], env=env, check=True)
            each.append(time.perf_counter() - started)
        figures[name] = statistics.median(each)
    return figures


def _rss_mib(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def measure_memory(folder: Path, env: dict[str, str]) -> dict[str, Any]:
    """Resident memory of `live open` (peak) and of the server and its processes (MiB)."""
    notebook = folder / "memory.py"
    notebook.write_text(NOTEBOOK, encoding="utf-8")
    command = [str(Path(sys.executable).parent / "marimo-engine"), "live", "open", "--json"]
    with subprocess.Popen(
        [*command, str(notebook)], stdout=subprocess.PIPE, env=env, text=True,
        start_new_session=True,
    ) as process:  # fmt: skip
        try:
            assert process.stdout is not None
            info = json.loads(process.stdout.readline())
            server = int(info["server_pid"])
            figures = {
                "live_open_peak_mib": _rss_mib(process.pid, "VmHWM"),
                "server_mib": _rss_mib(server),
                "server_children_mib": {
                    Path(f"/proc/{pid}/cmdline").read_text().split("\0")[-2][-40:]: _rss_mib(pid)
                    for pid in _children(server)
                },
            }
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=120)
    figures["marimo_total_mib"] = figures["server_mib"] + sum(
        figures["server_children_mib"].values()
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a table, then one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions (smoke run)")
    args = parser.parse_args(argv)
    repeats = 20 if args.quick else 200
    open_runs = 1 if args.quick else 3

    import marimo

    with tempfile.TemporaryDirectory(prefix="marimo-engine-bench-") as tmp:
        folder = Path(tmp)
        env = {**os.environ, "XDG_STATE_HOME": str(folder / "state")}
        opening = measure_open(folder, env, open_runs)
        imports = measure_imports(env, open_runs)
        memory = measure_memory(folder, env)
        notebook = folder / "bench.py"
        notebook.write_text(NOTEBOOK, encoding="utf-8")
        with open_session(notebook, env=env, startup_timeout_s=120.0) as live:
            trips = asyncio.run(measure_round_trips(live.url, live.session_id, repeats))

    figures = {
        "marimo_version": marimo.__version__,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "execute_pass": trips,
        "open_headless_session": opening,
        "fresh_interpreter": imports,
        "memory": memory,
        "target_met": trips["overhead_pct"] <= 5.0,
    }
    print(f"{'measure':<44}{'median':>12}{'p90':>12}")
    print(
        f"{'execute(pass), raw httpx':<44}{trips['raw_median_s'] * 1e3:>10.2f}ms"
        f"{trips['raw_p90_s'] * 1e3:>10.2f}ms"
    )
    print(
        f"{'execute(pass), LiveClient':<44}{trips['client_median_s'] * 1e3:>10.2f}ms"
        f"{trips['client_p90_s'] * 1e3:>10.2f}ms"
    )
    print(f"{'LiveClient overhead (target <= 5 %)':<44}{trips['overhead_pct']:>11.1f}%")
    print(f"{'open a headless session from nothing':<44}{opening['median_s']:>11.2f}s")
    for name, seconds in opening["phases_median_s"].items():
        print(f"{'  of which ' + name.removesuffix('_s'):<44}{seconds:>11.2f}s")
    for name, seconds in imports.items():
        print(f"{'fresh interpreter: ' + name.removesuffix('_s'):<44}{seconds:>11.2f}s")
    print(f"{'memory: live open (peak)':<44}{memory['live_open_peak_mib']:>9.1f}MiB")
    print(f"{'memory: marimo edit server':<44}{memory['server_mib']:>9.1f}MiB")
    for name, mib in memory["server_children_mib"].items():
        print(f"{'  child ' + name[-30:]:<44}{mib:>9.1f}MiB")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
