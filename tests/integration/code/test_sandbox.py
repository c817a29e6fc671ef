"""`--sandbox`: a real marimo server under bubblewrap, driven through the live bridge."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from marimo_engine.agents.code import CodeAgent, CodeOptions
from marimo_engine.agents.code.sandbox import SandboxLimits, open_sandboxed_session
from marimo_engine.engine.events import Verdict
from tests.integration.code.conftest import STARTUP_TIMEOUT_S
from tests.integration.code.scripted import ScriptedCoder, create, finish, patch

pytestmark = [
    pytest.mark.integration,
    pytest.mark.anyio,
    pytest.mark.timeout(360),  # starts marimo in a sandbox: slow on a loaded machine
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap (apt bubblewrap)"),
]


async def test_the_sandbox_blocks_network_outside_writes_and_a_memory_hog(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    outside = tmp_path / "outside.txt"
    limits = SandboxLimits(memory_bytes=3 * 1024**3)
    with open_sandboxed_session(
        work / "nb.py", limits=limits, startup_timeout_s=STARTUP_TIMEOUT_S
    ) as live:
        async with live.client() as client:
            net = await client.execute(
                "import socket\n_s = socket.socket()\n_s.settimeout(5)\n"
                "print(_s.connect_ex(('1.1.1.1', 80)))"
            )
            system = await client.execute("open('/etc/marimo-engine-sandbox', 'w')")
            await client.execute(f"open({str(outside)!r}, 'w').write('x')")
            inside = await client.execute("open('inside.txt', 'w').write('ok')")
            hog = await client.execute("_hog = bytearray(5 * 1024**3)")
            alive = await client.execute("print(sum(range(10)))")

    assert net.stdout.strip() == "101"  # ENETUNREACH: no network in the sandbox
    assert not system.success and "Read-only file system" in (system.error or "")
    assert not outside.exists()  # the write went to the sandbox's private /tmp, not here
    assert inside.success and (work / "inside.txt").read_text() == "ok"
    assert not hog.success and "MemoryError" in (hog.error or "")
    assert alive.stdout.strip() == "45"  # the kernel survived the hog


async def test_ordinary_analysis_runs_in_the_sandbox(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "data.csv").write_text("city,temp\nA,10\nB,14\nA,12\n")
    coder = ScriptedCoder(
        [
            patch(
                create("load", "import pandas as pd\ndf = pd.read_csv('data.csv')"),
                create("mean_a", "mean_a = df[df.city == 'A'].temp.mean()\nmean_a"),
            ),
            finish("The mean temperature of A is 11.", "mean_a"),
        ]
    )
    agent = CodeAgent(
        coder.model(),
        options=CodeOptions(limits_text=SandboxLimits().describe()),
        memory_dir=False,
    )
    with open_sandboxed_session(work / "nb.py", startup_timeout_s=STARTUP_TIMEOUT_S) as live:
        async with live.client() as client:
            result = await agent.run("mean temp of A", client, notebook=work / "nb.py")
            variables = {v.name: v.repr for v in await client.variables()}
    assert result.verdict is Verdict.SUCCESS, (result.stop_reason, result.error)
    assert "11.0" in variables["mean_a"]
