"""`LiveClient`: drive a running marimo notebook from Python (async; `sync_client` blocks).

Everything goes through `POST /api/kernel/execute` (the one agent endpoint
marimo leaves open to non-browser clients): plain code for `execute()`, and
code generated from `templates` for the notebook operations, which use
marimo's private `marimo._code_mode` inside the kernel. Cells created or
edited here appear in the person's browser and are saved to the `.py` file
by the kernel; marimo's reactivity re-runs what depends on them.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from marimo_engine.errors import (
    LiveConnectionError,
    LiveError,
    LiveKernelError,
    LiveSessionEndedError,
    LiveTimeoutError,
    LiveUnsupportedError,
    PersonCellError,
    StaleCellError,
    UsageError,
)
from marimo_engine.live import _http, _watch
from marimo_engine.live._stream import Tail, aiter_capped_lines, aiter_sse, recover_console_tail
from marimo_engine.live._watch import SessionRef
from marimo_engine.live.protocol import (
    BatchResult,
    CellChange,
    CellInfo,
    CellOp,
    ConsoleChunk,
    CreateCell,
    DataFrameDescription,
    DeleteCell,
    EditCell,
    ExecuteRequest,
    ExecuteResult,
    MoveCell,
    NotebookGraph,
    RunCell,
    SetUIValue,
    SSEEvent,
    VariableInfo,
)
from marimo_engine.live.templates import (
    MARKER_PREFIX,
    new_marker,
    parse_reply,
    render,
    strip_reply,
)

if TYPE_CHECKING:
    from types import TracebackType

    import anyio
    import httpx

__all__ = ["TESTED_MARIMO", "LiveClient", "OutputCallback", "is_tested_marimo"]

TESTED_MARIMO = ">=0.25.2,<0.26"
"""The marimo versions the live bridge is tested with (its code mode is private)."""

DEFAULT_WATCH_INTERVAL_S = 1.0
"""Seconds between checks that a streaming run's session and kernel still exist."""

DEFAULT_MAX_OUTPUT_CHARS = 1_000_000
"""Characters of stdout, and of stderr, that one run keeps (the tail)."""

_MIN_LINE_BYTES = 8 * 1024 * 1024
"""Bytes of one stream line kept at least (a template's reply line can be long)."""

OutputCallback = Callable[[ConsoleChunk], Any]
"""Called with each stdout/stderr chunk as it arrives (may return an awaitable)."""

_T = TypeVar("_T")


def is_tested_marimo(version: str) -> bool:
    """Return whether a marimo version string is in `TESTED_MARIMO` (>=0.25.2, <0.26)."""
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            return False
        parts.append(int(digits))
    while len(parts) < 3:
        parts.append(0)
    return (0, 25, 2) <= tuple(parts) < (0, 26, 0)


class LiveClient:
    """Async client of one kernel session of a running marimo server.

    Use it as an async context manager (`async with LiveClient(...) as
    client:`) or call `aclose()`. Every request has a timeout, and so has the
    wait for a run's first bytes; a run of code streams for as long as it
    runs (`timeout_s` bounds it if you want), watched every
    `watch_interval_s` for a kernel that died or restarted
    (`LiveSessionEndedError`). Cancelling the caller closes the stream, which
    makes marimo interrupt the kernel. The session is addressed by marimo's
    stable id, so a person reloading the tab does not cut the client off.

    Attributes:
        url: The server URL.
        session_id: The session id given (the browser's or the stable id).
        stable_id: marimo's stable id, once resolved (see the property).
        timeout_s: Seconds to connect and send, for plain requests, and for
            the first bytes of a run's answer.
        run_timeout_s: Default bound in seconds on one kernel run; `None`
            lets runs stream as long as they take.
        watch_interval_s: Seconds between checks of the session while a run
            streams; `None` when off.
        max_output_chars: Characters of stdout, and of stderr, a run keeps.
    """

    def __init__(
        self,
        url: str,
        session_id: str,
        *,
        token: str | None = None,
        allow_remote: bool = False,
        timeout_s: float = _http.DEFAULT_TIMEOUT_S,
        run_timeout_s: float | None = None,
        watch_interval_s: float | None = DEFAULT_WATCH_INTERVAL_S,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
        stable_id: str | None = None,
    ) -> None:
        """Make a client; nothing is sent until the first call.

        Args:
            url: The server URL, such as `"http://127.0.0.1:2718"`.
            session_id: The session's id: the browser's (`"s_..."`, see
                `discovery.list_sessions`) or marimo's stable id (`"sess-..."`).
                Either way the client follows the session by its stable id,
                so a person reloading the tab does not cut it off.
            token: Access token; `None` uses `MARIMO_TOKEN` if set.
            allow_remote: Allow a host other than loopback.
            timeout_s: Seconds to connect, send, and wait for any answer
                (also the first bytes of a run's stream).
            run_timeout_s: Default bound on each kernel run, in seconds.
            watch_interval_s: While a run streams, seconds between checks that
                the session and its kernel still exist (a restarted or dead
                kernel ends the call with `LiveSessionEndedError`); `None`
                turns the checks off.
            max_output_chars: Characters of stdout and of stderr kept per run
                (the tail; `ExecuteResult` says how many were dropped).
            stable_id: marimo's stable id of `session_id`'s session when the
                caller already knows it (from `list_sessions`), which saves
                the first call a look-up; `None` looks it up.

        Raises:
            UsageError: A remote host without `allow_remote`, an empty session
                id, or a bound that is not positive.
        """
        if not session_id:
            raise UsageError("LiveClient needs a session id; list them with list_sessions(url).")
        if watch_interval_s is not None and watch_interval_s <= 0:
            raise UsageError(f"watch_interval_s must be positive or None, got {watch_interval_s}.")
        if timeout_s <= 0 or max_output_chars < 0:
            raise UsageError("timeout_s must be positive and max_output_chars not negative.")
        self.url = _http.check_host(url, allow_remote=allow_remote)
        self.session_id = session_id
        self.timeout_s = timeout_s
        self.run_timeout_s = run_timeout_s
        self.watch_interval_s = watch_interval_s
        self.max_output_chars = max_output_chars
        self._token = _http.resolve_token(token)
        self._http: httpx.AsyncClient | None = None
        self._ref: SessionRef | None = (
            SessionRef(key=session_id, stable_id=stable_id) if stable_id else None
        )

    @property
    def stable_id(self) -> str | None:
        """marimo's stable id of the session, once the first call resolved it (else `None`)."""
        return self._ref.stable_id if self._ref is not None else None

    @classmethod
    async def connect(
        cls,
        *,
        url: str | None = None,
        port: int | None = None,
        file: str | None = None,
        session_id: str | None = None,
        token: str | None = None,
        allow_remote: bool = False,
        registry_dir: str | None = None,
        **options: Any,
    ) -> LiveClient:
        """Find one live session (see `discovery.find_session`) and return a client on it.

        Raises:
            LiveSelectionError: No server or session matched, or several did.
            LiveError: A request failed.
        """
        import anyio

        from marimo_engine.live.discovery import find_session

        server_url, session = await anyio.to_thread.run_sync(
            partial(
                find_session,
                url=url,
                port=port,
                file=file,
                session_id=session_id,
                token=token,
                allow_remote=allow_remote,
                registry_dir=registry_dir,
            )
        )
        options.setdefault("stable_id", session.stable_id)
        return cls(
            server_url, session.session_id, token=token, allow_remote=allow_remote, **options
        )

    def _client(self) -> httpx.AsyncClient:
        import httpx

        if self._http is None:
            self._http = httpx.AsyncClient(
                headers=_http.auth_headers(self._token),
                timeout=httpx.Timeout(self.timeout_s),
            )
        return self._http

    async def aclose(self) -> None:
        """Close the HTTP connections. Safe to call twice."""
        client, self._http = self._http, None
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> LiveClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- running code ------------------------------------------------------

    async def _session(self) -> SessionRef:
        """Resolve the session once (by browser or stable id) from `GET /api/sessions`.

        Raises:
            LiveSelectionError: The server lists no such session.
            LiveError: The request failed.
        """
        if self._ref is not None:
            return self._ref
        sessions = await _watch.list_sessions_async(
            self._client(), self.url, timeout_s=self.timeout_s
        )
        if sessions is None:  # a server without the route: address it by the given id
            self._ref = SessionRef(key=self.session_id, stable_id=None)
            return self._ref
        ref = _watch.match_session(sessions, self.session_id)
        if ref is None:
            raise _watch.unknown_session(self.url, self.session_id, sessions)
        self._ref = ref
        return ref

    def _ended(self, reason: str, *, during: str) -> LiveSessionEndedError:
        what = {
            "kernel-stopped": "its kernel stopped (it died, or was shut down)",
            "session-closed": (
                "marimo closed it (the kernel was restarted, shut down, or died and was cleaned up)"
            ),
        }.get(reason, reason)
        stable = f" (stable id {self.stable_id})" if self.stable_id else ""
        return LiveSessionEndedError(
            f"The session {self.session_id!r}{stable} at {self.url} ended {during}: {what}. "
            "Its variables are gone and the call's outcome is unknown. Pick or open a "
            "session again: 'marimo-engine live sessions' or open_session().",
            session_id=self.session_id,
            reason=reason,
        )

    async def _watch(self, scope: anyio.CancelScope, ended: list[LiveError]) -> None:
        """Poll the session's state until it ends (then cancel `scope`) or we are cancelled."""
        import anyio

        assert self.watch_interval_s is not None and self._ref is not None
        failures = 0
        while True:
            await anyio.sleep(self.watch_interval_s)
            try:
                reason, self._ref = await _watch.session_state(
                    self._client(), self.url, self._ref, timeout_s=self.timeout_s
                )
            except LiveError as exc:
                failures += 1
                if failures < 2:  # one slow answer on a loaded machine is not a verdict
                    continue
                ended.append(
                    LiveConnectionError(
                        f"The marimo server at {self.url} stopped answering while a run of "
                        f"session {self.session_id!r} streamed ({exc}); the run's outcome is "
                        "unknown. Check the server with 'marimo-engine live servers'."
                    )
                )
                scope.cancel()
                return
            failures = 0
            if reason is not None:
                ended.append(self._ended(reason, during="while the call ran"))
                scope.cancel()
                return

    async def _run(self, code: str, sink: Callable[[ConsoleChunk], Any] | None) -> ExecuteResult:
        """Run `code`, passing chunks to `sink`, watched for a dead or restarted kernel."""
        import anyio

        ref = await self._session()
        ended: list[LiveError] = []
        result: ExecuteResult | None = None
        failure: list[Exception] = []  # raised after the group, not wrapped in a group
        async with anyio.create_task_group() as group:
            if self.watch_interval_s is not None:
                group.start_soon(self._watch, group.cancel_scope, ended)
            try:
                result = await self._read_run(code, ref, sink)
            except Exception as exc:
                failure.append(exc)
            finally:
                group.cancel_scope.cancel()
        if ended:
            raise ended[0]
        if failure:
            raise failure[0]
        assert result is not None  # _read_run returns or raises; only _watch cancels it
        return result

    async def _read_run(
        self, code: str, ref: SessionRef, sink: Callable[[ConsoleChunk], Any] | None
    ) -> ExecuteResult:
        import anyio
        import httpx

        endpoint = f"{self.url}/api/kernel/execute"
        body = ExecuteRequest(code=code).model_dump()
        started = time.monotonic()
        stdout, stderr = Tail(self.max_output_chars), Tail(self.max_output_chars)
        done: dict[str, Any] | None = None
        client = self._client()
        request = client.build_request(
            "POST",
            endpoint,
            json=body,
            headers=ref.headers(),
            timeout=httpx.Timeout(self.timeout_s, read=None),
        )
        with _http.translate_errors(endpoint, action="execute code", timeout_s=self.timeout_s):
            try:
                with anyio.fail_after(self.timeout_s):
                    response = await client.send(request, stream=True)
            except TimeoutError as exc:
                raise LiveTimeoutError(
                    f"The marimo server at {self.url} accepted the request but did not "
                    f"start answering within {self.timeout_s} s; it is hung or not marimo. "
                    "Check it with 'marimo-engine live servers', or raise timeout_s.",
                    timeout_s=self.timeout_s,
                ) from exc
            try:
                if response.status_code >= 400:
                    await response.aread()
                    self._raise_for_execute(response)
                max_line = max(4 * self.max_output_chars, _MIN_LINE_BYTES)
                lines = aiter_capped_lines(response.aiter_bytes(), max_line)
                async for event, cut in aiter_sse(lines):
                    if event.event in ("stdout", "stderr"):
                        text = _event_text(event) if not cut else recover_console_tail(event.data)
                        tail = stdout if event.event == "stdout" else stderr
                        tail.add(text, dropped_before=cut)
                        if sink is not None:
                            maybe = sink(ConsoleChunk(channel=event.event, text=text))  # type: ignore[arg-type]
                            if isinstance(maybe, Awaitable):
                                await maybe
                    elif event.event == "done":
                        if cut:  # only a successful run's rendered output can be that long
                            done = {"success": True, "output": {"mimetype": "text/plain"}}
                        else:
                            done = _event_json(event)
                        break
            finally:
                await response.aclose()
        if done is None:
            raise LiveConnectionError(
                f"The execute stream of session {self.session_id!r} at {self.url} ended "
                "without its 'done' event; the kernel may have died or been restarted."
            )
        success = bool(done.get("success"))
        output = done.get("output") or {}
        stderr_text = stderr.text()
        return ExecuteResult(
            success=success,
            output=str(output.get("data", "")),
            output_mimetype=str(output.get("mimetype", "text/plain")),
            stdout=stdout.text(),
            stderr=stderr_text,
            error=None if success else (stderr_text.strip() or "The code raised an error."),
            duration_s=time.monotonic() - started,
            stdout_dropped_chars=stdout.dropped_chars,
            stderr_dropped_chars=stderr.dropped_chars,
        )

    def _raise_for_execute(self, response: httpx.Response) -> None:
        status = response.status_code
        if status == 405 or (status == 404 and "session" not in response.text.lower()):
            raise LiveUnsupportedError(
                f"The marimo server at {self.url} has no /api/kernel/execute "
                f"(HTTP {status}); the live bridge needs marimo "
                f"{TESTED_MARIMO}: pip install 'marimo{TESTED_MARIMO}'."
            )
        text = response.text.lower()
        if self.stable_id is not None and "invalid" in text and "session id" in text:
            # It was listed when resolved, so it existed: it has ended since.
            raise self._ended("session-closed", during="before the call")
        _http.raise_for_status(response, action="execute code")

    async def stream(self, code: str) -> AsyncIterator[ConsoleChunk | ExecuteResult]:
        """Run `code` in the kernel's scratchpad and yield its output as it comes.

        The scratchpad sees the notebook's globals; what it defines stays
        out of the notebook. Top-level `await` works. Close the iterator (or
        cancel the task) to interrupt the run: use `contextlib.aclosing`.

        Args:
            code: Python source.

        Yields:
            `ConsoleChunk`s (stdout/stderr, in order), then one final `ExecuteResult`.

        Raises:
            LiveSessionEndedError: The kernel was restarted or died meanwhile,
                or the session was already gone.
            LiveSelectionError: The server lists no such session.
            LiveConnectionError: The server could not be reached, dropped the
                stream, or stopped answering the session checks.
            LiveTimeoutError: Connecting, sending, or the stream's first bytes
                took longer than `timeout_s`.
            LiveHTTPError: Another HTTP error status.
            LiveUnsupportedError: The server has no `/api/kernel/execute` (marimo < 0.21).
        """
        import math

        import anyio

        send, receive = anyio.create_memory_object_stream[ConsoleChunk | ExecuteResult](math.inf)
        failure: list[BaseException] = []

        async def produce() -> None:
            async with send:
                try:
                    await send.send(await self._run(code, send.send))
                except Exception as exc:  # re-raised in the consumer's task
                    failure.append(exc)

        closed = False
        async with anyio.create_task_group() as group:
            group.start_soon(produce)
            try:
                async with receive:
                    async for item in receive:
                        try:
                            yield item
                        except GeneratorExit:  # aclose(): leave the group unwrapped
                            closed = True
                            break
            finally:
                group.cancel_scope.cancel()  # closing the request interrupts the kernel run
        if failure and not closed:
            raise failure[0]

    async def execute(
        self,
        code: str,
        *,
        on_output: OutputCallback | None = None,
        timeout_s: float | None = None,
    ) -> ExecuteResult:
        """Run `code` in the kernel and return what it produced.

        Args:
            code: Python source (run in the scratchpad; top-level `await` works).
            on_output: Called with each `ConsoleChunk` as it streams (sync or async).
            timeout_s: Bound on the run in seconds; `None` uses `run_timeout_s`
                (default: no bound). On expiry the run is interrupted. Without
                a bound a run still ends when the kernel dies or restarts, or
                the server stops answering (see `watch_interval_s`).

        Returns:
            The `ExecuteResult`: success, output, stdout, stderr and error text
            (the tail of each, at most `max_output_chars`).

        Raises:
            LiveTimeoutError: The run outlived `timeout_s` (it was interrupted).
            LiveError: See `stream()`.
        """
        import anyio

        limit = timeout_s if timeout_s is not None else self.run_timeout_s
        try:
            with anyio.fail_after(limit):
                return await self._run(code, on_output)
        except TimeoutError as exc:
            raise LiveTimeoutError(
                f"The kernel run in session {self.session_id!r} took longer than {limit} s "
                "and was interrupted; raise timeout_s or make the code faster.",
                timeout_s=float(limit or 0.0),
            ) from exc

    # --- notebook operations (templates + marimo._code_mode) ----------------

    async def call_template(
        self,
        template: str,
        args: dict[str, Any],
        *,
        on_output: OutputCallback | None = None,
        timeout_s: float | None = None,
    ) -> tuple[Any, ExecuteResult]:
        """Run one kernel template (see `templates.TEMPLATE_NAMES`) and return its reply.

        Args:
            template: The template's name.
            args: Its arguments (JSON).
            on_output: Called with console chunks of cells that run meanwhile.
            timeout_s: Bound on the run, in seconds.

        Returns:
            `(result, execution)`: the reply's `result` (plain JSON) and the
            run's `ExecuteResult` (stdout without the reply line).

        Raises:
            StaleCellError, LiveKernelError, LiveUnsupportedError: The kernel
                replied with an error.
            LiveError: The transport failed.
        """
        return await self._call(template, args, on_output=on_output, timeout_s=timeout_s)

    async def _call(
        self,
        template: str,
        args: dict[str, Any],
        *,
        on_output: OutputCallback | None = None,
        timeout_s: float | None = None,
    ) -> tuple[Any, ExecuteResult]:
        marker = new_marker()
        code = render(template, args, marker=marker)

        caught: list[str] = []  # the reply line, caught whole however long the output

        def forward(chunk: ConsoleChunk) -> Any:
            if chunk.channel == "stdout":
                if caught and "\n" not in caught[-1]:
                    caught.append(chunk.text)
                elif not caught and marker in chunk.text:
                    caught.append(chunk.text[chunk.text.index(marker) :])
            if on_output is not None and MARKER_PREFIX not in chunk.text:
                return on_output(chunk)
            return None

        result = await self.execute(code, on_output=forward, timeout_s=timeout_s)
        reply = parse_reply("".join(caught), marker) or parse_reply(result.stdout, marker)
        result = result.model_copy(update={"stdout": strip_reply(result.stdout, marker)})
        if reply is None:
            detail = (result.error or result.stderr or "no output").strip()[-600:]
            raise LiveKernelError(
                f"The kernel of session {self.session_id!r} gave no reply to {template!r}: "
                f"{detail}",
                error_type="NoReply",
            )
        if not reply.get("ok"):
            raise self._kernel_error(reply)
        return reply.get("result"), result

    def _kernel_error(self, reply: dict[str, Any]) -> LiveError:
        error_type = str(reply.get("error_type", "Error"))
        message = str(reply.get("message", "")).strip()
        if error_type == "CodeModeUnavailable":
            return LiveUnsupportedError(
                f"The kernel at {self.url} has no marimo._code_mode ({message}); the live "
                f"bridge is tested with marimo {TESTED_MARIMO}: pip install "
                f"'marimo{TESTED_MARIMO}' in the notebook's environment."
            )
        if error_type == "StaleCellError":
            cell_id = reply.get("cell_id", "?")
            others = [c for c in reply.get("stale_cells", []) if c != cell_id]
            also = f" Also changed: {', '.join(map(repr, others))}." if others else ""
            return StaleCellError(
                f"Cell {cell_id!r} changed in the notebook since you last read it, or was "
                f"never read (the person may be editing it), so nothing was applied.{also} "
                "Read it again with cells() and redo the edit on its current code, or pass "
                "force=True to overwrite."
            )
        if error_type == "PersonCellError":
            cell_id = str(reply.get("cell_id") or "?")
            return PersonCellError(
                f"{message}: marimo cannot tell whether the person is typing in it right "
                "now (the browser sends typing only after a pause), and an edit then drops "
                "what they typed. Nothing was applied. Put the change in a new cell "
                "(create_cell), or pass allow_person_cell=True (CLI: --allow-person-cell) "
                "when the person asked for this change.",
                cell_id=cell_id,
            )
        hint = ""
        if error_type == "KeyError" and "not found" in message:
            hint = " List cells with cells() (CLI: 'marimo-engine live cells')."
        return LiveKernelError(f"{error_type}: {message}{hint}", error_type=error_type)

    async def check(self) -> dict[str, Any]:
        """Check that the session works and its kernel has marimo's code mode.

        Returns:
            `{"marimo_version": str, "cells": int, "tested": bool}`; `tested`
            says whether the kernel's marimo is in `TESTED_MARIMO`.

        Raises:
            LiveUnsupportedError: The kernel's marimo has no `marimo._code_mode`.
            LiveError: The session is unreachable.
        """
        result, _ = await self._call("probe", {})
        info = dict(result)
        info["tested"] = is_tested_marimo(str(info.get("marimo_version", "")))
        return info

    async def cells(self, *, max_output_chars: int = 2000) -> list[CellInfo]:
        """Return every cell in notebook order: id, name, code, status, errors, output as text.

        Reading a cell's code here is what marimo's stale-cell check counts
        as "read": an edit after a later change by the person raises
        `StaleCellError`.

        Args:
            max_output_chars: Cut each cell's output and console text to this many characters.
        """
        result, _ = await self._call("cells", {"max_output_chars": max_output_chars})
        return [CellInfo.model_validate(item) for item in result]

    async def cell(self, target: str) -> CellInfo:
        """Return one cell by id or name.

        Raises:
            UsageError: No such cell; the message lists the cells.
        """
        cells = await self.cells()
        for info in cells:
            if target in (info.id, info.name):
                return info
        known = ", ".join(f"{c.id}" + (f" ({c.name})" if c.name else "") for c in cells)
        raise UsageError(f"No cell {target!r} in the notebook. Cells: {known or 'none'}.")

    async def apply(
        self,
        ops: Sequence[CellOp],
        *,
        force: bool = False,
        on_output: OutputCallback | None = None,
        timeout_s: float | None = None,
    ) -> BatchResult:
        """Apply several cell operations atomically, then run what they ask to run.

        Either every operation is applied or none is: marimo queues them and
        checks the whole batch (syntax, names defined twice, cycles) before
        changing the notebook. Cells created or edited with `run=True` run,
        and marimo re-runs their descendants.

        Args:
            ops: `CreateCell`, `EditCell`, `DeleteCell`, `MoveCell`, `RunCell`
                and `SetUIValue` operations (or equivalent dicts), in order. A
                later op may name a cell created earlier in the batch by its name.
            force: Skip marimo's stale-cell check and the person's-cell check
                (overwrite the person's changes).
            on_output: Called with console chunks of the cells that run.
            timeout_s: Bound on the whole run, in seconds.

        Returns:
            A `BatchResult`: per-op cell id, status and errors, plus the run's output.

        Raises:
            StaleCellError: An edited cell changed since it was last read.
            PersonCellError: An edit or delete of a cell whose code the person
                wrote, without `allow_person_cell` on that op.
            LiveKernelError: An op is invalid (unknown cell, bad name, syntax
                error, a name defined twice): nothing was applied.
            UsageError: No ops, or an op that is not a cell operation.
        """
        from pydantic import TypeAdapter, ValidationError

        if not ops:
            raise UsageError("apply() needs at least one cell operation.")
        try:
            parsed = TypeAdapter(list[CellOp]).validate_python(list(ops))
        except ValidationError as exc:
            raise UsageError(f"Bad cell operation: {exc.errors()[0]['msg']}") from exc
        args = {"ops": [op.model_dump(mode="json") for op in parsed], "force": force}
        result, execution = await self._call(
            "batch", args, on_output=on_output, timeout_s=timeout_s
        )
        return BatchResult(
            changes=[CellChange.model_validate(c) for c in result], execution=execution
        )

    async def create_cell(
        self,
        code: str,
        *,
        name: str | None = None,
        before: str | None = None,
        after: str | None = None,
        run: bool = True,
        hide_code: bool = False,
    ) -> CellChange:
        """Create a cell (at the end by default) and run it unless `run=False`.

        Returns:
            The new cell's `CellChange` (id, status, errors after running).
        """
        op = CreateCell(
            code=code, name=name, before=before, after=after, run=run, hide_code=hide_code
        )
        return (await self.apply([op])).changes[0]

    async def edit_cell(
        self,
        target: str,
        code: str | None = None,
        *,
        name: str | None = None,
        run: bool = True,
        force: bool = False,
        allow_person_cell: bool = False,
    ) -> CellChange:
        """Replace a cell's code (and/or rename it) and run it, re-running its descendants.

        By default only a cell whose current code the agent wrote (created or
        last edited through the bridge, in this kernel) can get new code: the
        person may be typing in any other, unseen by marimo.

        Args:
            target: The cell's id or name.
            code: The new code; `None` keeps it (a rename).
            name: A new name; `None` keeps it.
            run: Run the cell (and its descendants) afterwards.
            force: Skip every check: marimo's stale check and the person's-cell
                check (overwrites the person's changes).
            allow_person_cell: Edit a cell whose code the person wrote (still
                refused when it changed since you read it).

        Raises:
            StaleCellError: The cell changed since you last read it with `cells()`.
            PersonCellError: The cell's code is the person's and
                `allow_person_cell` is false.
        """
        op = EditCell(
            target=target, code=code, name=name, run=run, allow_person_cell=allow_person_cell
        )
        return (await self.apply([op], force=force)).changes[0]

    async def delete_cell(self, target: str, *, allow_person_cell: bool = False) -> CellChange:
        """Delete a cell by id or name.

        Raises:
            PersonCellError: The cell's code is the person's and
                `allow_person_cell` is false (see `edit_cell`).
        """
        op = DeleteCell(target=target, allow_person_cell=allow_person_cell)
        return (await self.apply([op])).changes[0]

    async def move_cell(
        self, target: str, *, before: str | None = None, after: str | None = None
    ) -> CellChange:
        """Move a cell before or after another (order only; nothing re-runs)."""
        if (before is None) == (after is None):
            raise UsageError("move_cell() needs exactly one of before= or after=.")
        return (await self.apply([MoveCell(target=target, before=before, after=after)])).changes[0]

    async def run_cell(self, target: str, *, on_output: OutputCallback | None = None) -> CellChange:
        """Run a cell and, reactively, its descendants."""
        return (await self.apply([RunCell(target=target)], on_output=on_output)).changes[0]

    async def run_all(self) -> BatchResult | None:
        """Run every cell, as a browser opening the notebook does; `None` when there are none."""
        cells = await self.cells(max_output_chars=0)
        if not cells:
            return None
        return await self.apply([RunCell(target=c.id) for c in cells])

    async def set_ui_value(self, name: str, value: Any) -> BatchResult:
        """Set a UI element's value as if the person changed it; dependent cells re-run.

        Args:
            name: The global holding the element, such as `"slider"`.
            value: The new value in the element's own type.
        """
        return await self.apply([SetUIValue(name=name, value=value)])

    async def graph(self) -> NotebookGraph:
        """Return the dataflow graph: each cell's defs, refs, parents, children and more."""
        result, _ = await self._call("graph", {})
        return NotebookGraph.model_validate(result)

    async def variables(self, *, max_repr_chars: int = 120) -> list[VariableInfo]:
        """Return the globals the cells define, with type and a short repr, in notebook order."""
        result, _ = await self._call("variables", {"max_repr_chars": max_repr_chars})
        return [VariableInfo.model_validate(v) for v in result]

    async def describe(
        self,
        name: str,
        *,
        max_chars: int = 2000,
        max_rows: int = 5,
        max_cell_chars: int = 40,
    ) -> DataFrameDescription:
        """Describe a pandas or polars DataFrame held in a global, for an LLM's context.

        Args:
            name: The global's name.
            max_chars: Budget in characters of the description's JSON; sample
                rows, then columns, are dropped until it fits.
            max_rows: Sample rows at most.
            max_cell_chars: Each sample value is cut to this many characters.

        Raises:
            LiveKernelError: No such global (`error_type="KeyError"`) or not a
                dataframe (`"TypeError"`).
        """
        args = {
            "name": name,
            "max_chars": max_chars,
            "max_rows": max_rows,
            "max_cell_chars": max_cell_chars,
        }
        result, _ = await self._call("describe", args)
        return DataFrameDescription.model_validate(result)


def _event_json(event: SSEEvent) -> dict[str, Any]:
    try:
        value = json.loads(event.data)
    except json.JSONDecodeError as exc:
        raise LiveError(f"marimo sent a {event.event!r} event that is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise LiveError(f"marimo sent a {event.event!r} event that is not a JSON object.")
    return value


def _event_text(event: SSEEvent) -> str:
    return str(_event_json(event).get("data", ""))
