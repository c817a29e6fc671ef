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
