"""`marimo-engine ui`'s checks before it serves: one line and exit code 2 for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from marimo_engine.cli.main import main
from marimo_engine.ui.server import app_url


def test_refuses_a_remote_host_without_allow_remote(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ui", "--host", "10.1.2.3", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "Refusing to listen on '10.1.2.3'" in err
    assert "--allow-remote" in err
    assert len(err.strip().splitlines()) == 1


def test_refuses_a_short_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MARIMO_ENGINE_UI_TOKEN", "short")
    assert main(["ui", "--port", "0"]) == 2
    assert "use at least 16" in capsys.readouterr().err


def test_refuses_a_broken_tools_module(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ui", "--port", "0", "--tools", str(tmp_path / "missing.py")]) == 2
    assert "missing.py" in capsys.readouterr().err


def test_app_url() -> None:
    assert app_url("127.0.0.1", 2719, "a+b/c") == "http://127.0.0.1:2719/?access_token=a%2Bb%2Fc"
    assert app_url("0.0.0.0", 1, "t").startswith("http://127.0.0.1:1/")
    assert app_url("::1", 1, "t").startswith("http://[::1]:1/")
    assert app_url("::", 1, "t").startswith("http://[::1]:1/")
