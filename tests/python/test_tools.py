"""The tool surface over every transport and protocol mode: listing, shell execs, timeouts,
following output with session_read, listing and ending sessions, process sessions, signals
and progress notifications."""

from __future__ import annotations

import uuid

import anyio
import jsonschema
import pytest
from support import EXPECTED_VERSION, TOOL_NAMES, call_error, call_ok, end_quietly, new_shell, protocol_error

pytestmark = pytest.mark.anyio


async def test_connect_and_list_tools(connect, mode):
    async with connect() as client:
        assert client.protocol_version == EXPECTED_VERSION[mode]
        listed = await client.list_tools()
        tools = {t.name: t for t in listed.tools}
        assert TOOL_NAMES <= set(tools), f"missing tools: {TOOL_NAMES - set(tools)}"
        for name in TOOL_NAMES:
            tool = tools[name]
            assert tool.input_schema.get("type") == "object", name
            assert isinstance(tool.input_schema.get("properties"), dict), name
            assert tool.output_schema is not None and tool.output_schema.get("type") == "object", name
            assert tool.description and len(tool.description) > 20, name
        # The schemas name the arguments the tools actually take.
        exec_props = tools["session_exec"].input_schema["properties"]
        assert {"session_id", "input", "timeout_ms", "interactive"} <= set(exec_props)
        assert "input" in tools["session_exec"].input_schema.get("required", [])


# The formats JSON Schema 2020-12 defines; validators warn about any other (the TypeScript
# SDK's Ajv prints a line per field).
STANDARD_FORMATS = {
    "date-time", "date", "time", "duration", "email", "idn-email", "hostname", "idn-hostname",
    "ipv4", "ipv6", "uri", "uri-reference", "iri", "iri-reference", "uuid", "uri-template",
    "json-pointer", "relative-json-pointer", "regex",
}


def _formats(node):
    """Every `format` keyword value in a schema, however deep."""
    if isinstance(node, dict):
        if isinstance(node.get("format"), str):
            yield node["format"]
        for value in node.values():
            yield from _formats(value)
    elif isinstance(node, list):
        for value in node:
            yield from _formats(value)


async def test_every_schema_is_standard_json_schema_2020_12(connect):
    async with connect() as client:
        listed = await client.list_tools()
    assert listed.tools
    for tool in listed.tools:
        for which, schema in (("input", tool.input_schema), ("output", tool.output_schema)):
            assert schema is not None, (tool.name, which)
            # Raises SchemaError naming the offending keyword.
            jsonschema.Draft202012Validator.check_schema(schema)
            unknown = set(_formats(schema)) - STANDARD_FORMATS
            assert not unknown, f"{tool.name} {which} schema uses non-standard formats {unknown}"
    # Unsigned integers say so in standard terms.
    exec_props = {t.name: t for t in listed.tools}["session_exec"].input_schema["properties"]
    timeout = exec_props["timeout_ms"]
    assert timeout.get("minimum") == 0, timeout


async def test_shell_exec_separates_streams_and_keeps_cwd(connect):
    async with connect() as client:
        sid = await new_shell(client)
        try:
            r = await call_ok(
                client,
                "session_exec",
                {"session_id": sid, "input": "cd /tmp && echo out && echo err >&2 && (exit 3)"},
            )
            assert r["stdout"] == "out\n"
            assert r["stderr"] == "err\n"
            assert r["exit_code"] == 3
            assert r["cwd"] == "/tmp"
            assert r["timed_out"] is False
            assert r["session_ended"] is False
            assert r["cursor"] >= len("out\n")
            assert r["stderr_cursor"] >= len("err\n")

            r = await call_ok(client, "session_exec", {"session_id": sid, "input": "pwd"})
            assert r["stdout"] == "/tmp\n"
            assert r["exit_code"] == 0

            # Exported variables persist too.
            await call_ok(client, "session_exec", {"session_id": sid, "input": "export SH_TEST=persisted"})
            r = await call_ok(client, "session_exec", {"session_id": sid, "input": 'echo "$SH_TEST"'})
            assert r["stdout"] == "persisted\n"
        finally:
            await end_quietly(client, sid)


async def test_timed_out_exec_then_read_the_rest(connect):
    async with connect() as client:
        sid = await new_shell(client)
        try:
            r = await call_ok(
                client,
                "session_exec",
                {"session_id": sid, "input": "echo early; sleep 2; echo late", "timeout_ms": 300},
            )
            assert r["timed_out"] is True
            assert r["stdout"] == "early\n"
            assert r["exit_code"] is None
            cursor = r["cursor"]
            rest = ""
            for _ in range(10):  # bounded: each read waits at most 5 s
                page = await call_ok(
                    client, "session_read", {"session_id": sid, "cursor": cursor, "wait_ms": 5000}
                )
                assert page["cursor"] >= cursor
                rest += page["data"]
                cursor = page["cursor"]
                if "late\n" in rest:
                    break
            assert rest.startswith("late\n"), f"read after the timeout returned {rest!r}"
            # Once the command has finished the session takes execs again.
            with anyio.fail_after(10):
                while True:
                    state = await call_ok(client, "session_state", {"session_id": sid})
                    if state["state"] == "Ready":
                        break
                    await anyio.sleep(0.05)
            r = await call_ok(client, "session_exec", {"session_id": sid, "input": "echo again"})
            assert r["stdout"] == "again\n"
        finally:
            await end_quietly(client, sid)


async def test_list_then_end(connect):
    async with connect() as client:
        name = f"list-then-end-{uuid.uuid4().hex[:8]}"
        older = await new_shell(client)
        sid = await new_shell(client, name=name)
        try:
            listed = await call_ok(client, "session_list", {})
            ids = [s["session_id"] for s in listed["sessions"]]
            assert sid in ids and older in ids
            assert ids.index(sid) < ids.index(older), "session_list must be newest first"
            assert ids[0] == sid
            row = listed["sessions"][0]
            assert row["kind"] == "shell"
            assert row["name"] == name

            # Get-or-create by name returns the live session.
            again = await call_ok(client, "session_create", {"kind": "shell", "name": name})
            assert again["session_id"] == sid

            ended = await call_ok(client, "session_end", {"session_id": sid, "grace_ms": 1000})
            assert ended["ended"] is True
            assert ended["state"] == "Ended"

            message = await call_error(client, "session_exec", {"session_id": sid, "input": "echo hi"})
            assert "Ended" in message

            only_ended = await call_ok(client, "session_list", {"state": "Ended"})
            assert sid in [s["session_id"] for s in only_ended["sessions"]]
            live = await call_ok(client, "session_list", {"state": "Ready"})
            assert sid not in [s["session_id"] for s in live["sessions"]]
        finally:
            await end_quietly(client, sid)
            await end_quietly(client, older)


async def test_process_session_send_and_read(connect):
    async with connect() as client:
        created = await call_ok(client, "session_create", {"kind": "process", "command": ["cat"]})
        sid = created["session_id"]
        assert created["kind"] == "process"
        assert isinstance(created["pid"], int)
        try:
            sent = await call_ok(client, "session_send", {"session_id": sid, "data": "hello\n"})
            assert sent["bytes_written"] == len("hello\n")
            data = ""
            cursor = sent["cursor"]
            for _ in range(10):
                page = await call_ok(client, "session_read", {"session_id": sid, "cursor": cursor, "wait_ms": 3000})
                data += page["data"]
                cursor = page["cursor"]
                if "hello\n" in data:
                    break
            assert data == "hello\n"

            # Closing stdin makes cat exit; the read then reports end of stream and exit code 0.
            await call_ok(client, "session_send", {"session_id": sid, "data": "", "eof": True})
            for _ in range(10):
                page = await call_ok(client, "session_read", {"session_id": sid, "cursor": cursor, "wait_ms": 3000})
                cursor = page["cursor"]
                if page["eof"]:
                    break
            assert page["eof"] is True
            # The end of stdout may be seen just before the child is reaped.
            with anyio.fail_after(10):
                while (state := await call_ok(client, "session_state", {"session_id": sid}))["state"] != "Ended":
                    await anyio.sleep(0.05)
            assert state["exit_code"] == 0
        finally:
            await end_quietly(client, sid)


async def test_signal_interrupts_a_running_command(connect):
    async with connect() as client:
        sid = await new_shell(client)
        try:
            r = await call_ok(client, "session_exec", {"session_id": sid, "input": "sleep 30", "timeout_ms": 200})
            assert r["timed_out"] is True
            sig = await call_ok(client, "session_signal", {"session_id": sid, "signal": "INT"})
            assert sig["delivered"] is True
            # The shell survives the interrupt and takes the next command.
            r = await call_ok(client, "session_exec", {"session_id": sid, "input": "echo alive", "timeout_ms": 10000})
            assert r["stdout"] == "alive\n"
            assert r["exit_code"] == 0
        finally:
            await end_quietly(client, sid)


async def test_exec_reports_progress(connect):
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async with connect() as client:
        sid = await new_shell(client)
        try:
            r = await call_ok(
                client,
                "session_exec",
                {"session_id": sid, "input": "for i in 1 2 3; do echo $i; sleep 0.6; done"},
                progress_callback=on_progress,
            )
            seen_at_result = list(progress)
            assert r["stdout"] == "1\n2\n3\n"
            assert len(seen_at_result) >= 1, "no progress notification arrived before the result"
            values = [p[0] for p in seen_at_result]
            assert values == sorted(values) and values[0] > 0
        finally:
            await end_quietly(client, sid)


async def test_cancelled_exec_interrupts_the_command(connect):
    """A client that gives up on session_exec (request timeout, then notifications/cancelled
    or, on 2026 HTTP, an aborted POST) gets the command interrupted; the shell stays usable."""
    async with connect() as client:
        sid = await new_shell(client)
        try:
            err = await protocol_error(
                client.call_tool("session_exec", {"session_id": sid, "input": "sleep 30"}, read_timeout_seconds=0.5)
            )
            assert err.code == -32001  # the SDK's own request-timeout code
            with anyio.fail_after(10):
                while (await call_ok(client, "session_state", {"session_id": sid}))["state"] != "Ready":
                    await anyio.sleep(0.05)
            r = await call_ok(client, "session_exec", {"session_id": sid, "input": "echo after", "timeout_ms": 5000})
            assert r["stdout"] == "after\n"
            assert r["timed_out"] is False
        finally:
            await end_quietly(client, sid)


async def test_session_list_pages_and_filters(connect):
    async with connect() as client:
        ids = [await new_shell(client) for _ in range(3)]
        try:
            first = await call_ok(client, "session_list", {"limit": 2})
            assert [s["session_id"] for s in first["sessions"]] == ids[:0:-1]
            assert first["next_cursor"]
            second = await call_ok(client, "session_list", {"limit": 1, "cursor": first["next_cursor"]})
            assert [s["session_id"] for s in second["sessions"]] == [ids[0]]
            processes = await call_ok(client, "session_list", {"kind": "process"})
            assert not set(ids) & {s["session_id"] for s in processes["sessions"]}
            message = await call_error(client, "session_list", {"limit": 0})
            assert "limit" in message
        finally:
            for sid in ids:
                await end_quietly(client, sid)
