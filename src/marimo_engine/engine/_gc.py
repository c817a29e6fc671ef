"""Keep Python's cyclic garbage collector off the objects that were there before a run.

A run creates objects steadily (events, outputs, tasks), so the collector
runs; each full collection walks every object the process has: the
interpreter's modules, marimo's, pydantic's, the caller's data. On a
10,000-step chain that was about half of the run's time and made the cost
per step grow with the length of the plan. `gc.freeze()` moves the objects
that exist once a run is prepared into the permanent generation, which
collections do not walk; `gc.unfreeze()` moves them back when the last
running run ends, so garbage cycles among them are collected again after the
run (Python documentation, `gc.freeze`).

Runs may overlap (several on one loop, or in threads): the first one to start
freezes, the last one to end unfreezes, and what a run prepares is frozen too
only when no other run is going (`freeze_prepared`), so a server whose runs
always overlap freezes one snapshot, not more with every run. If something else had frozen objects
before (an application that calls `gc.freeze()` before forking workers), the
engine does nothing, so it never unfreezes what it did not freeze.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

__all__ = ["frozen_heap"]

_lock = threading.Lock()
_holders = 0  # runs inside `frozen_heap` that the engine's freeze covers


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Keep the objects that exist now out of collections until the last run inside ends.

    Yields:
        Nothing; on exit the last run out unfreezes (`gc.unfreeze`).
    """
    global _holders
    with _lock:
        joined = _holders > 0 or gc.get_freeze_count() == 0  # never someone else's freeze
        if joined:
            if _holders == 0:
                gc.freeze()
            _holders += 1
    try:
        yield
    finally:
        if joined:
            with _lock:
                _holders -= 1
                if _holders == 0:
                    gc.unfreeze()


def freeze_prepared() -> None:
    """Freeze what a run has just prepared too (its plan, steps, cells), if the engine froze.

    They live as long as the run and hold no garbage; without this every
    full collection during the run walks them again. Only when this run is
    the only one: while runs keep overlapping (a busy server) the heap is
    not unfrozen, so what is frozen must not grow with each run (garbage
    cycles among frozen objects wait for the unfreeze).
    """
    with _lock:
        if _holders == 1:
            gc.freeze()


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic collection inside (a stretch that only builds long-lived objects).

    For synchronous stretches only. A collector that was disabled before
    stays disabled; one enabled is enabled again on exit, also on error.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
