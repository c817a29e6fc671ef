"""The default worker count suits I/O-bound tools; the collector freeze is the engine's own."""

from __future__ import annotations

import gc
import threading

import pytest

from marimo_engine import Verdict, execute_plan_sync
from marimo_engine.engine._gc import frozen_heap
from marimo_engine.engine._threads import WorkerPool
from marimo_engine.engine.executor import DEFAULT_MAX_WORKERS

K = 40  # well above the old default of min(32, cpu_count + 4) on small machines


def test_default_pool_size_is_documented_and_overridable() -> None:
    assert DEFAULT_MAX_WORKERS >= 100
    assert WorkerPool().max_workers == DEFAULT_MAX_WORKERS
    assert WorkerPool(3).max_workers == 3


def test_k_blocking_steps_all_run_at_once_with_default_options() -> None:
    """K plain tools that block until all K are inside: only K threads at once can pass."""
    barrier = threading.Barrier(K, timeout=120)

    def wait_for_all(i: int) -> int:
        barrier.wait()  # raises BrokenBarrierError if fewer than K ever run at once
        return i

    plan = {
        "id": "fan",
        "steps": [{"id": f"w{i}", "tool": "wait", "args": {"i": i}} for i in range(K)],
    }
    result = execute_plan_sync(plan, {"wait": wait_for_all})
    assert result.verdict is Verdict.SUCCESS, result.error
    assert sorted(result.outputs.values()) == list(range(K))


def test_max_workers_still_bounds_the_threads() -> None:
    inside = 0
    most = 0
    lock = threading.Lock()

    def work(i: int) -> int:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        threading.Event().wait(0.01)
        with lock:
            inside -= 1
        return i

    plan = {
        "id": "bound",
        "steps": [{"id": f"w{i}", "tool": "work", "args": {"i": i}} for i in range(12)],
    }
    result = execute_plan_sync(plan, {"work": work}, max_workers=2)
    assert result.verdict is Verdict.SUCCESS
    assert most <= 2


def test_a_run_freezes_the_heap_and_unfreezes_it_after() -> None:
    seen: list[int] = []

    def probe() -> int:
        seen.append(gc.get_freeze_count())
        return 1

    assert gc.get_freeze_count() == 0
    result = execute_plan_sync(
        {"id": "f", "steps": [{"id": "p", "tool": "probe"}]}, {"probe": probe}
    )
    assert result.verdict is Verdict.SUCCESS
    assert seen and seen[0] > 0  # frozen while the step ran
    assert gc.get_freeze_count() == 0


def test_someone_elses_freeze_is_left_alone() -> None:
    # Other tests' threads (a Dask cluster's, a server's) may free frozen objects
    # meanwhile, so counts can only fall a little: a second freeze would add the
    # 1,000 lists below, and an unfreeze would drop the count to 0.
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        garbage = [[] for _ in range(1000)]
        with frozen_heap():
            assert before // 2 < gc.get_freeze_count() < before + len(garbage)
        assert before // 2 < gc.get_freeze_count() <= before  # not unfrozen by the engine
        del garbage
    finally:
        gc.unfreeze()


def test_overlapping_runs_unfreeze_only_when_the_last_ends() -> None:
    outer = frozen_heap()
    outer.__enter__()
    try:
        assert gc.get_freeze_count() > 0
        with frozen_heap():
            pass
        assert gc.get_freeze_count() > 0  # the outer run still holds it
    finally:
        outer.__exit__(None, None, None)
    assert gc.get_freeze_count() == 0


@pytest.fixture(autouse=True)
def _no_freeze_leaks() -> None:
    assert gc.get_freeze_count() == 0


def test_overlapping_runs_freeze_no_more_than_the_first_snapshot() -> None:
    """A busy server whose runs always overlap must not freeze more with every run."""
    from marimo_engine.engine._gc import freeze_prepared

    outer = frozen_heap()
    outer.__enter__()
    try:
        freeze_prepared()  # the only run: what it prepared is frozen too
        frozen = gc.get_freeze_count()
        garbage = [[] for _ in range(1000)]
        with frozen_heap():
            freeze_prepared()  # another run is going: nothing more is frozen
            # (at most as many: a frozen object another test's thread lets go leaves the count)
            assert gc.get_freeze_count() <= frozen
        del garbage
    finally:
        outer.__exit__(None, None, None)
    assert gc.get_freeze_count() == 0
