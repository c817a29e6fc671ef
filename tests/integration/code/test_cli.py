"""`marimo-engine code` as a subprocess, over the real wire, on a person's running session.

The model is the loopback OpenAI-compatible server answering from a script;
the person's session is a real `marimo edit` started here, whose websocket
is held as a browser would hold it. The agent joins it with --url/--session;
`--undo` then takes the turn back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from marimo_engine.live.client import LiveClient
from marimo_engine.live.server import HeadlessServer
from marimo_engine.live.session import SessionHolder
from tests.integration.code.conftest import NOTEBOOK, STARTUP_TIMEOUT_S, server_env
from tests.unit.llm.openai_server import scripted_server

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "marimo_engine.cli.main", *args],
        capture_output=True, text=True, timeout=600, env=env, cwd=cwd,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


async def test_the_agent_writes_into_a_persons_open_session_and_undo_takes_it_back(
    tmp_path: Path,
) -> None:
    notebook = tmp_path / "analysis.py"
    notebook.write_text(NOTEBOOK, encoding="utf-8")
    env = server_env(tmp_path)
    script = [
        {
            "tool": "apply_patch",
            "tool_args": {
                "ops": [{"op": "create", "name": "squared", "code": "squared = base_value ** 2"}],
                "summary": "square the base",
            },
        },
        {"tool": "finish", "tool_args": {"answer": "100", "cells": ["squared"]}},
    ]
    with (
        HeadlessServer(notebook, startup_timeout_s=STARTUP_TIMEOUT_S, env=env) as server,
        SessionHolder(server.url, open_timeout_s=STARTUP_TIMEOUT_S) as person,
        scripted_server(script) as model,
    ):
        cli_env = {**env, "OPENAI_BASE_URL": model.base_url, "OPENAI_API_KEY": "test"}
        cli_env.pop("MARIMO_TOKEN", None)
        done = _cli(
            ["code", "square the base", str(notebook), "--url", server.url,
             "--session", person.session_id, "--model", "openai:scripted", "--json",
             "--audit", str(tmp_path / "audit.jsonl")],
            cli_env, tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr + done.stdout
        events = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        assert events[-1]["type"] == "DONE" and events[-1]["verdict"] == "SUCCESS"
        assert {"PATCH_PROPOSED", "APPLIED", "FINISHED"} <= {e["type"] for e in events}
        # The wire: the model was offered both output tools.
        assert set(model.requests[0].tool_names) == {"apply_patch", "finish"}
        assert "base_value = 10" in model.requests[0].text()

        async with LiveClient(server.url, person.session_id) as client:
            cells = await client.cells()
            variables = {v.name: v.repr for v in await client.variables()}
        assert [c.name for c in cells][-1] == "squared"  # in the person's own session
        assert variables["squared"] == "100"

        undo = _cli(
            ["code", "--undo", str(notebook), "--url", server.url,
             "--session", person.session_id],
            cli_env, tmp_path,
        )  # fmt: skip
        assert undo.returncode == 0, undo.stderr
        assert "+ added cell 'squared'" in undo.stdout and "undone: turn 1" in undo.stdout
        async with LiveClient(server.url, person.session_id) as client:
            names = [c.name for c in await client.cells()]
        assert names == ["base", "double", "note"]

        again = _cli(["code", "--undo", str(notebook), "--url", server.url,
                      "--session", person.session_id], cli_env, tmp_path)  # fmt: skip
        assert again.returncode == 2 and "No turn of the code agent to undo" in again.stderr


def test_bad_input_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path)}
    no_model = _cli(["code", "do something", str(tmp_path / "x.py")], env, tmp_path)
    assert no_model.returncode == 2 and "--model" in no_model.stderr
    no_goal = _cli(["code", "--model", "openai:x"], env, tmp_path)
    assert no_goal.returncode == 2 and "GOAL" in no_goal.stderr
