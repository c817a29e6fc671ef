"""The plan contract on a Dask cluster: the same plans give the same events as in process.

Each plan of the contract (the spec's "Running" clauses, as
`tests/unit/engine/test_running.py` checks them in process) runs in process
and on the tests' cluster (2 worker processes); per step, the events must
say the same (type, attempt, error type and message, reason, expression,
output as JSON, key finding), and the verdicts and `FINISH` outputs (as
JSON) must match. Output contracts, plan inputs (`$input.NAME`, given
with `INPUTS`), map steps (per-item skips, retries, timeouts, failures and
interventions, whose events are compared in item order) and sub-plan steps
(their nested events too, from `PLANS`) are part of it. On Dask, outputs
stay on the workers: events carry the JSON summary computed there, which is
the JSON the in-process run writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from marimo_engine import EventType, Verdict
from marimo_engine.engine.dask_host import RemoteOutput
from marimo_engine.engine.events import Event
from marimo_engine.engine.executor import execute_plan
from marimo_engine.errors import UsageError

from . import tools

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(600)]

TOOLS = {
    name: getattr(tools, name)
    for name in (
        "reading", "echo", "aecho", "boom", "flaky", "spin", "asleep", "sometimes_slow",
        "raise_base", "listing", "measure", "double", "add",
    )
}  # fmt: skip

PLANS = {
    "child": {
        "id": "child",
        "inputs": {"n": {}, "bonus": {"required": False, "default": 1}},
        "steps": [
            {"id": "c1", "tool": "double", "args": {"x": "$input.n"}, "output": True,
             "run_if": "$input.n > 0"},
            {"id": "c2", "tool": "add", "args": {"values": ["$c1", "$input.bonus"]},
             "output": True, "expect": ["$self > $input.n"]},
            {"id": "c3", "tool": "double", "args": {"x": "$c2"}},
        ],
    },
    "unmarked": {"id": "unmarked", "steps": [
        {"id": "u1", "tool": "reading", "args": {"level": 5}},
        {"id": "u2", "tool": "echo", "args": {"value": "$u1.level"}},
    ]},
    "failing": {"id": "failing", "steps": [
        {"id": "f1", "tool": "double", "args": {"x": 1}},
        {"id": "f2", "tool": "boom", "args": {"message": "disk full"}},
    ]},
    "asking": {"id": "asking", "steps": [
        {"id": "a1", "tool": "double", "args": {"x": 4}, "intervention_if": "$a1 > 5"},
    ]},
    "outer": {"id": "outer", "inputs": {"n": {}}, "steps": [
        {"id": "o1", "plan": "child", "args": {"n": "$input.n"}},
    ]},
    "mapping": {"id": "mapping", "inputs": {"count": {}}, "steps": [
        {"id": "l", "tool": "listing", "args": {"count": "$input.count"}},
        {"id": "m", "tool": "measure", "map": "$l", "args": {"name": "$item"}},
    ]},
}  # fmt: skip
"""The sub-plans the contract's sub-plan steps run (`plans=`)."""


def _plans(markers: Path) -> dict[str, dict[str, Any]]:
    """The contract's plans; `markers` is a folder of the run's own counter files."""
    return {
        "frame": {"steps": [
            {"id": "a", "tool": "reading"},
            {"id": "b", "tool": "echo", "args": {"value": "$a.level"}},
        ]},
        "skips": {"steps": [
            {"id": "a", "tool": "echo", "args": {"value": 1}, "run_if": "1 > 2"},
            {"id": "b", "tool": "echo", "args": {"value": "$a"}},
            {"id": "c", "tool": "echo", "depends_on": ["b"]},
            {"id": "d", "tool": "echo", "args": {"value": 4}},
            {"id": "r", "tool": "reading"},
            {"id": "e", "tool": "echo", "args": {"value": 1}, "run_if": "$r.level < 19.5"},
            {"id": "f", "tool": "echo", "args": {"value": 2}, "run_if": "$r.level > 19.5"},
        ]},
        "references": {"steps": [
            {"id": "a", "tool": "reading", "args": {"level": 14.5}},
            {"id": "b", "tool": "aecho", "args": {"value": {
                "whole": "$a", "level": "$a.level", "item": "$a.items.1",
                "text": "O2 is $a.level % ($$5)", "nested": ["$a.level", {"deep": "$a.items.0"}],
            }}},
            {"id": "c", "tool": "echo", "args": {"value": "$b"}},
        ]},
        "missing-path": {"steps": [
            {"id": "a", "tool": "reading"},
            {"id": "b", "tool": "echo", "args": {"value": "$a.pressure"}},
        ]},
        "expression-error": {"steps": [
            {"id": "a", "tool": "echo"},
            {"id": "b", "tool": "echo", "run_if": "$a < 15"},
        ]},
        "retries": {"steps": [
            {"id": "f", "tool": "flaky", "retries": 3,
             "args": {"marker": str(markers / "flaky"), "fail_times": 2}},
            {"id": "use", "tool": "echo", "args": {"value": "$f.value"}, "key_finding": True},
        ]},
        "last-retry": {"steps": [{"id": "b", "tool": "boom", "retries": 1}]},
        "timeout-plain": {"steps": [
            {"id": "s", "tool": "spin", "args": {"seconds": 60}, "timeout_s": 0.5},
        ]},
        "timeout-coroutine": {"steps": [
            {"id": "s", "tool": "asleep", "args": {"seconds": 60}, "timeout_s": 0.5},
        ]},
        "timeout-retried": {"steps": [
            {"id": "s", "tool": "sometimes_slow", "timeout_s": 4.0, "retries": 1,
             "args": {"marker": str(markers / "slow")}},
        ]},
        "base-exceptions": {"steps": [
            {"id": "h", "tool": "raise_base", "args": {"kind": "halt"}},
            {"id": "k", "tool": "raise_base", "args": {"kind": "keyboard"}},
            {"id": "x", "tool": "raise_base", "args": {"kind": "exit"}},
            {"id": "y", "tool": "echo", "depends_on": ["h", "k", "x"]},
        ]},
        "key-finding": {"steps": [
            {"id": "a", "tool": "reading", "key_finding": True},
            {"id": "b", "tool": "echo", "args": {"value": 3}},
        ]},
        "intervention": {"steps": [
            {"id": "o2", "tool": "reading", "args": {"level": 14.0},
             "intervention_if": "$o2.level < 15"},
            {"id": "next", "tool": "echo", "args": {"value": "$o2.level"}},
        ]},
        "no-intervention": {"steps": [
            {"id": "base", "tool": "reading", "args": {"level": 3}},
            {"id": "o2", "tool": "reading", "intervention_if": "$o2.level < $base.level"},
            {"id": "next", "tool": "echo", "args": {"value": "$o2.level"}},
        ]},
        "output-contracts": {"steps": [
            {"id": "a", "tool": "reading", "args": {"level": 14.5},
             "expect": ["$self.level > 10", "$a.level < 100"],
             "schema": {"type": "object", "required": ["level"]}},
            {"id": "b", "tool": "echo", "args": {"value": {"rows": 3, "level": "$a.level"}},
             "expect": ["$self.rows == 3", "$self.level == $a.level"]},
        ]},
        "broken-contract": {"steps": [
            {"id": "a", "tool": "reading", "args": {"level": 14.5}},
            {"id": "b", "tool": "echo", "args": {"value": "$a.level"},
             "expect": ["$self > 20"]},
        ]},
        "broken-schema": {"steps": [
            {"id": "a", "tool": "echo", "args": {"value": {"rows": 3}},
             "schema": {"type": "object", "required": ["level"]}},
        ]},
        "plan-inputs": {
            "inputs": {"count": {"required": True}, "limit": {"default": 10, "required": False}},
            "steps": [
                {"id": "a", "tool": "reading", "args": {"level": 14.5}},
                {"id": "b", "tool": "echo",
                 "args": {"value": {"rows": "$input.count", "level": "$a.level"}},
                 "run_if": "$a.level > $input.count",
                 "intervention_if": "$self.rows > $input.limit",
                 "expect": ["$self.rows == $input.count", "$b.level < $input.limit * 2"]},
                {"id": "c", "tool": "echo", "args": {"value": "$input.count"},
                 "run_if": "$input.count > 1", "key_finding": True},
                {"id": "d", "tool": "echo", "args": {"value": "$input.limit"},
                 "run_if": "$input.count > 5"},
            ],
        },
        "input-intervention": {"inputs": {"limit": {"default": 15, "required": False}}, "steps": [
            {"id": "a", "tool": "reading", "args": {"level": 14.5},
             "intervention_if": "$a.level < $input.limit"},
            {"id": "next", "tool": "echo", "args": {"value": "$a.level"}},
        ]},
        "broken-input-contract": {"inputs": {"count": {"default": 4, "required": False}}, "steps": [
            {"id": "a", "tool": "reading", "args": {"level": 14.5}},
            {"id": "b", "tool": "echo", "args": {"value": "$a"},
             "expect": ["$self.level < $input.count"]},
        ]},
        "map": {"steps": [
            {"id": "files", "tool": "listing", "args": {"count": 6}},
            {"id": "sizes", "tool": "measure", "map": "$files",
             "args": {"name": "$item", "position": "$index"}, "map_concurrency": 2},
            {"id": "one", "tool": "echo", "args": {"value": "$sizes.1.name"}},
            {"id": "all", "tool": "echo", "args": {"value": "$sizes"},
             "expect": ["$self.5.position == 5"]},
        ]},
        "map-item-paths": {"steps": [
            {"id": "r", "tool": "reading", "args": {"level": 7}},
            {"id": "rows", "tool": "echo", "args": {"value": [
                {"name": "a", "n": 1}, {"name": "b", "n": 2}, {"name": "c", "n": 3}]}},
            {"id": "m", "tool": "aecho", "map": "$rows",
             "args": {"value": {"n": "$item.n", "text": "$item.name at $index",
                                "level": "$r.level"}},
             "run_if": "$item.n != 2", "key_finding": True},
        ]},
        "map-path-to-tuple": {"steps": [
            {"id": "r", "tool": "reading"},
            {"id": "m", "tool": "echo", "map": "$r.items", "args": {"value": "$item"}},
        ]},
        "map-not-a-list": {"steps": [
            {"id": "r", "tool": "reading"},
            {"id": "m", "tool": "echo", "map": "$r.level", "args": {"value": "$item"}},
        ]},
        "map-empty": {"steps": [
            {"id": "files", "tool": "listing", "args": {"count": 0}},
            {"id": "m", "tool": "measure", "map": "$files", "args": {"name": "$item"}},
        ]},
        "map-fail": {"steps": [
            {"id": "files", "tool": "echo", "args": {"value": ["ok.csv", "bad.csv", "ok2.csv"]}},
            {"id": "m", "tool": "measure", "map": "$files", "args": {"name": "$item"},
             "map_concurrency": 1},
            {"id": "after", "tool": "echo", "args": {"value": "$m"}},
        ]},
        "map-collect": {"steps": [
            {"id": "files", "tool": "echo", "args": {"value": ["ok.csv", "bad.csv", "ok2.csv"]}},
            {"id": "m", "tool": "measure", "map": "$files", "args": {"name": "$item"},
             "map_errors": "collect"},
            {"id": "after", "tool": "echo", "args": {"value": "$m.1.error"}},
        ]},
        "map-retries-timeouts": {"steps": [
            {"id": "markers", "tool": "echo", "args": {"value": ["m0", "m1", "m2"]}},
            {"id": "f", "tool": "flaky", "map": "$markers", "retries": 1,
             "args": {"marker": f"{markers}/$item", "fail_times": 1}},
            {"id": "seconds", "tool": "echo", "args": {"value": [0.01, 60]}},
            {"id": "s", "tool": "spin", "map": "$seconds", "args": {"seconds": "$item"},
             "timeout_s": 1.0, "map_errors": "collect"},
        ]},
        "map-intervention": {"steps": [
            {"id": "files", "tool": "listing", "args": {"count": 4}},
            {"id": "sizes", "tool": "measure", "map": "$files",
             "args": {"name": "$item", "position": "$index"},
             "intervention_if": "$index >= 2 and $sizes.position >= 2"},
        ]},
        "map-whole-intervention": {"steps": [
            {"id": "files", "tool": "listing", "args": {"count": 4}},
            {"id": "sizes", "tool": "measure", "map": "$files", "args": {"name": "$item"},
             "intervention_if": "$sizes.3.size > 5"},
        ]},
        "map-over-input": {
            "inputs": {"names": {"required": False, "default": ["x.csv", "yy.csv"]}}, "steps": [
            {"id": "m", "tool": "measure", "map": "$input.names", "args": {"name": "$item"}},
        ]},
        "sub-plan": {"steps": [
            {"id": "p1", "tool": "double", "args": {"x": 3}},
            {"id": "p2", "plan": "child", "args": {"n": "$p1"}},
            {"id": "p3", "tool": "add", "args": {"values": ["$p2.c1", "$p2.c2"]}},
            {"id": "p4", "tool": "echo", "args": {"value": "$p2"}, "run_if": "$p2.c2 > 3"},
        ]},
        "sub-plan-path-input": {"steps": [
            {"id": "r", "tool": "reading", "args": {"level": 2.5}},
            {"id": "p2", "plan": "child", "args": {"n": "$r.level", "bonus": "$r.level"},
             "expect": ["$self.c2 == 7.5"], "intervention_if": "$p2.c1 > 100"},
            {"id": "p3", "plan": "unmarked"},
            {"id": "p4", "tool": "echo", "args": {"value": "$p3.u1.level"}},
        ]},
        "sub-plan-failing": {"steps": [
            {"id": "p1", "tool": "double", "args": {"x": 3}},
            {"id": "p2", "plan": "failing"},
        ]},
        "sub-plan-asking": {"steps": [
            {"id": "p2", "plan": "asking"},
            {"id": "p3", "tool": "double", "args": {"x": "$p2.a1"}},
        ]},
        "sub-plan-nested": {"steps": [
            {"id": "p1", "tool": "double", "args": {"x": 1}},
            {"id": "p2", "plan": "outer", "args": {"n": "$p1"}},
            {"id": "p3", "tool": "echo", "args": {"value": "$p2.o1.c2"}},
        ]},
        "sub-plan-with-map": {"steps": [
            {"id": "p1", "tool": "double", "args": {"x": 2}},
            {"id": "p2", "plan": "mapping", "args": {"count": "$p1"}},
            {"id": "p3", "tool": "echo", "args": {"value": "$p2.m.2.name"}},
        ]},
        "invalid": {"steps": [
            {"id": "a", "tool": "nope"},
            {"id": "b", "tool": "echo", "args": {"value": "$zz.level"}},
        ]},
    }  # fmt: skip


INPUTS = {"plan-inputs": {"count": 3}}
"""The `inputs=` a contract plan runs with (by plan name); the others take none."""

VERDICTS = {
    "output-contracts": Verdict.SUCCESS,
    "broken-contract": Verdict.FAILURE,
    "broken-schema": Verdict.FAILURE,
    "plan-inputs": Verdict.SUCCESS,
    "input-intervention": Verdict.INTERVENTION_NEEDED,
    "broken-input-contract": Verdict.FAILURE,
    "map": Verdict.SUCCESS,
    "map-item-paths": Verdict.SUCCESS,
    "map-path-to-tuple": Verdict.SUCCESS,
    "map-not-a-list": Verdict.FAILURE,
    "map-empty": Verdict.SUCCESS,
    "map-fail": Verdict.FAILURE,
    "map-collect": Verdict.SUCCESS,
    "map-retries-timeouts": Verdict.SUCCESS,
    "map-intervention": Verdict.INTERVENTION_NEEDED,
    "map-whole-intervention": Verdict.INTERVENTION_NEEDED,
    "map-over-input": Verdict.SUCCESS,
    "sub-plan": Verdict.SUCCESS,
    "sub-plan-path-input": Verdict.SUCCESS,
    "sub-plan-failing": Verdict.FAILURE,
    "sub-plan-asking": Verdict.INTERVENTION_NEEDED,
    "sub-plan-nested": Verdict.SUCCESS,
    "sub-plan-with-map": Verdict.SUCCESS,
}
"""The verdict in process of the plans that must not end at validation (a plan's own check)."""


def _shape(events: list[dict[str, Any]]) -> dict[str, list[tuple[Any, ...]]]:
    """Per step, what each event says (not its message, time or duration).

    A map step's items run at once, so their events (with `item`) are
    compared in item order, after the step's own; a sub-plan's steps are
    named by their plan and step ids.
    """
    steps: dict[str, list[tuple[Any, ...]]] = {}
    items: dict[str, list[tuple[Any, ...]]] = {}
    for e in events:
        error = e.get("error") or {}
        name = e["step_id"] or e["type"]
        if e.get("parent_step_id"):
            name = f"{e['plan_id']}/{name}"
        into = steps if e.get("item") is None else items
        into.setdefault(name, []).append(
            (
                e.get("item"),
                e.get("parent_step_id"),
                e["type"],
                e.get("attempt"),
                error.get("type"),
                error.get("message"),
                e.get("reason"),
                e.get("expression"),
                json.dumps(e.get("output"), sort_keys=True),
                json.dumps(e.get("outputs"), sort_keys=True),
                e.get("key_finding"),
                e.get("verdict"),
            )
        )
    for name, found in items.items():
        steps.setdefault(name, []).extend(sorted(found, key=repr))
    return steps


async def tasks_left(client: Any, prefix: str, wait_s: float = 30.0) -> list[str]:
    """Keys starting with `prefix` still on the scheduler, once gone or after `wait_s` s."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        keys = await client.run_on_scheduler(
            lambda dask_scheduler: [str(k) for k in dask_scheduler.tasks]
        )
        left = [k for k in keys if k.startswith(prefix)]
        if not left or loop.time() > deadline:
            return left
        await asyncio.sleep(0.1)


async def _run(plan: dict[str, Any], **options: Any) -> list[Event]:
    async with execute_plan(plan, TOOLS, **options) as run:
        return [event async for event in run]


async def test_every_contract_plan_gives_the_same_events_on_dask(
    dask_address: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributed import Client

    from marimo_engine.engine import dask_host

    passes = (dask_host.ITEMS_HERE_BYTES, 0)
    for folder in ("inprocess", *(f"dask-{here_bytes}" for here_bytes in passes)):
        (tmp_path / folder).mkdir()
    async with Client(dask_address, asynchronous=True, set_as_default=False) as client:
        for name, plan in _plans(tmp_path / "inprocess").items():
            given = INPUTS.get(name)
            here = await _run({"id": f"contract-{name}", **plan}, inputs=given, plans=PLANS)
            expected = _shape([e.to_json() for e in here])
            # A map's list that stayed on the cluster comes here when small; the
            # second pass keeps every such list there, as a large one is.
            for here_bytes in passes[: 2 if "map" in name else 1]:
                monkeypatch.setattr(dask_host, "ITEMS_HERE_BYTES", here_bytes)
                there_plan = _plans(tmp_path / f"dask-{here_bytes}")[name]
                there = await _run(
                    {"id": f"contract-{name}", **there_plan},
                    inputs=given,
                    plans=PLANS,
                    executor=client,
                )
                got = _shape([e.to_json() for e in there])
                differing = {k: (got.get(k), expected.get(k)) for k in {*got, *expected}}
                differing = {k: v for k, v in differing.items() if v[0] != v[1]}
                assert got == expected, (name, here_bytes, differing)
                assert there[-1].verdict is here[-1].verdict, name
            assert here[-1].verdict is VERDICTS.get(name, here[-1].verdict), name
            if name in VERDICTS:  # the steps ran (not a plan refused before its first step)
                assert any(e.type is EventType.STEP_START for e in here), name
        # Nothing of the runs (nor of their sub-plans) is left on the cluster.
        assert await tasks_left(client, "marimo-engine-contract-") == []
        for sub in PLANS:
            assert await tasks_left(client, f"marimo-engine-{sub}-") == [], sub


async def test_outputs_stay_remote_unless_asked_for(dask_address: str) -> None:
    plan = {
        "id": "remote-outputs",
        "steps": [
            {"id": "a", "tool": "reading"},
            {"id": "b", "tool": "reading", "args": {"level": 3}},
            {"id": "c", "tool": "echo", "args": {"value": "$a"}, "key_finding": True},
        ],
    }
    address = "dask://" + dask_address.removeprefix("tcp://")
    events = await _run(plan, executor=address, gather=["b"])
    finish = events[-1]
    assert finish.verdict is Verdict.SUCCESS
    outputs = finish.outputs or {}
    assert isinstance(outputs["a"], RemoteOutput)
    assert outputs["a"].summary == {"level": 20.9, "items": ["a", "b"]}
    assert outputs["a"].type_name == "tests.integration.dask.tools.Reading"
    assert outputs["a"].future is None  # released when the run ended
    assert outputs["b"] == tools.Reading(3)  # asked for
    assert outputs["c"] == tools.Reading(20.9)  # a key finding comes back whole
    complete = next(e for e in events if e.type is EventType.STEP_COMPLETE and e.step_id == "a")
    assert complete.to_json()["output"] == {"level": 20.9, "items": ["a", "b"]}


async def test_a_tool_the_workers_cannot_import_fails_its_step_saying_so(
    dask_address: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "only_here_tools.py").write_text(
        "def local_only(value=None):\n    return value\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "only_here_tools", raising=False)
    import only_here_tools  # type: ignore[import-not-found]

    plan = {
        "id": "not-on-workers",
        "steps": [
            {"id": "a", "tool": "echo", "args": {"value": 1}},
            {"id": "b", "tool": "local_only", "args": {"value": "$a"}, "retries": 2},
        ],
    }
    registry = {"echo": tools.echo, "local_only": only_here_tools.local_only}
    async with execute_plan(plan, registry) as run:  # in process it runs
        assert [e async for e in run][-1].verdict is Verdict.SUCCESS
    async with execute_plan(plan, registry, executor=dask_address) as run:
        events = [e async for e in run]
    error = next(e for e in events if e.type is EventType.ERROR)
    assert error.step_id == "b" and error.error is not None
    assert error.error.type == "UnknownToolError"
    assert "cannot be loaded on Dask worker" in error.error.message
    assert "No module named 'only_here_tools'" in error.error.message
    assert "Install module 'only_here_tools' where the workers run" in error.error.message
    assert not any(e.type is EventType.STEP_RETRY for e in events)  # not retried
    assert events[-1].verdict is Verdict.FAILURE


async def test_a_journal_with_dask_is_refused_in_one_line(dask_address: str) -> None:
    with pytest.raises(UsageError, match="cannot be journaled here"):
        execute_plan({"steps": [{"id": "a", "tool": "echo"}]}, TOOLS, executor="dask", journal=True)


async def test_approvals_and_a_persons_answer_work_on_dask(dask_address: str) -> None:
    from marimo_engine.engine.durable import Decision, InterventionInfo

    asked: list[InterventionInfo] = []

    def answer(info: InterventionInfo) -> Decision:
        asked.append(info)
        if info.kind == "approval":
            return Decision.approve()
        return Decision.answer({"level": 21.0})

    plan = {
        "id": "dask-approvals",
        "steps": [
            {
                "id": "a",
                "tool": "reading",
                "args": {"level": 12},
                "intervention_if": "$a.level < 15",
            },
            {"id": "b", "tool": "echo", "args": {"value": "$a.level"}, "requires_approval": True},
        ],
    }
    events = await _run(plan, executor=dask_address, on_intervention=answer)
    assert [i.kind for i in asked] == ["condition", "approval"]
    assert asked[0].output is not None
    assert json.loads(asked[1].model_dump_json())["args"] == {"value": 21.0}
    assert events[-1].verdict is Verdict.SUCCESS
    assert (events[-1].outputs or {})["a"] == {"level": 21.0}  # the person's answer
    assert events[-1].to_json()["outputs"]["b"] == 21.0


def test_a_synchronous_client_is_used_through_its_scheduler(dask_address: str) -> None:
    from distributed import Client

    from marimo_engine import execute_plan_sync

    with Client(dask_address, set_as_default=False) as client:
        result = execute_plan_sync(
            {"steps": [{"id": "a", "tool": "reading"}, {"id": "b", "tool": "echo",
                        "args": {"value": "$a.items"}}]},
            TOOLS,
            executor=client,
            gather=["b"],
        )  # fmt: skip
        assert result.verdict is Verdict.SUCCESS, result.error
        assert result.outputs["b"] == ("a", "b")
        assert client.status == "running"  # the caller's client stays open
