"""The live tests' servers are the shared ones of tests/integration/conftest.py.

`live_server` and `live_session` are defined there (one for the whole run,
shared with the MCP tests); the names below are re-exported for the test
modules of this folder.
"""

from __future__ import annotations

from tests.integration.conftest import STARTUP_TIMEOUT_S, LiveServer, server_token

__all__ = ["STARTUP_TIMEOUT_S", "LiveServer", "server_token"]
