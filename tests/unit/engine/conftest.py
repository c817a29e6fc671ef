"""Helpers for engine tests: run a plan through the public API and keep its events."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from marimo_engine import Event, EventType, execute_plan


async def collect(
    plan: Any, tools: Mapping[str, Callable[..., Any]] | Any, **options: Any
) -> list[Event]:
    """Run `plan` with `execute_plan` and return every event it yielded."""
    return [event async for event in execute_plan(plan, tools, **options)]


def types(events: list[Event], step_id: str | None = None) -> list[EventType]:
    """Event types, optionally only those of one step."""
    return [e.type for e in events if step_id is None or e.step_id == step_id]


def finish(events: list[Event]) -> Event:
    """The run's FINISH, checking it is the one and only last event."""
    assert [e.type for e in events].count(EventType.FINISH) == 1
    assert events[-1].type is EventType.FINISH
    assert events[0].type is EventType.START
    return events[-1]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def side_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file `durable_tools` append each call to (`$SIDE_LOG`); `counts` reads it."""
    path = tmp_path / "side.log"
    monkeypatch.setenv("SIDE_LOG", str(path))
    return path


@pytest.fixture
def journal(tmp_path: Path) -> str:
    """A journal file path of the test's own (created by the first run)."""
    return str(tmp_path / "journal.sqlite3")
