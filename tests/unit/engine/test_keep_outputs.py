"""`keep_outputs`: which outputs a run holds, and that released ones are really freed."""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path
from typing import Any

import pytest

from marimo_engine import EventType, Verdict, execute_plan_sync
from marimo_engine.engine.durable import Decision, resume_run
from marimo_engine.engine.executor import execute_plan, run_sync
from marimo_engine.errors import UsageError
from tests.unit.engine import durable_tools

pytestmark = pytest.mark.anyio


class Blob:
    """An output that can be watched with a weak reference."""

    def __init__(self, tag: str) -> None:
        self.tag = tag


class Watch:
    """Makes blobs and tells which are still alive (the test's view of memory)."""

    def __init__(self) -> None:
        self.refs: dict[str, weakref.ref[Blob]] = {}

    def make(self, tag: str) -> Blob:
        blob = Blob(tag)
        self.refs[tag] = weakref.ref(blob)
        return blob

    def alive(self) -> list[str]:
        return sorted(tag for tag, ref in self.refs.items() if ref() is not None)


def _tools(watch: Watch) -> dict[str, Any]:
    def make(tag: str, x: Any = None) -> Blob:
        return watch.make(tag)

    async def amake(tag: str, x: Any = None) -> Blob:
        await asyncio.sleep(0)
        return watch.make(tag)

    def probe(x: Any = None) -> list[str]:
        return watch.alive()

    async def aprobe(x: Any = None) -> list[str]:
        return watch.alive()

    return {"make": make, "amake": amake, "probe": probe, "aprobe": aprobe}


def _chain(make: str, probe: str) -> dict[str, Any]:
    """a -> b -> c -> leaf -> probe; k (a key finding) reads a; probe reads c, after leaf."""
    return {
        "id": "memory",
        "steps": [
            {"id": "a", "tool": make, "args": {"tag": "a"}},
            {"id": "k", "tool": make, "args": {"tag": "k", "x": "$a"}, "key_finding": True},
            {"id": "b", "tool": make, "args": {"tag": "b", "x": "$a"}},
            {"id": "c", "tool": make, "args": {"tag": "c", "x": "$b"}},
            {"id": "leaf", "tool": make, "args": {"tag": "leaf"}, "depends_on": ["c"]},
            {"id": "probe", "tool": probe, "args": {"x": "$c"}, "depends_on": ["leaf"]},
        ],
    }


@pytest.mark.parametrize(("make", "probe"), [("make", "probe"), ("amake", "aprobe")])
def test_needed_frees_an_output_once_its_last_reader_ended(make: str, probe: str) -> None:
    watch = Watch()
    gc.disable()  # refcounting alone must free them: nothing may still hold them
    try:
        result = execute_plan_sync(_chain(make, probe), _tools(watch), keep_outputs="needed")
    finally:
        gc.enable()
    assert result.verdict is Verdict.SUCCESS
    assert isinstance(result.key_findings["k"], Blob)
    released = result.released
    assert set(released) == {"a", "b", "c", "leaf", "probe"}
    assert released.index("b") < released.index("c")
    assert result.outputs == {"k": result.key_findings["k"]}
    completes = {e.step_id: e for e in result.events if e.type is EventType.STEP_COMPLETE}
    assert all(completes[s].output is None for s in released)
    assert result.events[-1].outputs == result.outputs
    assert watch.alive() == ["k"]


@pytest.mark.parametrize(("make", "probe"), [("make", "probe"), ("amake", "aprobe")])
def test_probe_sees_released_parents_gone(make: str, probe: str) -> None:
    watch = Watch()
    gc.disable()
    try:
        result = execute_plan_sync(_chain(make, probe), _tools(watch), keep_outputs="needed")
    finally:
        gc.enable()
    assert result.verdict is Verdict.SUCCESS
    assert "probe" in result.released
    # probe's own output is released too; its value was reported on its event
    # before: read it from the stream instead.
    watch2 = Watch()
    result2 = execute_plan_sync(_chain(make, probe), _tools(watch2), keep_outputs=["probe"])
    # a and b were freed before probe ran; c and leaf are its inputs, k a key finding
    assert result2.outputs["probe"] == ["c", "k", "leaf"]
    assert "probe" not in result2.released


def test_all_keeps_every_output_and_is_the_default() -> None:
    watch = Watch()
    result = execute_plan_sync(_chain("make", "probe"), _tools(watch))
    assert result.released == []
    assert set(result.outputs) == {"a", "k", "b", "c", "leaf", "probe"}
    assert result.outputs["probe"] == ["a", "b", "c", "k", "leaf"]


def test_a_list_keeps_those_steps_besides_the_needed_ones() -> None:
    watch = Watch()
    result = execute_plan_sync(_chain("make", "probe"), _tools(watch), keep_outputs=["a", "c"])
    assert set(result.outputs) == {"a", "c", "k"}
    assert set(result.released) == {"b", "leaf", "probe"}


async def test_the_stream_still_carries_every_output() -> None:
    """Released is about what the run holds; the consumer got each event whole."""
    watch = Watch()
    run = execute_plan(_chain("amake", "aprobe"), _tools(watch), keep_outputs="needed")
    outputs = {e.step_id: e.output async for e in run if e.type is EventType.STEP_COMPLETE}
    assert set(outputs) == {"a", "k", "b", "c", "leaf", "probe"}
    assert all(isinstance(outputs[s], Blob) for s in ("a", "b", "c", "leaf"))
    assert set(run.result.released) == {"a", "b", "c", "leaf", "probe"}


def test_a_failed_reader_still_releases_and_a_skipped_branch_too() -> None:
    def boom(x: Any = None) -> None:
        raise RuntimeError("no")

    watch = Watch()
    tools = {**_tools(watch), "boom": boom}
    plan = {
        "id": "fail",
        "steps": [
            {"id": "a", "tool": "make", "args": {"tag": "a"}},
            {"id": "s", "tool": "make", "args": {"tag": "s", "x": "$a"}, "run_if": "$a == 0"},
            {"id": "t", "tool": "make", "args": {"tag": "t", "x": "$s"}},
            {"id": "f", "tool": "boom", "args": {"x": "$a"}},
        ],
    }
    result = execute_plan_sync(plan, tools, keep_outputs="needed")
    assert result.verdict is Verdict.FAILURE
    assert result.skipped == ["s", "t"]
    assert result.released == ["a"]
    assert result.outputs == {}


def test_unknown_step_ids_and_bad_values_say_what_to_change() -> None:
    result = execute_plan_sync(_chain("make", "probe"), _tools(Watch()), keep_outputs=["zz"])
    assert result.verdict is Verdict.FAILURE
    assert result.error is not None and result.error.type == "UsageError"
    assert "'zz'" in result.error.message and "Known steps" in result.error.message
    with pytest.raises(UsageError, match='"all", "needed"'):
        execute_plan_sync(_chain("make", "probe"), _tools(Watch()), keep_outputs="some")
    with pytest.raises(UsageError, match="strings"):
        execute_plan_sync(_chain("make", "probe"), _tools(Watch()), keep_outputs=[1])


def test_a_durable_run_resumes_after_releasing(tmp_path: Path, monkeypatch: Any) -> None:
    """The journal has every output: a resumed run reuses the released ones."""
    monkeypatch.setenv("SIDE_LOG", str(tmp_path / "side.log"))
    journal = str(tmp_path / "journal.sqlite3")
    plan = {
        "id": "durable-memory",
        "steps": [
            {"id": "a", "tool": "first", "args": {"x": 1}},
            {"id": "b", "tool": "double", "args": {"y": "$a"}, "intervention_if": "$b.v > 3"},
            {"id": "c", "tool": "last", "args": {"z": "$b.v"}},
        ],
    }
    tools = {
        "first": durable_tools.first,
        "double": durable_tools.double,
        "last": durable_tools.last,
    }
    first = execute_plan_sync(plan, tools, journal=journal, keep_outputs="needed")
    assert first.verdict is Verdict.INTERVENTION_NEEDED
    assert first.released == ["a"]  # b (its only reader) ended; b waits for a person
    assert first.outputs == {"b": {"v": 4}}
    assert first.intervention is not None
    resumed = run_sync(
        resume_run(
            first.run_id,
            tools,
            journal=journal,
            decision=Decision.approve(),
            intervention_id=first.intervention.intervention_id,
        )._run
    )
    assert resumed.verdict is Verdict.SUCCESS
    assert resumed.outputs == {"a": 2, "b": {"v": 4}, "c": 4}
    assert durable_tools.counts(tmp_path / "side.log") == {"first": 1, "double": 1, "last": 1}


def test_on_intervention_continues_and_still_releases() -> None:
    watch = Watch()
    plan = {
        "id": "continue",
        "steps": [
            {"id": "a", "tool": "make", "args": {"tag": "a"}},
            {
                "id": "b",
                "tool": "make",
                "args": {"tag": "b", "x": "$a"},
                "intervention_if": "1 == 1",
            },
            {"id": "p", "tool": "probe", "args": {"x": "$b"}},
        ],
    }
    result = execute_plan_sync(
        plan,
        _tools(watch),
        keep_outputs=["p"],
        on_intervention=lambda info: Decision.approve(),
    )
    assert result.verdict is Verdict.SUCCESS
    assert result.outputs["p"] == ["b"]
    assert result.released == ["a", "b"]


def test_needed_keeps_what_map_markdown_contracts_and_sub_plans_read() -> None:
    """Each output below is read only by a plan language 2 reader that runs late."""
    from marimo_engine.plans.subplans import PlanLibrary
    from tests.unit.engine import map_tools

    child = {
        "id": "child",
        "inputs": {"n": {}},
        "steps": [{"id": "c1", "tool": "double", "args": {"x": "$input.n"}, "output": True}],
    }
    late = {"depends_on": ["slow"]}
    plan = {
        "id": "readers",
        "steps": [
            {"id": "slow", "tool": "measure_sync", "args": {"name": "slow"}},
            {"id": "files", "tool": "listing", "args": {"count": 2}},
            {"id": "n", "tool": "double", "args": {"x": 2}},
            {"id": "limit", "tool": "double", "args": {"x": 50}},
            {"id": "sub_n", "tool": "double", "args": {"x": 3}},
            {"id": "sizes", "tool": "measure_sync", "map": "$files", "args": {"name": "$item"}}
            | late,
            {"id": "report", "markdown": "n is $n"} | late,
            {"id": "checked", "tool": "double", "args": {"x": 1}, "expect": ["$self < $limit"]}
            | late,
            {"id": "nested", "plan": "child", "args": {"n": "$sub_n"}} | late,
        ],
    }
    tools = {
        "listing": map_tools.listing,
        "measure_sync": map_tools.measure_sync,
        "double": map_tools.double,
    }
    ends = ["sizes", "report", "checked", "nested"]
    result = execute_plan_sync(plan, tools, keep_outputs=ends, plans=PlanLibrary({"child": child}))
    assert result.verdict is Verdict.SUCCESS, result.error
    assert result.outputs == {
        "sizes": [6, 6],
        "report": "n is 4",
        "checked": 2,
        "nested": {"c1": 12},
    }
    assert sorted(result.released) == ["files", "limit", "n", "slow", "sub_n"]


async def test_a_worker_still_holding_its_hand_over_does_not_keep_the_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker thread that waits for the GIL inside `call_soon_threadsafe` holds its arguments.

    Seen on a loaded CI machine: the future in those arguments kept step 'a''s
    output alive after the run released it. Here the arguments are kept on
    purpose, as such a worker would, and the output must still be freed.
    """
    from marimo_engine.engine._threads import WorkerPool

    loop = asyncio.get_running_loop()
    held: list[tuple[Any, ...]] = []
    plain = loop.call_soon_threadsafe

    def holding(callback: Any, *args: Any, **kwargs: Any) -> Any:
        held.append(args)
        return plain(callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_soon_threadsafe", holding)
    watch = Watch()
    pool = WorkerPool(2)
    try:
        output = await pool.run(watch.make, {"tag": "a"})
        assert output.tag == "a" and held
        del output
        assert watch.alive() == []
    finally:
        pool.shutdown()
