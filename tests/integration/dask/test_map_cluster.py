"""Map and sub-plan steps on a cluster: what only a cluster shows.

Big items that never reach the driver, a worker killed during an item, a
cancelled map, and the bound on items in flight (the events of map and
sub-plan steps are compared with in process in `test_contract.py`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from marimo_engine import EventType, Verdict
from marimo_engine.engine.dask_host import RemoteOutput
from marimo_engine.engine.executor import execute_plan

from . import tools
from .test_cluster import (
    cancel_once_started,
    run_killing_a_worker,
    run_measuring_the_driver,
)
from .test_contract import tasks_left

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(600)]

ROWS = 10**6
CHUNKS = 4


async def test_a_maps_big_items_and_results_never_reach_the_driver(dask_address: str) -> None:
    from distributed import Client

    plan = {
        "id": "big-map",
        "steps": [
            {"id": "chunks", "tool": "chunks", "args": {"count": CHUNKS, "rows": ROWS}},
            {"id": "counts", "tool": "row_count", "map": "$chunks", "args": {"frame": "$item"},
             "run_if": "$index >= 0", "intervention_if": "$index >= 0 and $counts < 0"},
            {"id": "wider", "tool": "add_column", "map": "$chunks", "args": {"frame": "$item"},
             "map_concurrency": 2},
            {"id": "total", "tool": "add", "args": {"values": "$counts"}, "key_finding": True},
        ],
    }  # fmt: skip
    registry = {n: getattr(tools, n) for n in ("chunks", "row_count", "add_column", "add")}
    async with Client(dask_address, asynchronous=True, set_as_default=False) as client:
        # A small run first: imports (marimo's compiler, Dask's protocol, pandas) are not the data.
        first, *rest = plan["steps"]
        warm_up = {"steps": [{**first, "args": {"count": CHUNKS, "rows": 10}}, *rest]}
        events, peak_bytes, to_clients = await run_measuring_the_driver(
            plan, registry, client, warm_up
        )
        assert await tasks_left(client, "marimo-engine-big-map-") == []
    assert events[-1].verdict is Verdict.SUCCESS, [e.msg for e in events][-3:]
    data_bytes = CHUNKS * ROWS * 8 * 2
    assert peak_bytes < data_bytes / 8, peak_bytes  # nothing of the size of a chunk (16 MB)
    assert to_clients < 1_000_000, to_clients  # Dask's transfer log: nothing big to a client
    outputs = events[-1].outputs or {}
    assert outputs["total"] == CHUNKS * ROWS  # a key finding comes back whole
    counts, wider = outputs["counts"], outputs["wider"]
    assert isinstance(counts, RemoteOutput) and counts.summary == [ROWS] * CHUNKS
    assert isinstance(wider, RemoteOutput) and wider.nbytes > CHUNKS * ROWS * 8 * 3
    assert [frame["shape"] for frame in wider.summary] == [[ROWS, 3]] * CHUNKS
    assert not any(e.type is EventType.INTERVENTION_NEEDED for e in events)


async def test_a_worker_killed_during_an_item_fails_that_try_and_its_retry_runs_on_another(
    killable_dask_address: str, tmp_path: Path
) -> None:
    from distributed import Client

    marker = tmp_path / "pid"
    plan = {
        "id": "killed-in-map",
        "inputs": {"markers": {"required": False, "default": [str(marker)]}},
        "steps": [
            {"id": "w", "tool": "pid_then_wait", "map": "$input.markers", "retries": 1,
             "args": {"marker": "$item", "seconds": 120}},
        ],
    }  # fmt: skip
    async with Client(killable_dask_address, asynchronous=True, set_as_default=False) as client:
        events = await run_killing_a_worker(
            plan, {"pid_then_wait": tools.pid_then_wait}, client, marker
        )
        killed = int(marker.read_text())
        types = [(e.type, e.item) for e in events if e.step_id == "w"]
        assert types == [
            (EventType.STEP_START, None),
            (EventType.STEP_RETRY, 0),
            (EventType.STEP_COMPLETE, None),
        ]
        retry = events[2]
        assert retry.error is not None and retry.error.type == "KilledWorker"
        assert events[-1].verdict is Verdict.SUCCESS
        [pid] = events[-1].to_json()["outputs"]["w"]
        assert pid != killed  # another worker process
        assert await tasks_left(client, "marimo-engine-killed-in-map-") == []


async def test_a_cancelled_map_leaves_no_task_on_the_cluster(
    dask_address: str, tmp_path: Path
) -> None:
    from distributed import Client

    markers = [str(tmp_path / f"started-{i}") for i in range(6)]
    plan = {
        "id": "cancelled-map",
        "steps": [
            {"id": "markers", "tool": "echo", "args": {"value": markers}},
            {"id": "spins", "tool": "spin", "map": "$markers", "map_concurrency": 3,
             "args": {"seconds": 300, "marker": "$item"}},
        ],
    }  # fmt: skip
    async with Client(dask_address, asynchronous=True, set_as_default=False) as client:
        run = execute_plan(plan, {"spin": tools.spin, "echo": tools.echo}, executor=client)
        await cancel_once_started(
            run, "spins", lambda: any(Path(m).exists() for m in markers), client
        )


async def test_map_concurrency_bounds_the_items_in_flight_on_the_cluster(
    dask_address: str, tmp_path: Path
) -> None:
    plan = {
        "id": "bounded-map",
        "steps": [
            {"id": "names", "tool": "listing", "args": {"count": 6}},
            {"id": "g", "tool": "gauged", "map": "$names", "map_concurrency": 2,
             "args": {"folder": str(tmp_path), "name": "$item", "seconds": 0.5}},
        ],
    }  # fmt: skip
    registry = {"listing": tools.listing, "gauged": tools.gauged}
    async with execute_plan(plan, registry, executor=dask_address, gather=["g"]) as run:
        events = [e async for e in run]
    assert events[-1].verdict is Verdict.SUCCESS
    most = events[-1].outputs["g"]  # type: ignore[index]
    assert len(most) == 6 and max(most) <= 2  # the cluster has 4 threads
