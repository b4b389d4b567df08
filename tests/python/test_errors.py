"""Bad input: unknown sessions and tools, arguments that break the input schema, bad
signals and working directories. Tool failures are results with isError; malformed requests
are JSON-RPC errors (-32602)."""

from __future__ import annotations

import uuid

import pytest
from support import call_error, end_quietly, new_shell, protocol_error

pytestmark = pytest.mark.anyio

INVALID_PARAMS = -32602


async def test_unknown_session_is_a_tool_error(connect):
    async with connect() as client:
        bogus = str(uuid.uuid4())
        for name, args in [
            ("session_exec", {"session_id": bogus, "input": "true"}),
            ("session_state", {"session_id": bogus}),
            ("session_read", {"session_id": bogus}),
            ("session_end", {"session_id": bogus}),
        ]:
            message = await call_error(client, name, args)
            assert "not found" in message, f"{name}: {message}"
        # A malformed id is just another unknown session.
        message = await call_error(client, "session_state", {"session_id": "not-a-uuid"})
        assert "not found" in message


async def test_unknown_tool_is_invalid_params(connect):
    async with connect() as client:
        await client.list_tools()
        err = await protocol_error(client.call_tool("no_such_tool", {}))
        assert err.code == INVALID_PARAMS
        assert "no_such_tool" in err.message


async def test_schema_invalid_arguments_are_invalid_params(connect):
    async with connect() as client:
        sid = await new_shell(client)
        try:
            for args in [
                {"session_id": sid},  # input missing
                {"session_id": sid, "input": "true", "timeout_ms": "abc"},  # wrong type
                {"session_id": sid, "input": "true", "no_such_arg": 1},  # unknown field
            ]:
                err = await protocol_error(client.call_tool("session_exec", args))
                assert err.code == INVALID_PARAMS, f"{args}: {err.code} {err.message}"
                assert "session_exec" in err.message
            err = await protocol_error(client.call_tool("session_signal", {"session_id": sid, "signal": "BOGUS"}))
            assert err.code == INVALID_PARAMS
            assert "BOGUS" in err.message
            err = await protocol_error(client.call_tool("session_create", {"kind": "teapot"}))
            assert err.code == INVALID_PARAMS
        finally:
            await end_quietly(client, sid)


async def test_bad_cwd_is_a_tool_error_naming_it(connect):
    async with connect() as client:
        message = await call_error(client, "session_create", {"kind": "shell", "cwd": "/no/such/dir"})
        assert "/no/such/dir" in message


async def test_process_without_command_is_a_tool_error(connect):
    async with connect() as client:
        message = await call_error(client, "session_create", {"kind": "process"})
        assert "command" in message
