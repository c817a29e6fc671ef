"""The marimo-engine MCP server (`marimo-engine mcp`), on the official `mcp` Python SDK.

Named `mcp_server` so that it never shadows the SDK's `mcp` package. The
server is built in `server.py` (`build_server`); the HTTP transport with
its bearer token lives in `transport.py`. See docs/mcp.md.
"""

from __future__ import annotations

__all__: list[str] = []
