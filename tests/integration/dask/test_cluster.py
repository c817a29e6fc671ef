"""What only a cluster shows: data that never reaches the driver, a dying worker, a cancel.

Also the executor the CLI starts itself (`--executor dask`: a local cluster
for the run, closed after it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from marimo_engine import EventType, Verdict
from marimo_engine.engine.dask_host import RemoteOutput
from marimo_engine.engine.events import Event
from marimo_engine.engine.executor import execute_plan
from tests.processes import run_process

from . import tools
from .conftest import ROOT
from .test_contract import tasks_left

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(600)]

ROWS = 10**7


async def _until(check: Any, *, timeout_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s} s")
        await asyncio.sleep(0.05)


async def run_measuring_the_driver(
    plan: dict[str, Any], registry: dict[str, Any], client: Any, warm_up: dict[str, Any]
) -> tuple[list[Event], int, int]:
    """Run `plan` on `client` after `warm_up` (a small version of it, for the imports).

    Returns:
        The run's events, the driver's peak Python heap during it (bytes,
        `tracemalloc`), and the bytes the workers sent to clients (Dask's
        transfer log, `who` None).
    """

    def clear(dask_worker: Any) -> None:
        dask_worker.transfer_outgoing_log.clear()

    async with execute_plan(warm_up, registry, executor=client, gather=True) as run:
        assert [e async for e in run][-1].verdict is Verdict.SUCCESS
    await client.run(clear)
    tracemalloc.start()
    try:
        async with execute_plan(plan, registry, executor=client) as run:
            events = [e async for e in run]
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    def sent(dask_worker: Any) -> list[dict[str, Any]]:
        return [dict(entry) for entry in dask_worker.transfer_outgoing_log]

    transfers = [t for log in (await client.run(sent)).values() for t in log]
    return events, peak_bytes, sum(t["total"] for t in transfers if t["who"] is None)


async def until_idle(client: Any, timeout_s: float = 30.0) -> None:
    """Wait until no worker runs a task; fail after `timeout_s` seconds."""

    def executing(dask_worker: Any) -> int:
        return len(dask_worker.state.executing)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while any((await client.run(executing)).values()):
        assert loop.time() < deadline, "a worker still runs a task of the cancelled run"
        await asyncio.sleep(0.1)


async def test_a_large_dataframe_passes_three_steps_without_reaching_the_driver(
    dask_address: str,
) -> None:
    from distributed import Client

    plan = {
        "id": "big-frame",
        "steps": [
            {"id": "make", "tool": "make_frame", "args": {"rows": ROWS}},
            {"id": "wider", "tool": "add_column", "args": {"frame": "$make"}},
            # contracts are checked where the frames are (`DaskTarget.check_contract`)
            {"id": "even", "tool": "keep_even", "args": {"frame": "$wider"},
             "schema": {"type": "object", "required": ["shape"],
                        "properties": {"columns": {"const": ["x", "y", "z"]}}}},
        ],
    }  # fmt: skip
    registry = {n: getattr(tools, n) for n in ("make_frame", "add_column", "keep_even")}
    async with Client(dask_address, asynchronous=True, set_as_default=False) as client:
        # A small run first: imports (marimo's compiler, Dask's protocol) are not the data.
        warm_up = {"steps": [{"id": "m", "tool": "make_frame", "args": {"rows": 10}}]}
        events, peak_bytes, to_clients = await run_measuring_the_driver(
            plan, registry, client, warm_up
        )
    assert events[-1].verdict is Verdict.SUCCESS, [e.msg for e in events][-3:]
    frame_bytes = ROWS * 8 * 2
    # The driver held nothing of the size of a frame (80 MB a column).
    assert peak_bytes < frame_bytes / 8, peak_bytes
    # Dask's transfer log: what workers sent to a client (`who` is None) is small.
    assert to_clients < 1_000_000, to_clients
    outputs = events[-1].outputs or {}
    even = outputs["even"]
    assert isinstance(even, RemoteOutput)
    assert even.nbytes > frame_bytes  # x, y and z of 4/7 of the rows
    assert even.summary["__type__"] == "DataFrame"
    assert even.summary["shape"] == [sum(1 for i in range(7) if i % 2 == 0) * ROWS // 7 + 1, 3]
    assert even.summary["columns"] == ["x", "y", "z"]
    assert len(even.summary["head"]) == 20
    complete = next(e for e in events if e.type is EventType.STEP_COMPLETE and e.step_id == "make")
    assert complete.to_json()["output"]["shape"] == [ROWS, 2]


async def run_killing_a_worker(
    plan: dict[str, Any], registry: dict[str, Any], client: Any, marker: Path
) -> list[Event]:
    """Run `plan` on `client`, killing a worker once the first step starts.

    The first step is a `pid_then_wait` that writes its worker's pid to `marker`.

    Returns:
        The run's events.
    """
    async with execute_plan(plan, registry, executor=client) as run:
        events = []
        async for event in run:
            events.append(event)
            if event.type is EventType.STEP_START and len(events) == 2:
                await _until(
                    lambda: marker.exists() and marker.read_text(),
                    timeout_s=120,
                    what="the tool's start on a worker",
                )
                os.kill(int(marker.read_text()), signal.SIGKILL)
    return events


async def test_a_worker_killed_mid_step_fails_that_try_and_the_retry_runs_on_another(
    killable_dask_address: str, tmp_path: Path
) -> None:
    from distributed import Client

    marker = tmp_path / "pid"
    plan = {
        "id": "killed-worker",
        "steps": [
            {"id": "w", "tool": "pid_then_wait", "retries": 1,
             "args": {"marker": str(marker), "seconds": 120}},
        ],
    }  # fmt: skip
    async with Client(killable_dask_address, asynchronous=True, set_as_default=False) as client:
        registry = {"pid_then_wait": tools.pid_then_wait}
        events = await run_killing_a_worker(plan, registry, client, marker)
        killed = int(marker.read_text())
        types = [e.type for e in events if e.step_id == "w"]
        assert types == [EventType.STEP_START, EventType.STEP_RETRY, EventType.STEP_COMPLETE]
        retry = events[2]
        assert retry.error is not None and retry.error.type == "KilledWorker"
        assert events[-1].verdict is Verdict.SUCCESS
        assert (events[-1].outputs or {})["w"] != killed  # another worker process


async def test_a_cancelled_run_leaves_no_task_on_the_cluster(
    dask_address: str, tmp_path: Path
) -> None:
    from distributed import Client

    marker = tmp_path / "started"
    plan = {
        "id": "cancelled-run",
        "steps": [
            {"id": "first", "tool": "spin", "args": {"seconds": 300, "marker": str(marker)}},
            {"id": "second", "tool": "spin", "args": {"seconds": 300}},
            {"id": "after", "tool": "spin", "args": {"seconds": 1}, "depends_on": ["first"]},
        ],
    }
    async with Client(dask_address, asynchronous=True, set_as_default=False) as client:
        run = execute_plan(plan, {"spin": tools.spin}, executor=dask_address)
        await cancel_once_started(run, "first", marker.exists, client)


async def cancel_once_started(run: Any, step_id: str, started: Any, client: Any) -> None:
    """Cancel `run` once `step_id` started and `started()` is true; check nothing is left.

    The run must fail as cancelled within 60 s with no abandoned try, and
    leave no task of its plan on the cluster and no worker busy.
    """
    async for event in run:
        if event.type is EventType.STEP_START and event.step_id == step_id:
            await _until(started, timeout_s=120, what="the tool's start on a worker")
            break
    loop = asyncio.get_running_loop()
    began = loop.time()
    await run.aclose()
    assert loop.time() - began < 60
    result = run.result
    assert result.verdict is Verdict.FAILURE
    assert "cancelled" in (result.events[-1].reason or "")
    assert result.abandoned == []  # the spinning tries were interrupted on their workers
    assert await tasks_left(client, f"marimo-engine-{result.events[0].plan_id}-") == []
    await until_idle(client)


def test_the_cli_starts_a_local_cluster_for_the_run_and_closes_it(tmp_path: Path) -> None:
    plan = {
        "id": "cli-local-cluster",
        "steps": [
            {"id": "a", "tool": "reading", "key_finding": True},
            {"id": "b", "tool": "echo", "args": {"value": "$a.level"}},
            {"id": "c", "tool": "echo", "args": {"value": 1}, "run_if": "$a.level < 3"},
        ],
    }
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan), encoding="utf-8")
    command = [sys.executable, "-m", "marimo_engine.cli.main", "run", str(path)]
    tools_option = ["--tools", "tests.integration.dask.tools", "--json"]
    import socket

    # Dask's default HTTP port taken (another cluster, another run): no warning about it
    with contextlib.ExitStack() as taken:
        holder = taken.enter_context(socket.socket())
        with contextlib.suppress(OSError):  # already taken: as good
            holder.bind(("0.0.0.0", 8787))
            holder.listen()
        done = run_process([*command, *tools_option, "--executor", "dask"], cwd=ROOT, timeout_s=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "already in use" not in done.stderr, done.stderr[-3000:]
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert events[0]["type"] == "START"
    assert events[-1]["type"] == "FINISH" and events[-1]["verdict"] == "SUCCESS"
    assert events[-1]["outputs"] == {"a": {"level": 20.9, "items": ["a", "b"]}, "b": 20.9}
    assert [e["step_id"] for e in events if e["type"] == "STEP_SKIPPED"] == ["c"]
    bad = run_process([*command, *tools_option, "--executor", "spark"], cwd=ROOT, timeout_s=120)
    assert bad.returncode == 2
    assert "executor must be 'inprocess', 'dask', 'dask://HOST:PORT'" in bad.stderr
