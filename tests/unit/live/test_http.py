"""Host checks, tokens, and the HTTP boundary against a real loopback server."""

from __future__ import annotations

import socket

import pytest

from marimo_engine.errors import LiveConnectionError, LiveHTTPError, UsageError
from marimo_engine.live import _http
from marimo_engine.live.discovery import list_sessions

from .conftest import ScriptedServer


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
        ("192.0.2.1", False),
        ("example.com", False),
        ("localhost.example.com", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert _http.is_loopback_host(host) is loopback


def test_localhost_names_count_only_when_they_resolve_to_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = {
        "app.localhost": ["127.0.0.1", "::1"],
        "evil.localhost": ["127.0.0.1", "203.0.113.7"],
        "far.localhost": ["203.0.113.7"],
    }

    def getaddrinfo(host: str, *args: object, **kwargs: object) -> list[tuple[object, ...]]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0)) for a in answers[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    assert _http.is_loopback_host("app.localhost") is True
    assert _http.is_loopback_host("evil.localhost") is False  # one address is not loopback
    assert _http.is_loopback_host("far.localhost") is False
    assert _http.is_loopback_host("unresolvable.localhost") is False
    with pytest.raises(UsageError, match="does not resolve to loopback"):
        _http.check_host("http://far.localhost:2718")


def test_check_host() -> None:
    assert _http.check_host("127.0.0.1:2718/") == "http://127.0.0.1:2718"
    assert _http.check_host("http://[::1]:2718") == "http://[::1]:2718"
    with pytest.raises(UsageError, match=r"'example\.com' is not a loopback host.*allow_remote"):
        _http.check_host("http://example.com:2718")
    assert _http.check_host("https://example.com", allow_remote=True) == "https://example.com"
    with pytest.raises(UsageError, match="Bad marimo server URL"):
        _http.check_host("ftp://127.0.0.1")


def test_token_from_argument_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MARIMO_TOKEN", raising=False)
    assert _http.resolve_token(None) is None
    monkeypatch.setenv("MARIMO_TOKEN", "from-env")
    assert _http.resolve_token(None) == "from-env"
    assert _http.resolve_token("given") == "given"
    assert _http.auth_headers("t", "s_1") == {
        "Authorization": "Bearer t",
        "Marimo-Session-Id": "s_1",
    }
    assert _http.auth_headers(None) == {}


@pytest.mark.integration
def test_list_sessions_sends_the_token(
    scripted_server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARIMO_TOKEN", "env-token")
    scripted_server.json_route(
        "GET",
        "/api/sessions",
        {"s_1": {"session_id": "sess-1", "filename": "a.py", "path": "/a.py"}},
    )
    sessions = list_sessions(scripted_server.url)
    assert [s.session_id for s in sessions] == ["s_1"]
    assert scripted_server.requests[-1].headers["Authorization"] == "Bearer env-token"


@pytest.mark.integration
def test_http_errors_say_what_to_do(scripted_server: ScriptedServer) -> None:
    scripted_server.json_route("GET", "/api/sessions", {"detail": "nope"}, status=401)
    with pytest.raises(LiveHTTPError, match=r"answered 401 .* wants a token") as info:
        list_sessions(scripted_server.url)
    assert info.value.status == 401
    assert info.value.url == f"{scripted_server.url}/api/sessions"


def test_connection_refused_is_a_live_connection_error() -> None:
    with socket.socket() as sock:  # a port that nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(LiveConnectionError, match="is the marimo server running"):
        list_sessions(f"http://127.0.0.1:{port}", timeout_s=5)
