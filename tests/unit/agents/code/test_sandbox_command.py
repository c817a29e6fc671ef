"""The sandbox's command line: what bubblewrap is told to show the kernel."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from marimo_engine.agents.code.sandbox import SandboxedServer


def _ro_binds(command: list[str]) -> list[str]:
    return [command[i + 1] for i, word in enumerate(command) if word == "--ro-bind"]


def test_an_environment_under_tmp_is_bound_back_into_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A CI clone under /tmp: its venv and its source would vanish under the
    # sandbox's own /tmp, and the interpreter could not start.
    assert tmp_path.resolve().is_relative_to("/tmp"), "pytest's tmp_path is expected under /tmp"
    venv = tmp_path / "clone" / ".venv"
    site = venv / "lib" / "site-packages"
    src = tmp_path / "clone" / "src"
    for folder in (site, src):
        folder.mkdir(parents=True)
    monkeypatch.setattr(sys, "prefix", str(venv))
    monkeypatch.setattr(sys, "path", [str(src), str(site), "/usr/lib/python3"])
    notebook = tmp_path / "work" / "nb.py"
    notebook.parent.mkdir()

    command = SandboxedServer(notebook).command(str(tmp_path / "sock" / "s"))

    binds = _ro_binds(command)
    assert str(venv.resolve()) in binds  # the site-packages below it come along
    assert str(site.resolve()) not in binds
    assert str(src.resolve()) in binds
    assert "/usr/lib/python3" not in binds  # visible already through the read-only /
    assert command.index(str(venv.resolve())) > command.index("/tmp")  # after the tmpfs
