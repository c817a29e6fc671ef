"""The Dask executor's options and its worker-side pieces, without a cluster."""

from __future__ import annotations

import importlib.util
import pickle
import threading
import time
from typing import Any

import pytest

from marimo_engine._json import to_jsonable
from marimo_engine.engine import _dask_tasks
from marimo_engine.engine._dask_tasks import CarriedError, Description, ToolRef
from marimo_engine.engine.dask_host import RemoteOutput, dask_target
from marimo_engine.engine.executor import execute_plan, execute_plan_sync
from marimo_engine.errors import ToolCancelledError, UnknownReferenceError, UsageError


def echo(value: Any = None) -> Any:
    return value


@pytest.mark.parametrize("executor", ["spark", "dask://", "", "DASK"])
def test_an_unknown_executor_is_refused_in_one_line(executor: str) -> None:
    with pytest.raises(
        UsageError, match=r"^executor must be 'inprocess', 'dask', 'dask://HOST:PORT'"
    ):
        execute_plan({"steps": [{"id": "a", "tool": "echo"}]}, {"echo": echo}, executor=executor)


def test_an_object_that_is_not_a_client_is_refused() -> None:
    with pytest.raises(UsageError, match="got a dict"):
        dask_target({})


def test_gather_must_be_step_ids_or_true() -> None:
    with pytest.raises(UsageError, match="gather must be True or a collection of step ids"):
        dask_target("dask", gather="s1")


def test_without_distributed_the_error_gives_the_install_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "distributed" else real(name, *a),
    )
    with pytest.raises(UsageError, match=r'pip install "marimo-engine\[dask\]"'):
        execute_plan_sync({"steps": [{"id": "a", "tool": "echo"}]}, {"echo": echo}, executor="dask")


def test_inprocess_is_the_default_and_gather_is_ignored_there() -> None:
    result = execute_plan_sync(
        {"steps": [{"id": "a", "tool": "echo", "args": {"value": 3}}]},
        {"echo": echo},
        executor="inprocess",
        gather=["a"],
    )
    assert result.outputs == {"a": 3}


def test_a_remote_output_is_its_summary_in_json() -> None:
    description = Description(
        summary={"__type__": "DataFrame", "shape": [10, 2]},
        gathered=False,
        type_name="pandas.DataFrame",
        nbytes=160,
        intervention=None,
    )
    remote = RemoteOutput("s1", description, future=None)
    assert to_jsonable(remote) == {"__type__": "DataFrame", "shape": [10, 2]}
    assert to_jsonable({"nested": [remote]}) == {"nested": [description.summary]}
    assert "s1" in repr(remote) and "pandas.DataFrame" in repr(remote)


def test_errors_cross_the_wire_as_themselves() -> None:
    original = UnknownReferenceError("no such path", reference="$a.b", segment="b")
    carried = pickle.loads(pickle.dumps(CarriedError(original)))
    rebuilt = carried.unpack()
    assert type(rebuilt) is UnknownReferenceError
    assert (str(rebuilt), rebuilt.reference, rebuilt.segment) == ("no such path", "$a.b", "b")
    for base in (KeyboardInterrupt("stop"), SystemExit("bye")):
        back = pickle.loads(pickle.dumps(CarriedError(base))).unpack()
        assert type(back) is type(base) and str(back) == str(base)


def test_a_tool_that_cannot_be_loaded_says_what_to_install() -> None:
    ref = ToolRef("gone", ("no_such_module_anywhere", "f"), None)
    problems = _dask_tasks.check_tools([ref])
    assert "No module named 'no_such_module_anywhere'" in problems["gone"]
    assert "Install module 'no_such_module_anywhere' where the workers run" in problems["gone"]


_started = threading.Event()


def _spin() -> None:
    _started.set()
    while True:
        pass


def test_a_try_is_interrupted_on_its_thread() -> None:
    ref = ToolRef("spin", (__name__, "_spin"), None)
    failure: list[BaseException] = []

    def worker() -> None:
        try:
            _dask_tasks.call(ref, {}, "token-1")
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    assert _started.wait(30)
    deadline = time.monotonic() + 30
    while _dask_tasks.interrupt(["token-1"]) and time.monotonic() < deadline:
        time.sleep(0.01)
    thread.join(30)
    assert not thread.is_alive()
    assert isinstance(failure[0], CarriedError)
    assert isinstance(failure[0].unpack(), ToolCancelledError)
    assert _dask_tasks.interrupt(["token-1"]) == []


def listing(count: int = 2) -> list[int]:
    return list(range(count))


@pytest.mark.parametrize(
    "step",
    [
        {"id": "b", "tool": "echo", "map": "$a", "args": {"value": "$item"}},
        {"id": "b", "plan": "inner"},
    ],
    ids=["map", "sub-plan"],
)
def test_map_and_sub_plan_steps_are_refused_on_dask_before_a_cluster_starts(
    step: dict[str, Any],
) -> None:
    inner = {"id": "inner", "steps": [{"id": "x", "tool": "echo"}]}
    plan = {"id": "outer", "steps": [{"id": "a", "tool": "listing"}, step]}
    result = execute_plan_sync(
        plan, {"echo": echo, "listing": listing}, executor="dask", plans={"inner": inner}
    )
    errors = [e for e in result.events if e.type == "ERROR"]
    assert result.verdict == "FAILURE"
    assert len(errors) == 1
    assert "do not run on Dask yet ('b')" in errors[0].msg
    assert "run this plan in process" in errors[0].msg
    assert result.events[-1].type == "FINISH"
