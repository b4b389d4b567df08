"""A debug session driven by the official MCP client: a real program under debugpy (from
this test environment), breakpoints, continue, step, evaluate, the last stop in
session_state, and clear errors for bad input."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from support import call_error, call_ok, end_quietly, new_shell

pytestmark = pytest.mark.anyio

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "debuggee.py"


async def test_debug_session_stops_steps_and_evaluates(connect, tmp_path):
    shutil.copy(FIXTURE, tmp_path / "debuggee.py")
    async with connect() as client:
        created = await call_ok(
            client,
            "session_create",
            {
                "kind": "debug",
                "command": [sys.executable, "-m", "debugpy.adapter"],
                "cwd": str(tmp_path),
                "debug": {"program": "debuggee.py"},
            },
        )
        sid = created["session_id"]
        try:
            assert created["state"] == "Paused"
            set_ = await call_ok(
                client,
                "debug_set_breakpoints",
                {"session_id": sid, "file": "debuggee.py", "lines": [5, 2]},
            )
            assert [(b["line"], b["verified"]) for b in set_["breakpoints"]] == [(5, True), (2, False)]
            assert "no code" in set_["breakpoints"][1]["message"]

            stop = await call_ok(client, "debug_continue", {"session_id": sid, "timeout_ms": 10000})
            assert stop["status"] == "stopped"
            s = stop["stopped"]
            assert (s["file"], s["line"], s["reason"]) == ("debuggee.py", 5, "breakpoint")
            assert {"name": "n", "value": "0", "type": "int"} in s["locals"]

            step = await call_ok(client, "debug_step", {"session_id": sid, "granularity": "over"})
            assert step["stopped"]["line"] == 6
            value = await call_ok(client, "debug_evaluate", {"session_id": sid, "expression": "y + 1"})
            assert value == {"value": "1", "type": "int", "truncated": False}
            err = await call_error(client, "debug_evaluate", {"session_id": sid, "expression": "nope"})
            assert "NameError" in err

            state = await call_ok(client, "session_state", {"session_id": sid})
            assert state["state"] == "Paused"
            assert state["last_stop"] == {"file": "debuggee.py", "line": 6, "hit_count": 1, "reason": "step"}

            err = await call_error(
                client, "debug_set_breakpoints", {"session_id": sid, "file": str(FIXTURE), "lines": [1]}
            )
            assert "outside the session's cwd" in err
        finally:
            await end_quietly(client, sid)


async def test_debug_tools_on_a_shell_say_so(connect):
    async with connect() as client:
        sid = await new_shell(client)
        try:
            err = await call_error(client, "debug_step", {"session_id": sid})
            assert err == "debug_step is not supported by shell sessions"
            r = await call_ok(client, "session_exec", {"session_id": sid, "input": "echo alive"})
            assert r["stdout"] == "alive\n"
        finally:
            await end_quietly(client, sid)
