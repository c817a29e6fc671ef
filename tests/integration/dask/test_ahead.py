"""Tries submitted ahead of their dependencies' end (`engine._dask_ahead`), on the tests' cluster.

A chain's tries go to Dask at once, each taking the future of the one
before; the driver still runs each step and emits the same events as in
process. What must hold when a try went ahead but its step may not run: a
failed dependency, a run that stops on another branch, a killed worker, a
cancelled run. Tools that went ahead write a marker file when they run, so
a test sees whether a tool was called.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from marimo_engine import EventType, Verdict
from marimo_engine.engine.events import Event
from marimo_engine.engine.executor import execute_plan

from . import tools
from .test_cluster import _until, run_killing_a_worker
from .test_contract import _shape, tasks_left

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(600)]

TOOLS = {name: getattr(tools, name) for name in ("echo", "boom", "spin", "asleep", "pid_then_wait")}


async def _run(plan: dict[str, Any], **options: Any) -> list[Event]:
    async with execute_plan(plan, TOOLS, **options) as run:
        return [event async for event in run]


def _marked(folder: Path, name: str) -> dict[str, Any]:
    """A step that may go ahead and marks, in `folder`, that its tool ran."""
    return {"tool": "spin", "args": {"seconds": 0, "marker": str(folder / name)}}


async def test_a_chain_goes_to_the_cluster_at_once_and_gives_the_in_process_events(
    dask_address: str,
) -> None:
    from distributed import Client

    steps = [{"id": "s0", "tool": "echo", "args": {"value": 1}}]
    steps += [
        {"id": f"s{i}", "tool": "echo", "args": {"value": f"$s{i - 1}"}} for i in range(1, 20)
    ]
    plan = {"id": "ahead-chain", "steps": steps}
    async with Client(dask_address, asynchronous=True, set_as_default=False) as client:
        keys_at_s1: list[str] = []

        async def look(event: Event) -> None:
            if event.type is EventType.STEP_START and event.step_id == "s1":

                async def submitted() -> list[str]:
                    keys = await client.run_on_scheduler(
                        lambda dask_scheduler: [str(k) for k in dask_scheduler.tasks]
                    )
                    return [k for k in keys if k.startswith("marimo-engine-ahead-chain-")]

                later = {f"s{i}" for i in range(2, 20)}
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 30
                keys = await submitted()
                while not later <= {k.split("-")[4] for k in keys} and loop.time() < deadline:
                    await asyncio.sleep(0.05)
                    keys = await submitted()
                keys_at_s1.extend(keys)

        here = await _run(plan)
        there = await _run(plan, executor=client, on_event=look)
        assert _shape([e.to_json() for e in there]) == _shape([e.to_json() for e in here])
        assert there[-1].verdict is Verdict.SUCCESS
        assert there[-1].to_json()["outputs"]["s19"] == 1
        # When s1 started, the tries of the steps after it were on the scheduler already.
        assert {k.split("-")[4] for k in keys_at_s1} >= {f"s{i}" for i in range(2, 20)}
        assert await tasks_left(client, "marimo-engine-ahead-chain-") == []


async def _same_as_in_process(
    plan_in: Any, tmp_path: Path, dask_address: str
) -> tuple[list[Event], Path]:
    """Run `plan_in(folder)` in process and on Dask; the Dask events and its marker folder.

    The events must say the same, and nothing of the Dask run is left on the cluster.
    """
    from distributed import Client

    (here_dir := tmp_path / "inprocess").mkdir()
    (there_dir := tmp_path / "dask").mkdir()
    async with Client(dask_address, asynchronous=True, set_as_default=False) as client:
        here = await _run(plan_in(here_dir))
        plan = plan_in(there_dir)
        there = await _run(plan, executor=client)
        assert await tasks_left(client, f"marimo-engine-{plan['id']}-") == []
    assert _shape([e.to_json() for e in there]) == _shape([e.to_json() for e in here])
    return there, there_dir


async def test_a_failed_step_keeps_the_tools_of_the_tries_ahead_of_it_from_running(
    dask_address: str, tmp_path: Path
) -> None:
    def plan(folder: Path) -> dict[str, Any]:
        return {
            "id": "ahead-failed",
            "steps": [
                {"id": "a", "tool": "echo", "args": {"value": 1}},
                {"id": "b", "tool": "boom", "depends_on": ["a"]},
                {"id": "c", **_marked(folder, "c"), "depends_on": ["b"]},
                {"id": "d", **_marked(folder, "d"), "depends_on": ["c"]},
            ],
        }

    there, folder = await _same_as_in_process(plan, tmp_path, dask_address)
    assert there[-1].verdict is Verdict.FAILURE
    assert {e.step_id for e in there if e.step_id} == {"a", "b"}
    assert list(folder.iterdir()) == []  # neither c's nor d's tool was called


async def test_a_run_stopped_on_another_branch_starts_no_try_that_went_ahead(
    dask_address: str, tmp_path: Path
) -> None:
    def plan(folder: Path) -> dict[str, Any]:
        return {
            "id": "ahead-stopped",
            "steps": [
                {"id": "a", "tool": "asleep", "args": {"seconds": 1.0}},
                {"id": "b", **_marked(folder, "b"), "depends_on": ["a"]},
                {"id": "q", "tool": "boom"},
            ],
        }

    # q fails at once; a, running, finishes; b never starts (its try was cancelled).
    there, folder = await _same_as_in_process(plan, tmp_path, dask_address)
    assert [e.type for e in there if e.step_id == "a"] == [
        EventType.STEP_START,
        EventType.STEP_COMPLETE,
    ]
    assert not any(e.step_id == "b" for e in there)
    assert list(folder.iterdir()) == []


async def test_a_try_ahead_that_ran_before_the_stop_reached_its_worker_is_reported(
    dask_address: str, tmp_path: Path
) -> None:
    from distributed import Client

    marker = tmp_path / "b"
    plan = {
        "id": "ahead-ran",
        "steps": [
            {"id": "a", "tool": "asleep", "args": {"seconds": 0.5}},
            {"id": "b", **_marked(tmp_path, "b"), "depends_on": ["a"]},
            {"id": "q", "tool": "boom"},
        ],
    }

    stopped: list[Event] = []

    async def slow_consumer(event: Event) -> None:
        # q's ERROR stops the run; holding it (and the events after it) until
        # b's tool has run on its worker makes the stop reach the workers
        # after b's try began there.
        if event.type is EventType.ERROR and event.step_id == "q":
            stopped.append(event)
        if stopped:
            await _until(marker.exists, timeout_s=60, what="b's tool on a worker")

    async with Client(dask_address, asynchronous=True, set_as_default=False) as client:
        events = await _run(plan, executor=client, on_event=slow_consumer)
        assert await tasks_left(client, "marimo-engine-ahead-ran-") == []
    types = [(e.step_id, e.type) for e in events if e.step_id in ("b", "q")]
    # b ran: reported as a running step that finishes, after the ERROR that stopped the run.
    assert types == [
        ("q", EventType.STEP_START),
        ("q", EventType.ERROR),
        ("b", EventType.STEP_START),
        ("b", EventType.STEP_COMPLETE),
    ]
    assert events[-1].verdict is Verdict.FAILURE
    assert (events[-1].outputs or {})["b"].summary == "spun"


async def test_a_worker_killed_under_a_step_leaves_the_tries_ahead_of_it_unrun(
    killable_dask_address: str, tmp_path: Path
) -> None:
    from distributed import Client

    pid = tmp_path / "pid"
    (folder := tmp_path / "ahead").mkdir()
    plan = {
        "id": "ahead-killed",
        "steps": [
            {"id": "w", "tool": "pid_then_wait", "args": {"marker": str(pid), "seconds": 120}},
            {"id": "b", **_marked(folder, "b"), "depends_on": ["w"]},
            {"id": "c", **_marked(folder, "c"), "depends_on": ["b"]},
        ],
    }
    async with Client(killable_dask_address, asynchronous=True, set_as_default=False) as client:
        events = await run_killing_a_worker(plan, TOOLS, client, pid)
        assert [(e.step_id, e.type) for e in events if e.step_id] == [
            ("w", EventType.STEP_START),
            ("w", EventType.ERROR),
        ]
        error = next(e for e in events if e.type is EventType.ERROR).error
        assert error is not None and error.type == "KilledWorker"
        assert await tasks_left(client, "marimo-engine-ahead-killed-") == []
    assert list(folder.iterdir()) == []
