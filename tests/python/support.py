"""Helpers shared by the test modules: calling tools and checking their outcomes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

MODES = ("legacy", "2026-07-28")
TRANSPORTS = ("stdio", "http")
# The protocol version each client mode must end up with.
EXPECTED_VERSION = {"legacy": "2025-11-25", "2026-07-28": "2026-07-28"}
# Upper bound for one test's MCP conversation; pytest-timeout (pytest.ini) is the backstop.
TEST_DEADLINE_S = 25.0
TOOL_NAMES = {
    "session_create",
    "session_exec",
    "session_send",
    "session_read",
    "session_state",
    "session_list",
    "session_signal",
    "session_end",
    "session_resume",
    "session_snapshot",
    "debug_set_breakpoints",
    "debug_continue",
    "debug_step",
    "debug_pause",
    "debug_evaluate",
    "terminal_send",
    "terminal_screen",
    "terminal_resize",
}


@contextlib.asynccontextmanager
async def open_client(
    target: StdioServerParameters | str, mode: str, deadline: float = TEST_DEADLINE_S, **kwargs: Any
) -> AsyncIterator[Client]:
    """A connected client; the whole conversation (connect to close) must finish within `deadline`."""
    kwargs.setdefault("read_timeout_seconds", 20)
    with anyio.fail_after(deadline):
        async with Client(target, mode=mode, **kwargs) as client:
            yield client


def result_text(result: Any) -> str:
    """All text content blocks of a tool result, joined."""
    return "\n".join(getattr(block, "text", "") for block in result.content)


async def call_ok(client: Client, name: str, args: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Calls a tool that must succeed and returns its structured content."""
    result = await client.call_tool(name, args, **kwargs)
    assert not result.is_error, f"{name}({args}) failed: {result_text(result)}"
    assert isinstance(result.structured_content, dict), f"{name} returned no structured content: {result}"
    return result.structured_content


async def call_error(client: Client, name: str, args: dict[str, Any]) -> str:
    """Calls a tool that must fail as a tool result (isError: true) and returns its text."""
    result = await client.call_tool(name, args)
    assert result.is_error, f"{name}({args}) should have failed, got {result.structured_content}"
    return result_text(result)


async def protocol_error(coro: Any) -> MCPError:
    """Awaits a call that must fail with a JSON-RPC error and returns it."""
    with pytest.raises(MCPError) as info:
        await coro
    return info.value


async def new_shell(client: Client, **args: Any) -> str:
    created = await call_ok(client, "session_create", {"kind": "shell", **args})
    return created["session_id"]


async def end_quietly(client: Client, session_id: str) -> None:
    """Ends a session at the end of a test (the HTTP server is shared by many tests)."""
    with contextlib.suppress(Exception):
        await client.call_tool("session_end", {"session_id": session_id, "grace_ms": 500})
