"""Terminal sessions through MCP with the official SDK, over both transports and in both
protocol eras: an interactive Python under a pseudo-terminal, read through its screen."""

from __future__ import annotations

import sys

import pytest
from conftest import start_http_server, stop_http_server
from support import call_error, call_ok, end_quietly, open_client

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
                    # The answer and the prompt after it: the cursor is asserted on that line.
                    "wait_for": r"(?m)^os\.terminal_size\(columns=70, lines=20\)\n>>>$",
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


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


PRINTED_BYTES = 100 * 1024 * 1024
RSS_GROWTH_LIMIT_KIB = 64 * 1024


# A debug build's emulator takes 10-20 s for 100 MB here; more on a loaded machine.
@pytest.mark.timeout(300)
async def test_a_terminal_printing_100_mb_leaves_the_server_bounded_and_responsive(stablehand_bin, tmp_path):
    """`yes` under a terminal until 100 MB have been printed: every call is answered while the
    output streams, the server's memory stays within a fixed bound (scrollback and output logs
    are capped), and Ctrl-C gives the shell back."""
    server = start_http_server(stablehand_bin, ["--data-dir", str(tmp_path / "data"), "--http", "127.0.0.1:0"])
    try:
        async with open_client(server.url, "2026-07-28", deadline=240) as client:
            sid = (await call_ok(client, "session_create", {"kind": "terminal"}))["session_id"]
            await call_ok(client, "terminal_send", {"session_id": sid, "wait_for": r"\$ $|# $"})
            baseline = _rss_kib(server.proc.pid)
            peak = baseline
            line = "0123456789" * 10
            await call_ok(client, "terminal_send", {"session_id": sid, "text": f"yes {line}\n", "timeout_ms": 0})
            calls = 0
            while True:
                # The output never settles: each call returns at its timeout, mid-stream.
                view = await call_ok(
                    client, "terminal_send", {"session_id": sid, "settle_ms": 60000, "timeout_ms": 300}
                )
                calls += 1
                peak = max(peak, _rss_kib(server.proc.pid))
                if view["cursor_out"] >= PRINTED_BYTES:
                    break
                assert view["waited"] is False, "the output stopped before 100 MB"
            assert line in view["screen"], view["screen"]
            view = await call_ok(
                client,
                "terminal_send",
                {"session_id": sid, "keys": ["ctrl-c"]},
            )
            view = await call_ok(
                client,
                "terminal_send",
                {"session_id": sid, "text": "echo back-$((2*21))\n", "wait_for": r"(?m)^back-42$", "timeout_ms": 60000},
            )
            assert view["waited"] is True, view
            growth = peak - baseline
            print(f"printed {view['cursor_out']} bytes over {calls} calls; server RSS {baseline} KiB -> peak {peak} KiB")
            assert growth < RSS_GROWTH_LIMIT_KIB, f"server RSS grew {growth} KiB while a terminal printed 100 MB"
            await end_quietly(client, sid)
    finally:
        assert stop_http_server(server) == 0, server.log_tail()
