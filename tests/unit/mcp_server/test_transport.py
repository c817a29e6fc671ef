"""The HTTP transport's guards: the bearer token and the loopback-only bind."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from marimo_engine.cli.main import main
from marimo_engine.errors import UsageError
from marimo_engine.mcp_server.transport import TOKEN_ENV, BearerTokenMiddleware, check_bind

TOKEN = "t" * 32


async def _ok_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": f"Bearer {TOKEN}x"}, 401),
        ({"Authorization": f"Basic {TOKEN}"}, 401),
        ({"Authorization": TOKEN}, 401),
        ({"Authorization": f"Bearer {TOKEN}"}, 200),
        ({"Authorization": f"bearer {TOKEN}"}, 200),
    ],
    ids=["none", "wrong", "basic", "no-scheme", "right", "scheme-case"],
)
async def test_only_the_bearer_token_passes(headers: dict[str, str], status: int) -> None:
    app = BearerTokenMiddleware(_ok_app, TOKEN)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as client:
        response = await client.post("/mcp", headers=headers, json={})
    assert response.status_code == status
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert TOKEN_ENV in response.json()["error_description"]


@pytest.mark.parametrize(
    ("host", "allow_remote", "token", "message"),
    [
        ("0.0.0.0", False, TOKEN, "Refusing to listen on '0.0.0.0'.*--allow-remote"),
        ("192.168.1.5", False, TOKEN, "not a loopback address"),
        ("127.0.0.1", False, None, "needs a bearer token"),
        ("127.0.0.1", False, "short", "use at least 16"),
        ("0.0.0.0", True, "", "needs a bearer token"),
    ],
    ids=["any-address", "lan", "no-token", "weak-token", "remote-without-token"],
)
def test_check_bind_refuses(host: str, allow_remote: bool, token: str | None, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        check_bind(host, allow_remote=allow_remote, token=token)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_check_bind_accepts_loopback(host: str) -> None:
    check_bind(host, allow_remote=False, token=TOKEN)
    check_bind("0.0.0.0", allow_remote=True, token=TOKEN)


def test_the_cli_refuses_a_remote_bind_without_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["mcp", "--http", "--host", "0.0.0.0", "--port", "9", "--token", TOKEN])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Refusing to listen on '0.0.0.0'")
    assert "--allow-remote" in err
