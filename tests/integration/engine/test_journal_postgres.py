"""The run journal against a real PostgreSQL server (Debian's `postgresql` package).

The server is initialised into a temporary directory and started on a free
port with its unix socket in that directory, as an unprivileged user
(PostgreSQL refuses to run as root): Debian's `postgres` user, else
`nobody`, through `setpriv`. It is stopped by its process group id, also
when the test run is killed (`tests/processes.py`). Without the package the
tests skip, saying how to install it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.processes import run_process, start_process, stop_process
from tests.unit.engine import journal_checks

pytestmark = pytest.mark.integration

psycopg = pytest.importorskip("psycopg", reason="uv sync installs psycopg (dev group)")


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.skip("no unprivileged user (postgres or nobody) to run PostgreSQL as")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def pg_server() -> Iterator[dict[str, Any]]:
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed: apt-get install postgresql (Debian's package)")
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="me-pg-"))
    user_name = pwd.getpwuid(os.getuid()).pw_name
    if os.getuid() == 0:
        user = _user()
        os.chown(base, user.pw_uid, user.pw_gid)
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot start PostgreSQL as a user")
        as_user = [
            setpriv,
            f"--reuid={user.pw_uid}",
            f"--regid={user.pw_gid}",
            "--clear-groups",
            "--",
        ]
        user_name = user.pw_name
    data = base / "data"
    try:
        init = run_process(
            [
                *as_user,
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "--auth=trust",
                f"--username={user_name}",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            timeout_s=180,
            env={**os.environ, "LC_ALL": "C"},
        )
        if init.returncode != 0:
            pytest.skip(f"initdb failed: {init.stderr.strip()[-300:]}")
        port = _free_port()
        server = start_process(
            [
                *as_user,
                str(bin_dir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(base),
                "-c",
                "listen_addresses=",
                "-c",
                "fsync=off",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            outlive_test=True,
        )
        try:
            url = f"postgresql://{user_name}@/postgres?host={base}&port={port}"
            deadline = time.monotonic() + 120
            while True:
                try:
                    psycopg.connect(url, connect_timeout=5).close()
                    break
                except psycopg.OperationalError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        pytest.fail("PostgreSQL did not start within 120 s")
                    time.sleep(0.2)
            yield {"url": url, "base": base, "port": port, "user": user_name, "n": [0]}
        finally:
            stop_process(server)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: dict[str, Any]) -> str:
    """A fresh, empty database on the server, as a URL."""
    pg_server["n"][0] += 1
    name = f"journal_{pg_server['n'][0]}"
    with psycopg.connect(pg_server["url"], autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return (
        f"postgresql://{pg_server['user']}@/{name}?host={pg_server['base']}"
        f"&port={pg_server['port']}"
    )


@pytest.mark.parametrize("check", journal_checks.CHECKS, ids=lambda c: c.__name__)
def test_journal_checks_on_postgres(pg_url: str, check: Any) -> None:
    from marimo_engine.engine.journal import open_journal

    with open_journal(pg_url) as journal:
        assert type(journal).__name__ == "PostgresJournal"
        check(journal)


def test_resume_after_intervention_on_postgres(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from marimo_engine import execute_plan_sync
    from marimo_engine.engine.durable import Decision, resume_run
    from marimo_engine.engine.events import Verdict
    from marimo_engine.engine.executor import run_sync
    from tests.unit.engine.durable_tools import counts
    from tests.unit.engine.test_durable import PLAN, TOOLS

    log = tmp_path / "side.log"
    monkeypatch.setenv("SIDE_LOG", str(log))
    first = execute_plan_sync(PLAN, TOOLS, journal=pg_url)
    assert first.verdict is Verdict.INTERVENTION_NEEDED
    resumed = run_sync(
        resume_run(first.run_id, TOOLS, journal=pg_url, decision=Decision.approve())._run
    )
    assert resumed.verdict is Verdict.SUCCESS
    assert counts(log) == {"first": 1, "double": 1, "last": 1}


def test_resume_without_inputs_or_plans_on_postgres(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from marimo_engine import execute_plan_sync
    from marimo_engine.engine.durable import Decision, resume_run
    from marimo_engine.engine.events import Verdict
    from marimo_engine.engine.executor import run_sync
    from marimo_engine.plans.subplans import PlanLibrary
    from tests.unit.engine import map_tools

    monkeypatch.setenv("SIDE_LOG", str(tmp_path / "side.log"))
    child = {
        "id": "child",
        "inputs": {"n": {}},
        "steps": [{"id": "c1", "tool": "double", "args": {"x": "$input.n"}}],
    }
    plan = {
        "id": "parent",
        "inputs": {"x": {"required": False, "default": 1}},
        "steps": [
            {"id": "p1", "tool": "double", "args": {"x": "$input.x"}, "requires_approval": True},
            {"id": "p2", "plan": "child", "args": {"n": "$p1"}},
            {"id": "p3", "tool": "add", "args": {"values": ["$input.x"]}},
        ],
    }
    tools = {"double": map_tools.double, "add": map_tools.add}
    first = execute_plan_sync(
        plan, tools, journal=pg_url, inputs={"x": 10}, plans=PlanLibrary({"child": child})
    )
    assert first.verdict is Verdict.INTERVENTION_NEEDED
    resumed = run_sync(
        resume_run(first.run_id, tools, journal=pg_url, decision=Decision.approve())._run
    )
    assert resumed.verdict is Verdict.SUCCESS, resumed.error
    assert resumed.outputs == {"p1": 20, "p2": {"c1": 40}, "p3": 10}


def test_unreachable_postgres_is_one_clear_error(pg_server: dict[str, Any]) -> None:
    from marimo_engine.engine.journal import JournalError, open_journal

    url = f"postgresql://nobody:secret@/none?host={pg_server['base']}&port=1"
    with pytest.raises(JournalError, match="cannot be reached") as raised:
        open_journal(url)
    assert "secret" not in str(raised.value)
