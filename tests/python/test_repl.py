"""A REPL session driven by the official MCP client: values and errors as fields, and a
namespace snapshot taken on request."""

from __future__ import annotations

import sys

import pytest
from support import call_ok, end_quietly

pytestmark = pytest.mark.anyio


async def test_repl_values_errors_and_snapshot_on_request(connect):
    async with connect() as client:
        created = await call_ok(client, "session_create", {"kind": "repl", "command": [sys.executable]})
        sid = created["session_id"]
        try:
            r = await call_ok(client, "session_exec", {"session_id": sid, "input": "x = 41\nx + 1"})
            assert r["value"] == "42"
            r = await call_ok(client, "session_exec", {"session_id": sid, "input": "1/0"})
            assert r["error"]["type"] == "ZeroDivisionError"
            await call_ok(client, "session_exec", {"session_id": sid, "input": "f = open('/dev/null')"})
            snap = await call_ok(client, "session_snapshot", {"session_id": sid})
            assert "x" in snap["saved"]
            assert "f" in snap["skipped"] and snap["reasons"]["f"]
            assert snap["bytes"] > 0
        finally:
            await end_quietly(client, sid)
