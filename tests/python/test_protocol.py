"""Protocol features beyond tools: resources, logging, ping, auto negotiation, and who owns
sessions: separate HTTP protocol sessions, and what closing a client ends."""

from __future__ import annotations

import json
import os
import uuid

import anyio
import pytest
from support import TOOL_NAMES, call_ok, end_quietly, new_shell, open_client, protocol_error

pytestmark = pytest.mark.anyio

METRICS = "stablehand://metrics"


async def test_resources(connect, mode):
    async with connect() as client:
        sid = await new_shell(client)
        try:
            listed = await client.list_resources()
            uris = [r.uri for r in listed.resources]
            assert METRICS in uris
            assert f"stablehand://sessions/{sid}/state" in uris
            assert f"stablehand://sessions/{sid}/transcript" in uris

            read = await client.read_resource(METRICS)
            assert len(read.contents) == 1
            metrics = json.loads(read.contents[0].text)
            assert isinstance(metrics, dict)
            store = metrics.pop("store")
            assert store["path"] is None, "the tests run on a temporary store"
            assert store["skipped"] == []
            limits = metrics.pop("limits")
            assert limits["mechanism"] in {"cgroup-v2", "cgroup-v1", "rlimit", "off"}
            assert (limits["memory_mib"], limits["processes"]) == (4096, 1024)
            assert all(isinstance(n, int) for n in metrics.values())

            await call_ok(client, "session_exec", {"session_id": sid, "input": "echo transcript-line"})
            state = await client.read_resource(f"stablehand://sessions/{sid}/state")
            assert json.loads(state.contents[0].text)["session_id"] == sid
            transcript = await client.read_resource(f"stablehand://sessions/{sid}/transcript")
            assert "transcript-line\n" in transcript.contents[0].text

            bogus = f"stablehand://sessions/{uuid.uuid4()}/state"
            err = await protocol_error(client.read_resource(bogus))
            # Resource-not-found: -32002 in the 2025-11-25 spec, -32602 from 2026-07-28 (SEP-2164).
            assert err.code == (-32002 if mode == "legacy" else -32602)
            assert err.data == {"uri": bogus}
        finally:
            await end_quietly(client, sid)


# Log notifications: session_create logs "session <id> started" at level info.
SOME = 3


async def create_logged(client, count: int, messages: list) -> tuple[list[str], list[str]]:
    """Creates and ends `count` shells; returns their ids and those a log message named."""
    ids = []
    for _ in range(count):
        sid = await new_shell(client)
        ids.append(sid)
        await end_quietly(client, sid)
    return ids, [sid for sid in ids if any(sid in str(m.data) for m in messages)]


@pytest.mark.parametrize("mode", ["legacy"])
async def test_legacy_logging_level_and_ping(connect):
    messages = []

    async def on_log(params) -> None:
        messages.append(params)

    async with connect(logging_callback=on_log) as client:
        assert client.server_capabilities.logging is not None
        await client.session.send_ping()
        # No level set yet: nothing is sent.
        _, logged = await create_logged(client, 2, messages)
        assert not messages, f"log messages before logging/setLevel: {messages}"

        await client.session.set_logging_level("debug")
        _, logged = await create_logged(client, SOME, messages)
        assert logged, f"no log message named a created session: {messages}"
        assert all(m.logger == "stablehand" for m in messages)
        assert all(m.level in {"debug", "info", "notice", "warning"} for m in messages)

        before = len(messages)
        await client.session.set_logging_level("error")
        _, logged = await create_logged(client, 2, messages)
        assert not logged, f"info messages sent at level error: {messages[before:]}"
        await client.session.send_ping()


@pytest.mark.parametrize("mode", ["2026-07-28"])
async def test_modern_logging_is_opt_in_per_request(connect):
    messages = []

    async def on_log(params) -> None:
        messages.append(params)

    async with connect(logging_callback=on_log) as client:
        await create_logged(client, 2, messages)
        assert not messages, f"log messages without a logLevel opt-in: {messages}"
    async with connect(logging_callback=on_log, log_level="info") as client:
        _, logged = await create_logged(client, SOME, messages)
        assert logged, f"no log message named a created session: {messages}"
    messages.clear()
    async with connect(logging_callback=on_log, log_level="error") as client:
        await create_logged(client, 2, messages)
        assert not messages, f"info messages sent at logLevel error: {messages}"


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_log_notifications_are_all_delivered(connect, mode):
    """Every notification a handler emits before its response must reach the client."""
    messages = []

    async def on_log(params) -> None:
        messages.append(params)

    kwargs = {} if mode == "legacy" else {"log_level": "info"}
    async with connect(logging_callback=on_log, **kwargs) as client:
        if mode == "legacy":
            await client.session.set_logging_level("info")
        ids, logged = await create_logged(client, 30, messages)
        missing = sorted(set(ids) - set(logged))
        assert not missing, f"{len(missing)} of {len(ids)} 'session started' log messages never arrived"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is as good as gone: the server's subreaper reaps it shortly.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize(
    ("transport", "mode"),
    [("stdio", "legacy"), ("stdio", "2026-07-28")],
)
async def test_closing_the_client_ends_its_sessions(connect):
    """stdio: the server exits on end of input, and the sessions' processes are gone (over HTTP
    they belong to the local principal and outlive the client, or, per connection, end with
    its protocol session: test_principals.py)."""
    async with connect() as client:
        created = await call_ok(client, "session_create", {"kind": "process", "command": ["sleep", "60"]})
        pid = created["pid"]
        assert isinstance(pid, int) and pid_alive(pid)
    with anyio.fail_after(10):
        while pid_alive(pid):
            await anyio.sleep(0.05)


@pytest.mark.parametrize("mode", ["auto"])
async def test_auto_mode_discovers_the_modern_version(connect):
    """The SDK's default mode probes server/discover and adopts 2026-07-28."""
    async with connect() as client:
        assert client.protocol_version == "2026-07-28"
        assert client.server_info is not None and client.server_info.name == "stablehand"
        assert client.server_capabilities.tools is not None
        tools = await client.list_tools()
        assert {t.name for t in tools.tools} == TOOL_NAMES
