"""The tree stays lint-clean and formatted (ruff, as configured in pyproject.toml)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.processes import run_process

REPO = Path(__file__).resolve().parents[1]


def _ruff() -> list[str]:
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.fail("ruff is not installed: run 'uv sync' (it is a dev dependency)")
    return [ruff]


@pytest.mark.integration
@pytest.mark.parametrize("args", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff(args: list[str]) -> None:
    proc = run_process([*_ruff(), *args, "src", "tests", "benchmarks"], cwd=REPO, timeout_s=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
