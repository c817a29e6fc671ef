"""The code agent's loop on a real headless marimo session, with scripted models.

Every scenario runs the real bridge, the real kernel and marimo's own checks;
only the model is a script (pydantic-ai `FunctionModel`).
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import pytest

from marimo_engine.agents.audit import read_audit_log
from marimo_engine.agents.code import (
    ApprovalDecision,
    ApprovalRequest,
    CodeAgent,
    CodeOptions,
    undo_checkpoint,
)
from marimo_engine.agents.code.checkpoints import NotebookMemory
from marimo_engine.engine.events import Verdict
from marimo_engine.live.server import HeadlessServer
from marimo_engine.live.session import LiveSession, open_session
from tests.integration.code.conftest import STARTUP_TIMEOUT_S, server_env
from tests.integration.code.scripted import ScriptedCoder, create, delete, edit, finish, patch
from tests.integration.conftest import notebook_file

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def agent_for(coder: ScriptedCoder, tmp_path: Path, **options: object) -> CodeAgent:
    return CodeAgent(
        coder.model(),
        options=CodeOptions(**options),  # type: ignore[arg-type]
        audit_path=tmp_path / "audit.jsonl",
        memory_dir=tmp_path / "memory",
    )


async def run(agent: CodeAgent, live: LiveSession, goal: str, notebook: Path):
    async with live.client() as client:
        result = await agent.run(goal, client, notebook=notebook)
        cells = await client.cells()
    return result, cells


async def test_a_goal_met_in_one_turn(tmp_path: Path, live: LiveSession, notebook: Path) -> None:
    coder = ScriptedCoder(
        [
            patch(create("tripled", "tripled = base_value * 3\ntripled"), summary="triple it"),
            finish("base_value tripled is 30.", "tripled"),
        ]
    )
    result, cells = await run(agent_for(coder, tmp_path), live, "triple the base", notebook)

    assert result.verdict is Verdict.SUCCESS, result.stop_reason
    assert result.answer == "base_value tripled is 30."
    assert result.turns == 2 and len(coder.requests) == 2
    tripled = next(c for c in cells if c.name == "tripled")
    assert tripled.status == "idle" and not tripled.errors
    assert "30" in (tripled.output or "")
    # The model saw the notebook, and what its cell printed.
    assert "base_value = 10" in coder.told(0)
    assert "cell tripled ran" in coder.told(1) and "30" in coder.told(1)
    # One checkpoint: the cell added.
    assert [c.diff()["added"][0]["name"] for c in result.checkpoints] == ["tripled"]
    kinds = [r["kind"] for r in read_audit_log(tmp_path / "audit.jsonl")]
    for kind in ("run_start", "model_request", "model_response", "patch_proposed",
                 "patch_checked", "patch_applied", "decision", "run_end"):  # fmt: skip
        assert kind in kinds, kind
    # marimo's kernel saved the cell to the file: we never wrote it.
    assert "tripled = base_value * 3" in notebook.read_text()


async def test_a_notebook_the_agent_creates_holds_only_its_cells(
    tmp_path: Path, notebook_server: HeadlessServer
) -> None:
    notebook = notebook_file(notebook_server, tmp_path, "new.py")  # empty: a new notebook
    coder = ScriptedCoder(
        [patch(create("seven", "seven = 7\nseven")), finish("seven is 7.", "seven")]
    )
    agent = agent_for(coder, tmp_path)
    with open_session(
        notebook, url=notebook_server.url, startup_timeout_s=STARTUP_TIMEOUT_S
    ) as live:
        async with live.client() as client:
            assert [c.code for c in await client.cells()] == [""]  # marimo's blank cell
            result = await agent.run("seven", client, notebook=notebook, new_notebook=True)
            cells = await client.cells()
    assert result.verdict is Verdict.SUCCESS, result.stop_reason
    assert [(c.name, c.code) for c in cells] == [("seven", "seven = 7\nseven")]
    # The file the kernel saved has the agent's cell and nothing else.
    assert notebook.read_text().count("@app.cell") == 1
    # Undo of the turn leaves the notebook as the agent found it after removing the blank.
    assert [c.diff()["added"][0]["name"] for c in result.checkpoints] == ["seven"]


async def test_a_person_is_asked_after_the_patch_is_shown(
    tmp_path: Path, live: LiveSession, notebook: Path
) -> None:
    shown: list[str] = []  # the events the reader took, in order
    asked_after: list[list[str]] = []

    def person(request: ApprovalRequest) -> bool:
        asked_after.append(list(shown))
        return False

    coder = ScriptedCoder(
        [
            patch(create("fetch", "import requests\npage = requests.get('x')")),
            patch(create("local", "local = base_value + 5")),
            finish("15", "local"),
        ]
    )
    agent = agent_for(coder, tmp_path, approve="ask")
    agent.on_intervention = person
    async with live.client() as client:
        async for event in agent.events("get it", client, notebook=notebook):
            shown.append(event.type.value)
    # The patch a person is asked about is on screen before the question.
    assert asked_after == [["START", "TURN", "PATCH_PROPOSED"]]
    assert shown[-1] == "DONE"


async def test_an_undefined_name_is_fixed_in_the_next_turn(
    tmp_path: Path, live: LiveSession, notebook: Path
) -> None:
    coder = ScriptedCoder(
        [
            patch(create("plus", "total = base_valu + 1\ntotal")),
            patch(edit("plus", "total = base_value + 1\ntotal")),
            finish("11", "plus"),
        ]
    )
    result, cells = await run(agent_for(coder, tmp_path), live, "add one", notebook)

    assert result.verdict is Verdict.SUCCESS, result.stop_reason
    report = coder.told(1)
    assert "[undefined_name]" in report and "base_valu" in report
    assert "names in scope:" in report and "base_value" in report
    assert "did you mean: base_value" in report
    assert next(c for c in cells if c.name == "plus").status == "idle"


async def test_a_twice_defined_name_is_repaired_without_a_model_call(
    tmp_path: Path, live: LiveSession, notebook: Path
) -> None:
    # `label` is already defined by cell `note`; here it is only used inside the cell.
    coder = ScriptedCoder(
        [
            patch(create("shout", "label = 'loud'\nshouted = label.upper()\nshouted")),
            finish("LOUD", "shout"),
        ]
    )
    result, cells = await run(agent_for(coder, tmp_path), live, "shout", notebook)

    assert result.verdict is Verdict.SUCCESS, result.stop_reason
    assert len(coder.requests) == 2  # the patch and the finish: no repair request
    shout = next(c for c in cells if c.name == "shout")
    assert shout.code == "_label = 'loud'\nshouted = _label.upper()\nshouted"
    assert shout.status == "idle"
    assert [r["kind"] for r in result.repairs] == ["private_name"]


async def test_a_name_read_elsewhere_goes_back_to_the_model(
    tmp_path: Path, live: LiveSession, notebook: Path
) -> None:
    # `base_value` is read by cell `double`: renaming it would not be certain.
    coder = ScriptedCoder(
        [
            patch(create("again", "base_value = 5")),
            patch(create("again", "other_value = 5")),
            finish("done", "again"),
        ]
    )
    result, _ = await run(agent_for(coder, tmp_path), live, "define", notebook)

    assert result.verdict is Verdict.SUCCESS
    told = coder.told(1)
    assert "'base_value' would be defined by several cells" in told
    assert "nothing changed" in told


async def test_a_dangerous_call_is_denied_and_the_model_told_why(
    tmp_path: Path, live: LiveSession, notebook: Path
) -> None:
    asked: list[ApprovalRequest] = []

    def person(request: ApprovalRequest) -> ApprovalDecision:
        asked.append(request)
        return ApprovalDecision(False, "no programs from notebooks")

    coder = ScriptedCoder(
        [
            patch(create("shell", "import subprocess\nout = subprocess.run(['id'])")),
            patch(create("writer", "open('/etc/marimo-engine-test', 'w').write('x')")),
            patch(create("safe", "safe_value = base_value + 1")),
            finish("11", "safe"),
        ]
    )
    agent = agent_for(coder, tmp_path, approve="ask")
    agent.on_intervention = person
    result, cells = await run(agent, live, "do it", notebook)

    assert result.verdict is Verdict.SUCCESS
    assert len(asked) == 1 and asked[0].findings[0].rule == "subprocess"
    told_1 = coder.told(1)
    assert "A person refused" in told_1 and "subprocess" in told_1
    assert "no programs from notebooks" in told_1
    told_2 = coder.told(2)  # the policy denies a write outside, without asking anyone
    assert "The policy refuses" in told_2 and "outside the working directory" in told_2
    names = [c.name for c in cells]
    assert "shell" not in names and "writer" not in names and "safe" in names
    memory = NotebookMemory.load(str(notebook.resolve()), tmp_path / "memory")
    assert any("subprocess" in r["reason"] for r in memory.rejected)


async def test_the_same_error_twice_stops_with_a_clear_report(
    tmp_path: Path, live: LiveSession, notebook: Path
) -> None:
    coder = ScriptedCoder(
        [
            patch(create("ratio", "ratio = base_value / 0")),
            patch(edit("ratio", "ratio = base_value / (base_value - 10)")),
        ]
    )
    result, _ = await run(agent_for(coder, tmp_path), live, "divide", notebook)

    assert result.verdict is Verdict.FAILURE
    assert "the same error twice in a row on cell 'ratio'" in result.stop_reason
    assert "ZeroDivisionError" in result.stop_reason
    assert result.error is not None and "[data_value]" in result.error
    assert len(coder.requests) == 2


async def test_turn_limit_stops_the_run(tmp_path: Path, live: LiveSession, notebook: Path) -> None:
    coder = ScriptedCoder([patch(create("one", "one = 1"))])
    result, _ = await run(agent_for(coder, tmp_path, max_turns=1), live, "count", notebook)

    assert result.verdict is Verdict.FAILURE
    assert "turn limit (1)" in result.stop_reason


async def test_undo_restores_cells_code_and_order_exactly(
    tmp_path: Path, live: LiveSession, notebook: Path
) -> None:
    async with live.client() as client:
        before = [(c.name, c.code) for c in await client.cells()]
    coder = ScriptedCoder(
        [
            patch(
                create("extra", "extra_value = doubled + 1"),
                edit("double", "doubled = base_value * 4"),
                delete("note"),
            ),
            finish("done", "extra"),
        ]
    )
    agent = agent_for(coder, tmp_path, approve="auto")  # deleting 'note' asks: auto approves
    result, cells = await run(agent, live, "rework", notebook)
    assert result.verdict is Verdict.SUCCESS
    assert [c.name for c in cells] != [n for n, _ in before]
    (checkpoint,) = result.checkpoints
    diff = checkpoint.diff()
    assert [a["name"] for a in diff["added"]] == ["extra"]
    assert [(e["before"], e["after"]) for e in diff["edited"]] == [
        ("doubled = base_value * 2", "doubled = base_value * 4")
    ]
    assert [d["name"] for d in diff["deleted"]] == ["note"]

    memory = NotebookMemory.load(str(notebook.resolve()), tmp_path / "memory")
    async with live.client() as client:
        undone = await undo_checkpoint(client, memory.last_checkpoint(), memory=memory)
        after = [(c.name, c.code) for c in await client.cells()]
        variables = {v.name: v.repr for v in await client.variables()}
    assert after == before
    assert [(c.name, c.code) for c in undone.cells] == before
    assert variables["doubled"] == "20" and variables["label"] == "'numbers'"
    assert "extra_value" not in variables
    assert NotebookMemory.load(str(notebook.resolve()), tmp_path / "memory").checkpoints[0].undone


async def test_undo_of_two_turns_in_a_later_session_restores_the_file_exactly(
    tmp_path: Path, notebook: Path, notebook_server: HeadlessServer
) -> None:
    # The person's flow: the agent's session ends; later `code --undo nb.py` opens the
    # file again, where marimo gives the cells ids by position, not the turn's ids.
    coder = ScriptedCoder(
        [
            patch(create("extra", "extra_value = doubled + 1"), delete("note")),
            patch(edit("extra", "extra_value = doubled + 2"), edit("double", "doubled = 0")),
            finish("done", "extra"),
        ]
    )
    agent = agent_for(coder, tmp_path, approve="auto")
    # Sessions end with their websocket (--session-ttl 0): the later one reads the file anew.
    where = {"url": notebook_server.url, "startup_timeout_s": STARTUP_TIMEOUT_S}
    with open_session(notebook, **where) as first:
        async with first.client() as client:
            before = [(c.name, c.code) for c in await client.cells()]
        result, _ = await run(agent, first, "rework", notebook)
    assert result.verdict is Verdict.SUCCESS and len(result.checkpoints) == 2

    memory_dir = tmp_path / "memory"
    with open_session(notebook, **where) as later:
        async with later.client() as client:
            # marimo numbers cells by position when a file is opened: the id the first
            # turn's deleted 'note' had now names the cell the agent created.
            reopened = {c.id: c.name for c in await client.cells()}
            (first_turn,) = [c for c in result.checkpoints if c.turn == 1]
            note_id = next(c.id for c in first_turn.before if c.name == "note")
            assert reopened.get(note_id) == "extra", reopened
            for _ in range(2):
                memory = NotebookMemory.load(str(notebook.resolve()), memory_dir)
                undone = await undo_checkpoint(client, memory.last_checkpoint(), memory=memory)
                assert undone.ops and not undone.notes, undone
            after = [(c.name, c.code) for c in await client.cells()]
    assert after == before
    saved = notebook.read_text()  # the kernel saved the undone notebook
    assert "extra_value" not in saved and "doubled = base_value * 2" in saved
    assert 'label = "numbers"' in saved


async def test_a_missing_module_leads_to_an_approval_and_a_package_added(
    tmp_path: Path, notebook: Path
) -> None:
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    wheels.mkdir()
    site.mkdir()
    _write_wheel(wheels, "tinymod_me", "VALUE = 42\n")
    asked: list[ApprovalRequest] = []

    def person(request: ApprovalRequest) -> bool:
        asked.append(request)
        return True

    coder = ScriptedCoder(
        [
            patch(create("use_it", "import tinymod_me\nanswer = tinymod_me.VALUE\nanswer")),
            finish("42", "use_it"),
        ]
    )
    agent = agent_for(
        coder,
        tmp_path,
        approve="ask",
        install_args=("--target", str(site), "--no-index", "--find-links", str(wheels)),
    )
    agent.on_intervention = person
    with open_session(
        notebook,
        startup_timeout_s=STARTUP_TIMEOUT_S,
        env=server_env(tmp_path, PYTHONPATH=str(site)),
    ) as session:
        result, cells = await run(agent, session, "use tinymod", notebook)

    assert result.verdict is Verdict.SUCCESS, (result.stop_reason, result.error)
    assert [(r.kind, r.package, r.module) for r in asked] == [
        ("install", "tinymod-me", "tinymod_me")
    ]
    assert (site / "tinymod_me" / "__init__.py").exists()
    use_it = next(c for c in cells if c.name == "use_it")
    assert use_it.status == "idle" and "42" in (use_it.output or "")
    assert len(coder.requests) == 2  # the install needed no model turn
    kinds = [r["kind"] for r in read_audit_log(tmp_path / "audit.jsonl")]
    assert "approval" in kinds and "install" in kinds


def _write_wheel(folder: Path, module: str, source: str) -> None:
    """A pure-Python wheel with one package, built by hand (PEP 427)."""
    dist = f"{module}-1.0.dist-info"
    files = {
        f"{module}/__init__.py": source.encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }

    def digest(data: bytes) -> str:
        raw = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        return "sha256=" + raw.decode()

    record = "".join(f"{k},{digest(v)},{len(v)}\n" for k, v in files.items())
    record += f"{dist}/RECORD,,\n"
    with zipfile.ZipFile(folder / f"{module}-1.0-py3-none-any.whl", "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr(f"{dist}/RECORD", record)


async def test_a_finish_while_its_cells_fail_is_refused(
    tmp_path: Path, live: LiveSession, notebook: Path
) -> None:
    coder = ScriptedCoder(
        [
            patch(create("half", "half = base_value / nothing_here")),
            finish("5", "half"),
            patch(edit("half", "half = base_value / 2")),
            finish("5.0", "half"),
        ]
    )
    result, _ = await run(agent_for(coder, tmp_path), live, "halve", notebook)

    assert result.verdict is Verdict.SUCCESS and result.answer == "5.0"
    assert "Not finished: your cells still fail: half" in coder.told(2)


async def test_fixes_per_cell_are_limited(
    tmp_path: Path, live: LiveSession, notebook: Path
) -> None:
    coder = ScriptedCoder(
        [
            patch(create("calc", "calc = base_value / 0")),
            patch(edit("calc", "calc = base_value + missing_thing")),
        ]
    )
    agent = agent_for(coder, tmp_path, max_fixes_per_cell=1)
    result, _ = await run(agent, live, "calc", notebook)

    assert result.verdict is Verdict.FAILURE
    assert (
        "cell 'calc'" in result.stop_reason and "still fails after 1 fix(es)" in result.stop_reason
    )
    assert "NameError" in result.stop_reason


async def test_a_cell_past_the_time_limit_is_interrupted_and_reported(
    tmp_path: Path, live: LiveSession, notebook: Path
) -> None:
    coder = ScriptedCoder(
        [
            patch(create("slow", "import time\ntime.sleep(120)\nslow_done = True")),
            patch(edit("slow", "slow_done = True")),
            finish("done", "slow"),
        ]
    )
    agent = agent_for(coder, tmp_path, run_timeout_s=5.0)
    result, cells = await run(agent, live, "be quick", notebook)

    assert result.verdict is Verdict.SUCCESS, (result.stop_reason, result.error)
    told = coder.told(1)
    assert "[timeout]" in told and "time limit: 5 s" in told
    assert next(c for c in cells if c.name == "slow").status == "idle"


@pytest.mark.timeout(300)
async def test_the_wall_time_limit_ends_a_model_call_that_never_answers(
    tmp_path: Path, live: LiveSession, notebook: Path
) -> None:
    import anyio
    from pydantic_ai.models.function import FunctionModel

    asked = anyio.Event()

    async def silent(messages: object, info: object) -> object:
        asked.set()
        await anyio.Event().wait()  # a provider that never answers
        raise AssertionError("unreachable")

    agent = CodeAgent(
        FunctionModel(silent, model_name="silent"),
        options=CodeOptions(max_wall_s=3.0),
        audit_path=tmp_path / "audit.jsonl",
        memory_dir=tmp_path / "memory",
    )
    result, _ = await run(agent, live, "anything", notebook)

    assert asked.is_set()
    assert result.verdict is Verdict.FAILURE
    assert "wall-time limit (3 s) reached during turn 1" in result.stop_reason
    ends = [r for r in read_audit_log(tmp_path / "audit.jsonl") if r["kind"] == "run_end"]
    assert ends and "wall-time limit" in ends[0]["stop_reason"]


async def test_model_limits_stop_the_run(tmp_path: Path, live: LiveSession, notebook: Path) -> None:
    from marimo_engine.llm.usage import ModelLimits

    coder = ScriptedCoder([patch(create("one", "one = 1")), patch(create("two", "two = 2"))])
    agent = agent_for(coder, tmp_path, limits=ModelLimits(request_limit=1))
    result, _ = await run(agent, live, "count", notebook)

    assert result.verdict is Verdict.FAILURE and result.stop_reason == "model error"
    assert result.error is not None and "request_limit" in result.error
    assert result.turns == 2 and len(coder.requests) == 1


async def test_memory_of_earlier_goals_is_given_on_the_next_goal(
    tmp_path: Path, live: LiveSession, notebook: Path
) -> None:
    first = ScriptedCoder([patch(create("tenfold", "tenfold = base_value * 10")),
                           finish("100", "tenfold")])  # fmt: skip
    await run(agent_for(first, tmp_path), live, "multiply by ten", notebook)
    second = ScriptedCoder([finish("already there: 100", "tenfold")])
    result, _ = await run(agent_for(second, tmp_path), live, "what is tenfold", notebook)

    assert result.verdict is Verdict.SUCCESS
    told = second.told(0)
    assert "Earlier work on this notebook" in told
    assert "goal: multiply by ten [SUCCESS] -> 100" in told
    assert "tenfold = base_value * 10" in told  # and the cell itself, in the notebook


async def test_an_edit_that_lost_a_race_with_the_person_is_redone_on_their_code(
    tmp_path: Path, live: LiveSession, notebook: Path
) -> None:
    import re

    import httpx

    async def person_edits_then_approves(request: ApprovalRequest) -> bool:
        # While the agent waits for approval, the person edits the same cell in the browser.
        if request.turn == 1:
            async with httpx.AsyncClient() as http:
                page = (await http.get(f"{live.url}/", timeout=30)).text
                token = re.search(r'marimo-server-token data-token="([^"]+)"', page)
                assert token is not None
                async with live.client() as client:
                    note_id = (await client.cell("note")).id
                response = await http.post(
                    f"{live.url}/api/document/transaction",
                    headers={"Marimo-Session-Id": live.session_id,
                             "Marimo-Server-Token": token.group(1)},
                    json={"changes": [{"type": "set-code", "cellId": note_id,
                                       "code": 'label = "person\'s words"'}]},
                    timeout=30,
                )  # fmt: skip
                assert response.status_code == 200, response.text
        return True

    # eval() is something the policy asks a person about: the person's moment to edit.
    edit_note = patch(edit("note", "label = eval(repr('agent'))"))
    coder = ScriptedCoder([edit_note, edit_note, finish("done", "note")])
    agent = agent_for(coder, tmp_path, approve="ask")
    agent.on_intervention = person_edits_then_approves
    result, cells = await run(agent, live, "rewrite the label", notebook)

    assert result.verdict is Verdict.SUCCESS, (result.stop_reason, result.error)
    told = coder.told(1)
    assert "The patch was not applied" in told and "changed in the notebook" in told
    assert "person's words" in told  # the model sees the person's code before redoing
    note = next(c for c in cells if c.name == "note")
    assert note.code == "label = eval(repr('agent'))"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_over_the_real_wire(
    tmp_path: Path, live: LiveSession, notebook: Path, stream: bool
) -> None:
    from tests.unit.llm.openai_server import scripted_server

    script = [
        {"tool": "apply_patch", "tool_args": {"ops": [
            {"op": "create", "name": "plus", "code": "plus = base_value + undefined_here"}]}},
        {"tool": "apply_patch", "tool_args": {"ops": [
            {"op": "edit", "target": "plus", "code": "plus = base_value + 1"}]}},
        {"tool": "finish", "tool_args": {"answer": "11", "cells": ["plus"]}},
    ]  # fmt: skip
    with scripted_server(script) as server:
        agent = CodeAgent(
            "openai:scripted",
            options=CodeOptions(stream=stream),
            memory_dir=False,
            env={"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "test"},
        )
        result, _ = await run(agent, live, "add one", notebook)
        requests = list(server.requests)

    assert result.verdict is Verdict.SUCCESS, (result.stop_reason, result.error)
    assert [r.is_stream for r in requests] == [stream] * 3
    # The error report went over the wire as the next user message.
    assert "[undefined_name]" in requests[1].text() and "undefined_here" in requests[1].text()
    assert result.usage.requests == 3


async def test_changing_the_persons_cells_needs_a_person(
    tmp_path: Path, live: LiveSession, notebook: Path
) -> None:
    coder = ScriptedCoder(
        [
            patch(create("scratch", "scratch = 1")),
            patch(edit("scratch", "scratch = 2")),  # its own cells: no one is asked
            patch(delete("scratch")),
            patch(edit("base", "base_value = 99")),  # the person's cells: asked, and refused
            patch(delete("note")),
            finish("cleaned up"),
        ]
    )
    result, cells = await run(agent_for(coder, tmp_path, approve="deny"), live, "tidy", notebook)

    assert result.verdict is Verdict.SUCCESS, (result.stop_reason, result.error)
    edit_refused, delete_refused = coder.told(4), coder.told(5)
    assert "edits a cell whose code the agent did not write" in edit_refused
    assert "[edit_foreign_cell: ask]" in edit_refused
    assert "deletes a cell whose code the agent did not write" in delete_refused
    assert "refused: --approve deny" in delete_refused
    assert [(c.name, c.code) for c in cells] == [
        ("base", "base_value = 10"),
        ("double", "doubled = base_value * 2"),
        ("note", 'label = "numbers"'),
    ]
    assert [len(c.created) + len(c.edited) + len(c.deleted) for c in result.checkpoints] == [
        1,
        1,
        1,
    ]
