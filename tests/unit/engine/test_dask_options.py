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


def test_a_map_steps_list_is_read_on_a_worker_with_the_in_process_rules() -> None:
    from marimo_engine.plans.schema import Step

    step = Step(id="m", tool="echo", map="$a.rows", args={"value": "$item"})
    assert _dask_tasks.map_list(step, {"a": {"rows": (1, 2)}}) == [1, 2]
    with pytest.raises(CarriedError) as caught:
        _dask_tasks.map_list(step, {"a": {"rows": 3}})
    error = caught.value.unpack()
    assert isinstance(error, TypeError)
    assert str(error) == (
        "'map' of step 'm' is '$a.rows', which is int 3, not a list; map over a list "
        "(such as '$s1.files')."
    )
    described = _dask_tasks.describe_items([{"x": 1}, "b"])
    assert [d.summary for d in described] == [{"x": 1}, "b"]
    assert _dask_tasks.as_list(({"x": 1}, None)) == [{"x": 1}, None]


def test_a_per_item_intervention_if_is_evaluated_on_a_worker_as_in_process() -> None:
    text = "$index >= 1 and $m.size > $limit.value"
    values = {"limit": {"value": 2}}
    output = [{"size": 5}, {"size": 1}, {"size": 3}]
    assert _dask_tasks.first_item(text, "m", values, ["a", "b", "c"], output) == 2
    assert (
        _dask_tasks.first_item(text, "m", {"limit": {"value": 9}}, ["a", "b", "c"], output) is None
    )
    failed = _dask_tasks.first_item("$m.weight > 1", "m", {}, ["a"], [{"size": 5}])
    assert isinstance(failed, CarriedError)
    assert isinstance(failed.unpack(), UnknownReferenceError)
