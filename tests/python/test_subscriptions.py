"""Live updates through the official MCP Python SDK: `resources/subscribe` in the handshake era
and `subscriptions/listen` in 2026-07-28, over both transports. (The SDK has no client for
tasks; the Rust wire tests and the TypeScript SDK cover those.)"""

from __future__ import annotations

import anyio
import mcp_types as types
import pytest
from mcp.shared.subscriptions import ResourceUpdated
from support import call_ok, end_quietly, new_shell

pytestmark = pytest.mark.anyio

WAIT_S = 20


async def test_a_sessions_transcript_updates_reach_an_sdk_subscriber(connect, mode):
    updated: list[str] = []
    arrived = anyio.Event()

    async def on_message(message) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updated.append(message.params.uri)
            arrived.set()

    async with connect(message_handler=on_message) as client:
        sid = await new_shell(client)
        uri = f"stablehand://sessions/{sid}/transcript"
        try:
            if mode == "legacy":
                await client.subscribe_resource(uri)
                result = await call_ok(client, "session_exec", {"session_id": sid, "input": "echo changed"})
                assert result["stdout"] == "changed\n"
                with anyio.fail_after(WAIT_S):
                    await arrived.wait()
                assert updated[0] == uri, updated
                await client.unsubscribe_resource(uri)
            else:
                async with client.listen(resource_subscriptions=[uri]) as sub:
                    assert list(sub.honored.resource_subscriptions or []) == [uri], sub.honored
                    result = await call_ok(client, "session_exec", {"session_id": sid, "input": "echo changed"})
                    assert result["stdout"] == "changed\n"
                    with anyio.fail_after(WAIT_S):
                        event = await sub.__anext__()
                    assert event == ResourceUpdated(uri=uri), event
        finally:
            await end_quietly(client, sid)
