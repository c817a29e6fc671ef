"""`marimo-engine live ...`: in process through `add_parser`/`run`, and as a real subprocess."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from marimo_engine.cli import live as live_cli
from marimo_engine.cli.exits import run_handler
from marimo_engine.live.session import LiveSession
from tests.processes import adopt_group, run_process, started_process

from .conftest import STARTUP_TIMEOUT_S, LiveServer

pytestmark = pytest.mark.integration


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="marimo-engine")
    live_cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run_handler(live_cli.run, _parse(argv), debug=False)  # as `main` runs it
    out, err = capsys.readouterr()
    return code, out, err


def _where(server: LiveServer, session: LiveSession) -> list[str]:
    return ["--url", server.url, "--session", session.session_id]


def test_servers_and_sessions(
    live_server: LiveServer, live_session: LiveSession, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = ["--registry-dir", str(live_server.registry_dir)]
    code, out, _ = _run(["live", "servers", "--json", *registry], capsys)
    assert code == 0
    assert [s["port"] for s in json.loads(out)] == [live_server.port]
    code, out, _ = _run(["live", "sessions", *registry], capsys)
    assert code == 0
    assert f"{live_server.url}  {live_session.session_id}  {live_server.notebook}" in out


def test_exec_streams_and_sets_the_exit_code(
    live_server: LiveServer, live_session: LiveSession, capsys: pytest.CaptureFixture[str]
) -> None:
    where = _where(live_server, live_session)
    code, out, err = _run(
        ["live", "exec", *where, "-c", "import sys\nprint('out!')\nprint('err!', file=sys.stderr)"],
        capsys,
    )
    assert (code, out, err) == (0, "out!\n", "err!\n")
    code, out, err = _run(["live", "exec", *where, "-c", "seed_value * 3"], capsys)
    assert (code, out.strip()) == (0, "30")
    code, _, err = _run(["live", "exec", *where, "-c", "1/0"], capsys)
    assert code == 1 and "ZeroDivisionError" in err
    code, out, _ = _run(["live", "exec", *where, "--json", "-c", "print(2)"], capsys)
    assert code == 0 and json.loads(out)["stdout"] == "2\n"
    code, out, _ = _run(
        ["live", "exec", *where, "--json", "-c", "import marimo as mo\nmo.md('**bold** move')"],
        capsys,
    )
    result = json.loads(out)
    assert code == 0 and "<strong>bold</strong>" in result["output"]
    assert result["output_text"] == "bold move"


def test_cells_vars_describe(
    live_server: LiveServer, live_session: LiveSession, capsys: pytest.CaptureFixture[str]
) -> None:
    where = _where(live_server, live_session)
    with live_session.sync_client() as client:
        client.create_cell(
            "import pandas as pd_cli\ncli_frame = pd_cli.DataFrame({'n': [1, 2], 'm': ['a', 'b']})",
            name="cli_frame_cell",
        )
    code, out, _ = _run(["live", "cells", *where], capsys)
    assert code == 0 and "(cli_frame_cell)  idle" in out and "    cli_frame = " in out
    code, out, _ = _run(["live", "vars", *where], capsys)
    assert code == 0 and "seed_value: int = 10" in out
    code, out, _ = _run(["live", "describe", *where, "cli_frame"], capsys)
    assert code == 0
    assert out.startswith("cli_frame: pandas DataFrame, 2 rows x 2 columns")
    code, _, err = _run(["live", "describe", *where, "seed_value"], capsys)
    assert code == 1 and err.startswith("error: TypeError: 'seed_value' is of type int")
    assert len(err.strip().splitlines()) == 1


def test_bad_input_is_exit_code_2(
    live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(["live", "exec", "--url", live_server.url], capsys)
    assert code == 2 and err.startswith("error: Nothing to run")
    code, _, err = _run(
        ["live", "cells", "--registry-dir", str(live_server.registry_dir), "--port", "1"], capsys
    )
    assert code == 2 and "No running marimo server matches --port 1" in err
    code, _, err = _run(["live", "cells", "--url", "http://192.0.2.1:2718"], capsys)
    assert code == 2 and "not a loopback host" in err
    assert "Pass --allow-remote if you trust it" in err and "allow_remote" not in err


def test_errors_name_the_flags(
    live_server: LiveServer, live_session: LiveSession, capsys: pytest.CaptureFixture[str]
) -> None:
    where = _where(live_server, live_session)
    code, _, err = _run(
        ["live", "exec", *where, "--timeout", "1", "-c", "while True:\n    pass"], capsys
    )
    assert code == 1 and "took longer than 1.0 s" in err
    assert "raise --timeout" in err and "timeout_s" not in err
    code, _, err = _run(["live", "cells", "--url", live_server.url, "--session", "nope"], capsys)
    assert code == 2 and "matches --session nope" in err


def test_cell_commands(
    live_server: LiveServer, live_session: LiveSession, capsys: pytest.CaptureFixture[str]
) -> None:
    where = _where(live_server, live_session)
    code, out, _ = _run(
        ["live", "create", *where, "--json", "--name", "cli_a", "-c", "cli_a_value = 2"], capsys
    )
    created = json.loads(out)
    assert code == 0 and created["op"] == "create" and created["status"] == "idle"
    code, out, _ = _run(
        ["live", "create", *where, "--after", "cli_a", "--name", "cli_b", "-c",
         "cli_b_value = cli_a_value * 10\nprint('b ran', cli_b_value)"],
        capsys,
    )  # fmt: skip
    assert code == 0 and "b ran 20" in out and out.rstrip().endswith("idle")
    code, out, _ = _run(["live", "edit", *where, "cli_a", "-c", "cli_a_value = 3"], capsys)
    assert code == 0 and "b ran 30" in out  # the dependent re-ran
    code, out, _ = _run(["live", "run", *where, "cli_b"], capsys)
    assert code == 0 and "b ran 30" in out and "ran cell" in out
    code, out, _ = _run(["live", "move", *where, "cli_a", "--after", "cli_b"], capsys)
    assert code == 0 and out.startswith("moved cell")
    with live_session.sync_client() as client:
        names = [c.name for c in client.cells() if c.name in ("cli_a", "cli_b")]
    assert names == ["cli_b", "cli_a"]
    code, _, err = _run(["live", "edit", *where, "seed", "-c", "seed_value = 11"], capsys)
    assert code == 1 and "holds code the person wrote" in err and "--allow-person-cell" in err
    code, _, err = _run(["live", "edit", *where, "cli_b", "-c", "cli_b_value = 1 +"], capsys)
    assert code == 1 and "error:" in err  # a syntax error: nothing applied
    code, out, _ = _run(["live", "delete", *where, "cli_b"], capsys)
    assert code == 0 and out.startswith("deleted cell")
    code, _, err = _run(["live", "edit", *where, "cli_a"], capsys)
    assert code == 2 and "Nothing to change" in err


def test_run_plan(
    live_server: LiveServer, live_session: LiveSession, capsys: pytest.CaptureFixture[str]
) -> None:
    where = _where(live_server, live_session)
    code, out, _ = _run(["live", "run-plan", *where, "--json", "example:hull-check-7"], capsys)
    events = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert events[0]["type"] == "START" and events[-1]["verdict"] == "SUCCESS"


def _command() -> list[str]:
    uv = shutil.which("uv")
    if uv is not None:
        return [uv, "run", "--no-sync", "marimo-engine"]
    return [str(Path(sys.executable).parent / "marimo-engine")]


def test_the_installed_command(live_server: LiveServer, live_session: LiveSession) -> None:
    result = run_process(
        [*_command(), "live", "exec", *_where(live_server, live_session), "-c", "print(6 * 7)"],
        timeout_s=STARTUP_TIMEOUT_S,
        env=live_server.env,
        cwd=Path(__file__).parents[3],
    )
    assert (result.returncode, result.stdout) == (0, "42\n"), result.stderr


def test_live_open_holds_a_session_until_sigterm(tmp_path: Path) -> None:
    notebook = tmp_path / "held.py"
    notebook.write_text(
        "import marimo\napp = marimo.App()\n\n\n@app.cell\ndef _():\n    held = 5\n"
        "    return (held,)\n",
        encoding="utf-8",
    )
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    with started_process(
        [*_command(), "live", "open", str(notebook), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=Path(__file__).parents[3],
    ) as process:
        info: dict[str, object] = {}
        try:
            assert process.stdout is not None
            info = json.loads(process.stdout.readline())  # printed once the session is open
            adopt_group(int(str(info["server_pid"])))  # stopped even if this test is killed
            exec_result = run_process(
                [*_command(), "live", "exec", "--url", info["url"], "-c", "print(held * 2)"],
                timeout_s=STARTUP_TIMEOUT_S,
                env=env,
                cwd=Path(__file__).parents[3],
            )
            assert exec_result.stdout == "10\n", exec_result.stderr
            os.kill(process.pid, signal.SIGTERM)  # uv forwards it to marimo-engine
            assert process.wait(timeout=STARTUP_TIMEOUT_S) == 0
            with pytest.raises(ProcessLookupError):
                os.kill(int(str(info["server_pid"])), 0)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
            if info.get("server_pid"):  # never leave the server behind, whatever failed
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(int(str(info["server_pid"])), signal.SIGKILL)


def test_ctrl_c_on_exec_interrupts_the_kernel(
    live_server: LiveServer, live_session: LiveSession
) -> None:
    script = Path(sys.executable).parent / "marimo-engine"
    code = "import time\nprint('going', flush=True)\nwhile True:\n    time.sleep(0.02)\n"
    # started_process sets SIGINT to its default action in the child, whatever we inherited.
    with started_process(
        [str(script), "live", "exec", *_where(live_server, live_session), "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=live_server.env,
    ) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline() == "going\n"  # the loop is running in the kernel
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=STARTUP_TIMEOUT_S) == 130
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
    with live_session.sync_client() as client:  # the kernel is free again
        assert client.execute("print('free')", timeout_s=90).stdout == "free\n"
