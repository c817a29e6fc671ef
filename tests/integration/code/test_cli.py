"""`marimo-engine code` as a subprocess, over the real wire, on a person's running session.

The model is the loopback OpenAI-compatible server answering from a script;
the person's session is a real `marimo edit` started here, whose websocket
is held as a browser would hold it. The agent joins it with --url/--session;
`--undo` then takes the turn back.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from marimo_engine.agents.audit import read_audit_log
from marimo_engine.live.client import LiveClient
from marimo_engine.live.server import HeadlessServer
from marimo_engine.live.session import SessionHolder
from tests.integration.code.conftest import NOTEBOOK, STARTUP_TIMEOUT_S, server_env
from tests.integration.conftest import notebook_file
from tests.processes import adopt_group, release_group, run_process, started_process
from tests.unit.llm.openai_server import scripted_server

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(360)]


def _cli(
    args: list[str], env: dict[str, str], cwd: Path, *, answers: str | None = None
) -> subprocess.CompletedProcess[str]:
    return run_process(
        [sys.executable, "-m", "marimo_engine.cli.main", *args],
        timeout_s=600, env=env, cwd=cwd, input=answers,
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
        # `--url` alone, no NOTEBOOK.py: the agent joins the notebook the person has open
        # there (a new connection to it would only watch).
        done = _cli(
            ["code", "square the base", "--url", server.url,
             "--model", "openai:scripted", "--json", "--audit", str(tmp_path / "audit.jsonl")],
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

        diff = _cli(["code", "--diff", str(notebook)], cli_env, tmp_path)
        assert diff.returncode == 0, diff.stderr
        assert diff.stdout.splitlines()[:2] == [
            "turn 1: square the base",
            "+ added cell 'squared'",
        ]
        undo = _cli(
            ["code", "--undo", str(notebook), "--url", server.url,
             "--session", person.session_id, "--audit", str(tmp_path / "audit.jsonl")],
            cli_env, tmp_path,
        )  # fmt: skip
        assert undo.returncode == 0, undo.stderr
        assert "+ added cell 'squared'" in undo.stdout and "undone: turn 1" in undo.stdout
        async with LiveClient(server.url, person.session_id) as client:
            names = [c.name for c in await client.cells()]
        assert names == ["base", "double", "note"]
        records = read_audit_log(tmp_path / "audit.jsonl")
        assert records[-1]["kind"] == "undo" and records[-1]["turn"] == 1

        again = _cli(["code", "--undo", str(notebook), "--url", server.url,
                      "--session", person.session_id], cli_env, tmp_path)  # fmt: skip
        assert again.returncode == 2 and "No turn of the code agent to undo" in again.stderr


def test_bad_input_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path)}
    no_model = _cli(["code", "do something", str(tmp_path / "x.py")], env, tmp_path)
    assert no_model.returncode == 2 and "--model" in no_model.stderr
    no_goal = _cli(["code", "--model", "openai:x"], env, tmp_path)
    assert no_goal.returncode == 2 and "GOAL" in no_goal.stderr
    for flag in ("--timeout", "--max-wall"):
        for value in ("-3", "nan", "0"):
            bad = _cli(["code", "x", "nb.py", "--model", "openai:x", flag, value], env, tmp_path)
            assert bad.returncode == 2 and "more than 0 seconds" in bad.stderr, (flag, value)
    # --undo on a notebook the agent never touched: a one-line error, and no file
    # created by starting marimo on a mistyped path.
    typo = _cli(["code", "--undo", "analysys.py"], env, tmp_path)
    assert typo.returncode == 2 and "No turn of the code agent to undo" in typo.stderr
    assert not (tmp_path / "analysys.py").exists()


def _seattle(folder: Path) -> Path:
    from vega_datasets import local_data

    path = folder / "seattle-weather.csv"
    local_data.seattle_weather().to_csv(path, index=False)
    return path


def test_eda_on_a_file_over_the_wire_writes_a_notebook_and_its_html(tmp_path: Path) -> None:
    import pandas as pd

    data = _seattle(tmp_path)
    summary = (
        "import marimo as mo\nwettest = df.groupby('weather')['precipitation'].mean().idxmax()\n"
        "print(f'WETTEST {wettest}')\nmo.md(f'The wettest kind of day: **{wettest}**')"
    )
    script = [
        {
            "tool": "apply_patch",
            "tool_args": {
                "ops": [
                    {"op": "create", "name": "load",
                     "code": f"import pandas as pd\ndf = pd.read_csv({str(data)!r})"},
                    {"op": "create", "name": "missing", "code": "missing = df.isna().sum()"},
                    {"op": "create", "name": "summary", "code": summary},
                ],
            },
        },
        {"tool": "finish", "tool_args": {"answer": "see summary", "cells": ["summary"]}},
    ]  # fmt: skip
    env = server_env(tmp_path)
    with scripted_server(script) as model:
        done = _cli(
            ["eda", str(data), "--notebook", str(tmp_path / "eda.py"), "--model",
             "openai:scripted", "--json", "--html", str(tmp_path / "eda.html")],
            {**env, "OPENAI_BASE_URL": model.base_url, "OPENAI_API_KEY": "test"}, tmp_path,
        )  # fmt: skip
        told = model.requests[0].text()
    assert done.returncode == 0, done.stderr + done.stdout
    # The model was given the EDA brief and this file's own schema.
    assert "Exploratory analysis brief" in told and '"name": "precipitation"' in told
    assert '"rows": 1461' in told
    assert (tmp_path / "eda.html").stat().st_size > 10_000
    assert (tmp_path / "eda.py").read_text().count("@app.cell") == 3  # no blank first cell
    run = subprocess.run(
        [sys.executable, str(tmp_path / "eda.py")], capture_output=True, text=True,
        timeout=300, cwd=tmp_path,
    )  # fmt: skip
    frame = pd.read_csv(data)
    expected = frame.groupby("weather")["precipitation"].mean().idxmax()
    assert f"WETTEST {expected}" in run.stdout, run.stderr[-2000:]


async def test_eda_on_a_dataframe_variable_of_a_running_session(
    tmp_path: Path, notebook_server: HeadlessServer
) -> None:
    data = _seattle(tmp_path)
    notebook = notebook_file(
        notebook_server, tmp_path, "person.py",
        NOTEBOOK.replace("base_value = 10", f"import pandas as pd\n    weather = "
                         f"pd.read_csv({str(data)!r})\n    base_value = 10")
        .replace("return (base_value,)", "return (base_value, weather)"),
    )  # fmt: skip
    script = [
        {"tool": "apply_patch", "tool_args": {"ops": [
            {"op": "create", "name": "windiest",
             "code": "windiest = weather['wind'].max()\nwindiest"}]}},
        {"tool": "finish", "tool_args": {"answer": "max wind", "cells": ["windiest"]}},
    ]  # fmt: skip
    env = server_env(tmp_path)
    server = notebook_server
    with (
        SessionHolder(server.url, file=str(notebook), open_timeout_s=STARTUP_TIMEOUT_S) as person,
        scripted_server(script) as model,
    ):
        async with LiveClient(server.url, person.session_id) as client:
            await client.run_all()
        done = _cli(
            ["eda", "weather", "--url", server.url, "--session", person.session_id,
             "--model", "openai:scripted", "--json"],
            {**env, "OPENAI_BASE_URL": model.base_url, "OPENAI_API_KEY": "test"}, tmp_path,
        )  # fmt: skip
        told = model.requests[0].text()
        async with LiveClient(server.url, person.session_id) as client:
            variables = {v.name: v.repr for v in await client.variables()}
    assert done.returncode == 0, done.stderr + done.stdout
    assert '"variable": "weather"' in told and "temp_max" in told and '"rows": 1461' in told
    assert "already in the notebook as `weather`" in told
    assert "9.5" in variables["windiest"]


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap (apt bubblewrap)")
def test_code_with_sandbox_over_the_wire(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    # The data lives outside the working directory, under /tmp: bound read-only.
    sales = tmp_path / "sales.csv"
    sales.write_text("region,amount\nnorth,10\nsouth,30\nnorth,20\n")
    script = [
        {"tool": "apply_patch", "tool_args": {"ops": [
            {"op": "create", "name": "north",
             "code": f"import pandas as pd\nnorth = int(pd.read_csv({str(sales)!r})"
                     ".query(\"region == 'north'\").amount.sum())\nprint('NORTH', north)"}]}},
        {"tool": "finish", "tool_args": {"answer": "30", "cells": ["north"]}},
    ]  # fmt: skip
    with scripted_server(script) as model:
        done = _cli(
            ["code", "north total", str(work / "nb.py"), "--sandbox", "--data",
             str(sales), "--model", "openai:scripted", "--json"],
            {**server_env(tmp_path), "OPENAI_BASE_URL": model.base_url,
             "OPENAI_API_KEY": "test"}, tmp_path,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    saved = (work / "nb.py").read_text()  # saved by the sandboxed kernel
    assert "north = int(" in saved
    assert saved.count("@app.cell") == 1  # the agent's cell only: marimo's blank one removed
    events = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert events[-1]["verdict"] == "SUCCESS"


def test_approve_ask_prompts_and_a_no_goes_back_to_the_model(
    tmp_path: Path, notebook_server: HeadlessServer
) -> None:
    notebook = notebook_file(notebook_server, tmp_path, "analysis.py", NOTEBOOK)
    script = [
        {"tool": "apply_patch", "tool_args": {"ops": [
            {"op": "create", "name": "fetch", "code": "import requests\npage = requests.get('x')"}
        ]}},
        {"tool": "apply_patch", "tool_args": {"ops": [
            {"op": "create", "name": "local", "code": "local = base_value + 5"}]}},
        {"tool": "finish", "tool_args": {"answer": "15", "cells": ["local"]}},
    ]  # fmt: skip
    with scripted_server(script) as model:
        done = _cli(
            ["code", "get it", str(notebook), "--url", notebook_server.url, "--approve", "ask",
             "--model", "openai:scripted", "--json"],
            {**server_env(tmp_path), "OPENAI_BASE_URL": model.base_url,
             "OPENAI_API_KEY": "test"}, tmp_path, answers="n\n",
        )  # fmt: skip
        refused = model.requests[1].text()
    assert done.returncode == 0, done.stderr + done.stdout
    assert (
        "approval needed: Apply this patch?" in done.stderr and "imports 'requests'" in done.stderr
    )
    assert "import requests" in done.stderr  # the code was shown to the person
    assert "A person refused the patch" in refused and "network" in refused
    assert "import requests" not in notebook.read_text()


def test_an_unanswered_prompt_ends_at_the_wall_time_limit(
    tmp_path: Path, notebook_server: HeadlessServer
) -> None:
    # A person who never answers: the run stops at --max-wall and the command exits,
    # with the prompt's thread left behind (it must not keep the interpreter alive).
    notebook = notebook_file(notebook_server, tmp_path, "nb.py")
    script = [
        {"tool": "apply_patch", "tool_args": {"ops": [
            {"op": "create", "name": "fetch", "code": "import requests"}]}},
    ]  # fmt: skip
    env = {**server_env(tmp_path), "OPENAI_API_KEY": "test"}
    silent_read, silent_write = os.pipe()  # a terminal no one types into: open, never written
    try:
        with scripted_server(script) as model, started_process(
            [sys.executable, "-m", "marimo_engine.cli.main", "code", "get it", str(notebook),
             "--url", notebook_server.url, "--approve", "ask", "--model", "openai:scripted",
             "--json", "--max-wall", "20"],
            stdin=silent_read, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**env, "OPENAI_BASE_URL": model.base_url}, cwd=tmp_path,
        ) as process:  # fmt: skip
            out, err = process.communicate(timeout=240)
    finally:
        os.close(silent_read)
        os.close(silent_write)
    assert process.returncode == 1, err
    assert "approval needed" in err
    done = json.loads(out.strip().splitlines()[-1])
    assert done["type"] == "DONE" and "wall-time limit (20 s)" in done["msg"]


def test_code_with_url_writes_a_new_notebook_on_a_folder_server(
    tmp_path: Path, notebook_server: HeadlessServer
) -> None:
    # `marimo edit FOLDER` is running; the goal names a notebook not written yet.
    folder = notebook_server.notebook / tmp_path.name
    folder.mkdir()
    script = [
        {"tool": "apply_patch", "tool_args": {"ops": [
            {"op": "create", "name": "seven", "code": "seven = 3 + 4"}]}},
        {"tool": "finish", "tool_args": {"answer": "7", "cells": ["seven"]}},
    ]  # fmt: skip
    with scripted_server(script) as model:
        done = _cli(
            ["code", "seven", "new.py", "--url", notebook_server.url,
             "--model", "openai:scripted", "--json"],
            {**server_env(tmp_path), "OPENAI_BASE_URL": model.base_url,
             "OPENAI_API_KEY": "test"}, folder,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    saved = (folder / "new.py").read_text()  # saved by marimo as the agent applied the patch
    assert "seven = 3 + 4" in saved
    assert saved.count("@app.cell") == 1  # marimo's blank first cell removed


def _group_members(pgid: int) -> list[int]:
    """The processes of group `pgid` that still run (zombies left to init do not count)."""
    members = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = (Path("/proc") / name / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        state, _ppid, group = stat.rsplit(")", 1)[1].split()[:3]
        if int(group) == pgid and state != "Z":
            members.append(int(name))
    return members


def _marimo_child(pid: int) -> int | None:
    """The `marimo edit` process whose parent is `pid`, from /proc, or `None`."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = (Path("/proc") / name / "stat").read_text()
            command = (Path("/proc") / name / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"edit" in command:
            return int(name)
    return None


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT],
                         ids=["SIGTERM", "SIGHUP", "SIGINT"])  # fmt: skip
def test_a_signal_to_the_command_stops_the_marimo_server_it_started(
    tmp_path: Path, signum: signal.Signals
) -> None:
    # `kill`, `docker stop`, systemd and CI runners send SIGTERM; a closed terminal
    # SIGHUP; Ctrl-C SIGINT. The headless server the command started goes with it.
    script = [{"text": "never sent", "trickle_s": 0.5, "trickle_for_s": 600}]  # a model call
    with scripted_server(script) as model, started_process(
        [sys.executable, "-m", "marimo_engine.cli.main", "code", "anything",
         str(tmp_path / "nb.py"), "--model", "openai:scripted", "--json"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**server_env(tmp_path), "OPENAI_BASE_URL": model.base_url,
             "OPENAI_API_KEY": "test"}, cwd=tmp_path,
    ) as process:  # fmt: skip
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once the server and session are up
        assert "notebook:" in line, line + (process.stderr.read() if process.poll() else "")
        server_pid = _marimo_child(process.pid)
        assert server_pid is not None and _group_members(server_pid)
        adopt_group(server_pid)  # stopped by the test run whatever happens below
        deadline = time.monotonic() + 60  # the model call has begun, or is about to
        while not model.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signum)
        code = process.wait(timeout=60)
        # Ctrl-C unwinds (exit 130); SIGTERM and SIGHUP still end the command by the signal.
        assert code == (130 if signum == signal.SIGINT else -signum), process.stderr.read()
        deadline = time.monotonic() + 30
        while _group_members(server_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _group_members(server_pid) == [], "the marimo server outlived the command"
        release_group(server_pid)
