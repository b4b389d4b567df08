"""Per-session memory and process limits through MCP with the official SDK: a limited shell's
memory hog is killed and the exec result says which limit; bad limits are clear tool errors;
stablehand://metrics names the mechanism in force."""

from __future__ import annotations

import json
import os

import pytest
from support import call_error, call_ok, end_quietly

pytestmark = pytest.mark.anyio

MECHANISMS = {"cgroup-v2", "cgroup-v1", "rlimit", "off"}


def _cgroups_expected() -> bool:
    # As root on a machine with cgroups (this one, CI) the default "auto" must pick them.
    return os.geteuid() == 0 and os.path.isdir("/sys/fs/cgroup") and bool(os.listdir("/sys/fs/cgroup"))


async def test_a_memory_hog_in_a_limited_session_is_killed_and_reported(connect):
    async with connect() as client:
        read = await client.read_resource("stablehand://metrics")
        limits = json.loads(read.contents[0].text)["limits"]
        assert limits["mechanism"] in MECHANISMS
        if limits["mechanism"] not in ("cgroup-v2", "cgroup-v1"):
            assert not _cgroups_expected(), f"a root server on this machine should use cgroups: {limits}"
            pytest.skip(f"no cgroups here ({limits['detail']}); run as root to check the cgroup limits")
        created = await call_ok(client, "session_create", {"kind": "shell", "limits": {"memory_mib": 64}})
        sid = created["session_id"]
        try:
            r = await call_ok(
                client,
                "session_exec",
                {"session_id": sid, "input": "python3 -c \"x = 'x' * (400 << 20)\"", "timeout_ms": 30000},
            )
            assert r["exit_code"] == 137, r
            assert r["limit"] == "memory limit 64 MiB reached: 1 process killed", r
            again = await call_ok(client, "session_exec", {"session_id": sid, "input": "echo ok"})
            assert again["stdout"] == "ok\n"
            state = await call_ok(client, "session_state", {"session_id": sid})
            assert state["limits"]["memory_mib"] == 64
            assert state["limits"]["memory_kills"] == 1
            assert state["limits"]["mechanism"] == limits["mechanism"]
        finally:
            await end_quietly(client, sid)


async def test_limits_of_zero_or_above_the_maximum_are_tool_errors_naming_them(connect):
    async with connect() as client:
        message = await call_error(client, "session_create", {"kind": "shell", "limits": {"processes": 0}})
        assert "limits.processes must be at least 1" in message
        message = await call_error(client, "session_create", {"kind": "shell", "limits": {"memory_mib": 1 << 30}})
        assert "limits.memory_mib 1073741824 is above the maximum 65536" in message
