"""The static policy: which imports and calls need a person, and which are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from marimo_engine.agents.code.policy import Policy, scan_code
from marimo_engine.errors import UsageError


def rules(code: str, policy: Policy) -> list[tuple[str, str]]:
    return [(f.rule, f.action) for f in scan_code(code, "cell", policy)]


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    return Policy(workdir=tmp_path)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("import subprocess\nsubprocess.run(['ls'])", [("subprocess", "ask")]),
        ("import os\nos.system('ls')", [("subprocess", "ask")]),
        ("from os import system", [("subprocess", "ask")]),
        ("import requests", [("network", "ask")]),
        ("import urllib.request", [("network", "ask")]),
        ("cmd = 'pip install x'", [("package_install", "ask")]),
        ("eval('1 + 1')", [("dynamic_code", "ask")]),
        ("open('/etc/passwd', 'w')", [("write_outside", "deny")]),
        ("open('../up.txt', 'a')", [("write_outside", "deny")]),
        ("from pathlib import Path\nPath('/tmp/x').write_text('x')", [("write_outside", "deny")]),
        ("df.to_csv('~/out.csv')", [("write_outside", "deny")]),
        ("import shutil\nshutil.rmtree('/var/data')", [("write_outside", "deny")]),
        ("open(name, 'w')", [("write_unknown", "ask")]),
        # allowed: reads, writes inside, strings that only look like methods
        ("text = open('/etc/hosts').read()", []),
        ("open('out/result.csv', 'w')", []),
        ("df.to_csv('summary.csv')", []),
        ("label = 'a-b'.replace('-', ' ')", []),
        ("import pandas as pd\nimport altair as alt", []),
    ],
)
def test_rules(code: str, expected: list[tuple[str, str]], policy: Policy) -> None:
    assert rules(code, policy) == expected


def test_actions_can_be_overridden(tmp_path: Path) -> None:
    strict = Policy(actions={"network": "deny"}, workdir=tmp_path)
    assert rules("import httpx", strict) == [("network", "deny")]
    relaxed = Policy(actions={"subprocess": "allow"}, workdir=tmp_path)
    assert rules("import subprocess", relaxed) == [("subprocess", "allow")]


def test_bad_policies_are_refused() -> None:
    with pytest.raises(UsageError, match="Unknown policy rule"):
        Policy(actions={"networking": "deny"})  # type: ignore[dict-item]
    with pytest.raises(UsageError, match="'allow', 'ask' or 'deny'"):
        Policy(actions={"network": "maybe"})  # type: ignore[dict-item]


def test_unparsable_code_has_no_findings(policy: Policy) -> None:
    assert scan_code("import (", "cell", policy) == []


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        # renamed imports and indirection reach the same rule as the plain spelling
        ("import os as o\no.system('ls')", [("subprocess", "ask")]),
        ("import posix\nposix.system('ls')", [("subprocess", "ask")]),
        ("from os import system as s\ns('ls')", [("subprocess", "ask")]),
        ("import os\nrun = os.system\nrun('ls')", [("subprocess", "ask")]),
        ("import os\ngetattr(os, 'system')('ls')", [("subprocess", "ask")]),
        ("import os\ngetattr(os, name)('ls')", [("dynamic_code", "ask")]),
        ("import sys\nsys.modules['os'].system('ls')", [("subprocess", "ask")]),
        ("__import__('os').system('ls')", [("dynamic_code", "ask"), ("subprocess", "ask")]),
        ("from importlib import import_module\nimport_module('x')", [("dynamic_code", "ask")]),
        ("import builtins\nbuiltins.exec('1')", [("dynamic_code", "ask")]),
        ("().__class__.__base__.__subclasses__()", [("dynamic_code", "ask")]),
        ("import ctypes", [("dynamic_code", "ask")]),
        ("from urllib import request", [("network", "ask")]),
        ("from http import client", [("network", "ask")]),
        ("import urllib\nurllib.request.urlopen('http://x')", [("network", "ask")]),
        (
            "import subprocess, sys\nsubprocess.run([sys.executable, '-m', 'pip', 'install', 'x'])",
            [("subprocess", "ask"), ("package_install", "ask")],
        ),
        # writes, however spelled
        ("import shutil as sh\nsh.rmtree('/var/data')", [("write_outside", "deny")]),
        ("from shutil import rmtree\nrmtree('/var/data')", [("write_outside", "deny")]),
        ("import shutil\nshutil.copy('a.csv', '/etc/a.csv')", [("write_outside", "deny")]),
        ("import shutil\nshutil.copy('/etc/hosts', 'hosts')", []),
        ("open(file='/etc/x', mode='w')", [("write_outside", "deny")]),
        ("import io\nio.open('/etc/x', 'w')", [("write_outside", "deny")]),
        ("import os\nos.open('/etc/x', os.O_WRONLY | os.O_CREAT)", [("write_outside", "deny")]),
        ("import os\nos.open('/etc/hosts', os.O_RDONLY)", []),
        ("import os\nos.rename('a.txt', '/tmp/a.txt')", [("write_outside", "deny")]),
        ("from pathlib import Path as P\nP('/tmp/x').write_text('x')", [("write_outside", "deny")]),
        (
            "from pathlib import Path\np = Path('/tmp/x')\np.write_text('x')",
            [("write_outside", "deny")],
        ),
        (
            "from pathlib import Path\n(Path('out') / '..' / '..' / 'x').touch()",
            [("write_outside", "deny")],
        ),
        (
            "from pathlib import Path\n(Path.home() / 'x').write_bytes(b'')",
            [("write_outside", "deny")],
        ),
        ("from pathlib import Path\nPath('/tmp/x').open('w')", [("write_outside", "deny")]),
        ("target.write_text('x')", [("write_unknown", "ask")]),
        ("open(f'/etc/{name}', 'w')", [("write_outside", "deny")]),
        ("open(f'{folder}/out.csv', 'w')", [("write_unknown", "ask")]),
        # not writes: reads, strings, images
        ("from pathlib import Path\ntext = Path('/etc/hosts').read_text()", []),
        ("from pathlib import Path\np = Path('out/x.csv')\np.write_text('x')", []),
        ("from PIL import Image\nimg = Image.open('/data/a.png')", []),
        ("import platform\nplatform.system()", []),
    ],
)
def test_indirection_does_not_escape_the_rules(
    code: str, expected: list[tuple[str, str]], policy: Policy
) -> None:
    assert sorted(rules(code, policy)) == sorted(expected)


def test_names_from_other_cells_are_followed(policy: Policy) -> None:
    # marimo cells read each other's globals: the alias may come from another cell,
    # whose import was approved (or was the person's) before.
    context = ["import subprocess as sp\nimport os as o", "from shutil import rmtree"]
    found = [
        (f.rule, f.action)
        for f in scan_code("sp.run(['ls'])\no.system('ls')\nrmtree('/x')", "c", policy, context)
    ]
    assert found == [("subprocess", "ask"), ("subprocess", "ask"), ("write_outside", "deny")]
    # the other cells' own imports give no findings to this cell
    assert scan_code("x = 1", "c", policy, context) == []


def test_the_gate_resolves_names_against_the_notebook_after_the_patch(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from pydantic_ai.models.test import TestModel

    from marimo_engine.agents.code import CodeAgent, CodeOptions
    from marimo_engine.agents.code.patch import CellEdit, NewCell, Patch
    from marimo_engine.live.protocol import CellInfo

    agent = CodeAgent(TestModel(), options=CodeOptions(), memory_dir=False)
    state = SimpleNamespace(workdir=tmp_path, agent_written={"imp": "import subprocess as sp"})
    cells = [CellInfo(id="imp", name="imports", code="import subprocess as sp")]
    # `sp` comes from a cell the agent wrote (and had approved) in an earlier turn
    uses = Patch(ops=[NewCell(name="listing", code="out = sp.run(['ls'])")])
    found = agent._scan(state, uses, cells)  # type: ignore[arg-type]
    assert [(f.rule, f.cell) for f in found] == [("subprocess", "listing")]
    # the patch itself rebinds `sp` to something harmless: the notebook after it counts
    rebinds = Patch(
        ops=[
            CellEdit(target="imports", code="import statistics as sp"),
            NewCell(name="listing", code="out = sp.mean([1, 2])"),
        ]
    )
    assert agent._scan(state, rebinds, cells) == []  # type: ignore[arg-type]
