"""`LiveClientSync`: the blocking facade of `LiveClient`, on a private event-loop thread."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from marimo_engine.errors import UsageError
from marimo_engine.live.client import LiveClient, OutputCallback

if TYPE_CHECKING:
    from types import TracebackType

    from anyio.from_thread import BlockingPortal

    from marimo_engine.live.protocol import (
        BatchResult,
        CellChange,
        CellInfo,
        CellOp,
        DataFrameDescription,
        ExecuteResult,
        NotebookGraph,
        VariableInfo,
    )

__all__ = ["LiveClientSync"]

_T = TypeVar("_T")


class LiveClientSync:
    """Blocking facade of `LiveClient`: the same methods, run on a private event-loop thread.

    Callbacks (`on_output`) run on that thread. Ctrl-C during a call cancels
    it, which interrupts the kernel run. Close it (or use `with`).
    """

    def __init__(self, url: str, session_id: str, **options: Any) -> None:
        """Make the client and start its event-loop thread.

        Args:
            url: The server URL.
            session_id: The session id.
            **options: Keyword arguments of `LiveClient`.
        """
        from anyio.from_thread import start_blocking_portal

        self.client = LiveClient(url, session_id, **options)
        self._portal_cm = start_blocking_portal()
        self._portal: BlockingPortal | None = self._portal_cm.__enter__()

    @classmethod
    def connect(cls, **options: Any) -> LiveClientSync:
        """Find one live session (see `LiveClient.connect`) and return a blocking client on it."""
        from marimo_engine.live.discovery import find_session

        keys = ("url", "port", "file", "session_id", "token", "allow_remote", "registry_dir")
        find_args = {k: options.pop(k) for k in keys if k in options}
        server_url, session = find_session(**find_args)
        for k in ("token", "allow_remote"):
            if k in find_args:
                options[k] = find_args[k]
        options.setdefault("stable_id", session.stable_id)
        return cls(server_url, session.session_id, **options)

    @property
    def url(self) -> str:
        """The server URL."""
        return self.client.url

    @property
    def session_id(self) -> str:
        """The session id."""
        return self.client.session_id

    @property
    def stable_id(self) -> str | None:
        """marimo's stable id of the session, once the first call resolved it (else `None`)."""
        return self.client.stable_id

    def call(self, func: Callable[[], Awaitable[_T]]) -> _T:
        """Run an async function on this client's event-loop thread and return its result.

        Use it to drive `self.client` (the async `LiveClient`) with async code,
        such as iterating `run_plan_live`. Ctrl-C cancels the call.

        Raises:
            UsageError: The client is closed.
        """
        return self._run(func)

    def _run(self, func: Callable[[], Awaitable[_T]]) -> _T:
        if self._portal is None:
            raise UsageError("This LiveClientSync is closed; make a new one.")
        future = self._portal.start_task_soon(func)
        try:
            return future.result()
        except BaseException:
            if not future.done():
                future.cancel()
                concurrent.futures.wait([future], timeout=10.0)
            raise

    def execute(
        self, code: str, *, on_output: OutputCallback | None = None, timeout_s: float | None = None
    ) -> ExecuteResult:
        """See `LiveClient.execute`."""
        return self._run(
            partial(self.client.execute, code, on_output=on_output, timeout_s=timeout_s)
        )

    def check(self) -> dict[str, Any]:
        """See `LiveClient.check`."""
        return self._run(self.client.check)

    def cells(self, *, max_output_chars: int = 2000) -> list[CellInfo]:
        """See `LiveClient.cells`."""
        return self._run(partial(self.client.cells, max_output_chars=max_output_chars))

    def cell(self, target: str) -> CellInfo:
        """See `LiveClient.cell`."""
        return self._run(partial(self.client.cell, target))

    def apply(self, ops: Sequence[CellOp], **options: Any) -> BatchResult:
        """See `LiveClient.apply`."""
        return self._run(partial(self.client.apply, ops, **options))

    def create_cell(self, code: str, **options: Any) -> CellChange:
        """See `LiveClient.create_cell`."""
        return self._run(partial(self.client.create_cell, code, **options))

    def edit_cell(self, target: str, code: str | None = None, **options: Any) -> CellChange:
        """See `LiveClient.edit_cell`."""
        return self._run(partial(self.client.edit_cell, target, code, **options))

    def delete_cell(self, target: str, **options: Any) -> CellChange:
        """See `LiveClient.delete_cell`."""
        return self._run(partial(self.client.delete_cell, target, **options))

    def move_cell(self, target: str, **options: Any) -> CellChange:
        """See `LiveClient.move_cell`."""
        return self._run(partial(self.client.move_cell, target, **options))

    def run_cell(self, target: str, **options: Any) -> CellChange:
        """See `LiveClient.run_cell`."""
        return self._run(partial(self.client.run_cell, target, **options))

    def run_all(self) -> BatchResult | None:
        """See `LiveClient.run_all`."""
        return self._run(self.client.run_all)

    def set_ui_value(self, name: str, value: Any) -> BatchResult:
        """See `LiveClient.set_ui_value`."""
        return self._run(partial(self.client.set_ui_value, name, value))

    def graph(self) -> NotebookGraph:
        """See `LiveClient.graph`."""
        return self._run(self.client.graph)

    def variables(self, **options: Any) -> list[VariableInfo]:
        """See `LiveClient.variables`."""
        return self._run(partial(self.client.variables, **options))

    def describe(self, name: str, **options: Any) -> DataFrameDescription:
        """See `LiveClient.describe`."""
        return self._run(partial(self.client.describe, name, **options))

    def close(self) -> None:
        """Close the connections and stop the event-loop thread. Safe to call twice."""
        portal, self._portal = self._portal, None
        if portal is not None:
            try:
                portal.call(self.client.aclose)
            finally:
                self._portal_cm.__exit__(None, None, None)

    def __enter__(self) -> LiveClientSync:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
