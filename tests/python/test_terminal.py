"""Terminal sessions through MCP with the official SDK, over both transports and in both
protocol eras: an interactive Python under a pseudo-terminal, read through its screen."""

from __future__ import annotations

import sys

import pytest
from support import call_error, call_ok, end_quietly

pytestmark = pytest.mark.anyio


async def test_a_terminal_session_runs_an_interactive_python_read_through_its_screen(connect):
    async with connect() as client:
        created = await call_ok(
            client,
            "session_create",
            {
                "kind": "terminal",
                "command": [sys.executable, "-q"],
                "env": {"PYTHON_BASIC_REPL": "1"},
                "terminal": {"cols": 90, "rows": 25},
            },
        )
        sid = created["session_id"]
        try:
            view = await call_ok(
                client, "terminal_send", {"session_id": sid, "wait_for": r"(?m)^>>>$", "timeout_ms": 30000}
            )
            assert view["waited"] is True, view
            assert (view["cols"], view["rows"]) == (90, 25)
            view = await call_ok(
                client,
                "terminal_send",
                {"session_id": sid, "text": "6 * 7\n", "wait_for": r"(?m)^42$", "timeout_ms": 30000},
            )
            assert view["waited"] is True, view
            assert ">>> 6 * 7" in view["screen"], view
            assert "42\n" in view["output"], view
            resized = await call_ok(client, "terminal_resize", {"session_id": sid, "cols": 70, "rows": 20})
            assert (resized["cols"], resized["rows"]) == (70, 20)
            view = await call_ok(
                client,
                "terminal_send",
                {
                    "session_id": sid,
                    "text": "import os; os.get_terminal_size()\n",
                    "wait_for": r"columns=70, lines=20",
                    "timeout_ms": 30000,
                },
            )
            assert view["waited"] is True, view
            screen = await call_ok(client, "terminal_screen", {"session_id": sid})
            assert screen["cursor"]["row"] == len(screen["screen"]) - 1, screen
            message = await call_error(client, "terminal_send", {"session_id": sid, "keys": ["hyper-q"]})
            assert 'unknown key "hyper-q"' in message and "pagedown" in message
            # The session is unharmed by the bad request.
            view = await call_ok(
                client,
                "terminal_send",
                {"session_id": sid, "text": "print('still', 'here')\n", "wait_for": r"(?m)^still here$"},
            )
            assert view["waited"] is True, view
        finally:
            await end_quietly(client, sid)


async def test_terminal_tools_on_another_kind_say_what_they_need(connect):
    async with connect() as client:
        sid = (await call_ok(client, "session_create", {"kind": "shell"}))["session_id"]
        try:
            message = await call_error(client, "terminal_screen", {"session_id": sid})
            assert "terminal_screen" in message and "shell" in message, message
        finally:
            await end_quietly(client, sid)
