"""Who owns a session, and whether its client finds it again, through the official Python SDK.

Without a token every request is the local principal, in every transport and protocol era:
a client that reconnects, or a server that restarts, finds its sessions. A token's name is
its own principal. `http.anonymous = "per-connection"` keeps each handshake-era protocol
session a principal of its own. A non-loopback bind without a token is refused.
"""

from __future__ import annotations

import contextlib
import os
import signal
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from conftest import HttpServer, child_env, start_http_server, stdio_params, stop_http_server
from support import TEST_DEADLINE_S, call_error, call_ok, end_quietly, new_shell

pytestmark = pytest.mark.anyio

TOKENS = {"alice": "alice-secret-0123456789", "bob": "bob-secret-9876543210"}


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def tokens_config(tmp_path: Path) -> Path:
    entries = ", ".join(f'{{ name = "{n}", token = "{t}" }}' for n, t in TOKENS.items())
    return write_config(tmp_path / "tokens.toml", f"[http]\ntokens = [{entries}]\n")


@pytest.fixture
def servers(stablehand_bin: str) -> Iterator[list[HttpServer]]:
    """Starts HTTP servers for one test (`servers.append(start(...))`) and stops the ones still
    running at its end."""
    started: list[HttpServer] = []
    yield started
    for server in started:
        if server.proc.poll() is None:
            stop_http_server(server)


@contextlib.asynccontextmanager
async def client(target: Any, mode: str, token: str | None = None) -> AsyncIterator[Client]:
    """A client for a stdio parameter set or an HTTP URL, with a bearer token if given."""
    if isinstance(target, str) and token is not None:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
        target = streamable_http_client(target, http_client=http)
    with anyio.fail_after(TEST_DEADLINE_S):
        async with Client(target, mode=mode, read_timeout_seconds=20) as c:
            yield c


@pytest.mark.parametrize(
    ("transport", "mode", "token"),
    [
        ("stdio", "legacy", None),
        ("stdio", "2026-07-28", None),
        ("http", "legacy", None),
        ("http", "2026-07-28", None),
        ("http", "legacy", "alice"),
        ("http", "2026-07-28", "alice"),
    ],
)
async def test_a_client_finds_its_sessions_after_reconnecting_and_after_a_restart(
    stablehand_bin: str, servers: list[HttpServer], tmp_path: Path, transport: str, mode: str, token: str | None
):
    data = tmp_path / "data"
    work = tmp_path / "work"
    work.mkdir()
    name = f"keep-{uuid.uuid4().hex[:8]}"
    secret = TOKENS[token] if token else None
    args = ["--data-dir", str(data)]
    if token:
        args += ["--config", str(tokens_config(tmp_path))]

    def start() -> Any:
        if transport == "stdio":
            params = stdio_params(stablehand_bin)
            params.args = ["serve", *args]
            return params
        servers.append(start_http_server(stablehand_bin, [*args, "--http", "127.0.0.1:0"]))
        return servers[-1].url

    target = start()
    async with client(target, mode, secret) as c:
        sid = await new_shell(c, name=name)
        r = await call_ok(c, "session_exec", {"session_id": sid, "input": f"cd {work} && echo moved"})
        assert r["stdout"] == "moved\n"

    if transport == "http":
        # The same server, a new connection (and a new protocol session in the handshake era).
        async with client(target, mode, secret) as c:
            listed = await call_ok(c, "session_list", {})
            assert sid in [s["session_id"] for s in listed["sessions"]], "reconnected: listed"
            again = await call_ok(c, "session_create", {"kind": "shell", "name": name})
            assert again["session_id"] == sid, "reconnected: found by name"
            r = await call_ok(c, "session_exec", {"session_id": sid, "input": "pwd"})
            assert r["stdout"] == f"{work}\n", "reconnected: the live shell kept its cwd"
        # A graceful stop (a kill within store.flush_interval_ms of the `cd` may lose the cwd
        # the batched record had not written yet; that is the store's business, not this test's).
        assert stop_http_server(servers[-1]) == 0

    target = start()  # stdio: the first server stopped when its client closed
    async with client(target, mode, secret) as c:
        listed = await call_ok(c, "session_list", {})
        rows = {s["session_id"]: s for s in listed["sessions"]}
        assert sid in rows, f"restarted: listed ({list(rows)})"
        assert rows[sid]["state"] == "Suspended"
        state = await call_ok(c, "session_state", {"session_id": sid})
        assert state["cwd"] == str(work)
        resumed = await call_ok(c, "session_resume", {"session_id": sid})
        assert resumed["state"] == "Ready"
        r = await call_ok(c, "session_exec", {"session_id": sid, "input": "pwd"})
        assert r["stdout"] == f"{work}\n", "restarted: resumed in its cwd"
        again = await call_ok(c, "session_create", {"kind": "shell", "name": name})
        assert again["session_id"] == sid, "restarted: found by name"
        await call_ok(c, "session_signal", {"session_id": sid, "signal": "CONT"})
        await call_ok(c, "session_end", {"session_id": sid, "grace_ms": 500})
        state = await call_ok(c, "session_state", {"session_id": sid})
        trail = [(a["action"], a["principal"], a["via"], a.get("signal")) for a in state["audit"]]
        who = token or "local"
        assert trail == [
            ("created", who, transport, None),
            ("suspended", "stablehand", "runtime", None),  # the first server's graceful stop
            ("resumed", who, transport, None),
            ("signalled", who, transport, "CONT"),
            ("ended", who, transport, None),
        ], trail
        assert all(a["at"].endswith("Z") for a in state["audit"]), state["audit"]
    if transport == "http":
        # Each entry is logged at info level too.
        lines = [line for line in servers[-1].log_tail().splitlines() if f"session={sid}" in line]
        assert any(
            "audit" in line and f"principal={who}" in line and "action=Ended" in line and 'via="http"' in line
            for line in lines
        ), lines


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_two_token_principals_never_see_each_others_sessions(
    stablehand_bin: str, servers: list[HttpServer], tmp_path: Path, mode: str
):
    servers.append(
        start_http_server(
            stablehand_bin, ["--in-memory", "--config", str(tokens_config(tmp_path)), "--http", "127.0.0.1:0"]
        )
    )
    url = servers[-1].url
    async with client(url, mode, TOKENS["alice"]) as alice, client(url, mode, TOKENS["bob"]) as bob:
        sid = await new_shell(alice, name="shared-name")
        for tool, args in [
            ("session_state", {"session_id": sid}),
            ("session_exec", {"session_id": sid, "input": "echo hi"}),
            ("session_end", {"session_id": sid}),
        ]:
            assert "not found" in await call_error(bob, tool, args)
        listed = await call_ok(bob, "session_list", {})
        assert sid not in [s["session_id"] for s in listed["sessions"]]
        # The same name is a different session for bob.
        bobs = await new_shell(bob, name="shared-name")
        assert bobs != sid
        r = await call_ok(alice, "session_exec", {"session_id": sid, "input": "echo mine"})
        assert r["stdout"] == "mine\n"


async def test_per_connection_isolates_handshake_era_clients_and_ends_their_sessions(
    stablehand_bin: str, servers: list[HttpServer], tmp_path: Path
):
    config = write_config(tmp_path / "per-connection.toml", '[http]\nanonymous = "per-connection"\n')
    servers.append(start_http_server(stablehand_bin, ["--in-memory", "--config", str(config), "--http", "127.0.0.1:0"]))
    url = servers[-1].url
    async with client(url, "legacy") as alice:
        async with client(url, "legacy") as bob:
            sid = await new_shell(alice)
            assert "not found" in await call_error(bob, "session_state", {"session_id": sid})
            listed = await call_ok(bob, "session_list", {})
            assert sid not in [s["session_id"] for s in listed["sessions"]]
            bob_resources = await bob.list_resources()
            assert not any(sid in r.uri for r in bob_resources.resources)
            r = await call_ok(alice, "session_exec", {"session_id": sid, "input": "echo mine"})
            assert r["stdout"] == "mine\n"
            created = await call_ok(alice, "session_create", {"kind": "process", "command": ["sleep", "60"]})
            pid = created["pid"]
    # Alice's client closed (DELETE): her protocol session's sessions end with it.
    with anyio.fail_after(10):
        while pid_alive(pid):
            await anyio.sleep(0.05)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(FileNotFoundError), open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    return False


def test_a_public_bind_without_a_token_is_refused(stablehand_bin: str, tmp_path: Path):
    done = subprocess.run(
        [stablehand_bin, "serve", "--data-dir", str(tmp_path / "data"), "--http", "0.0.0.0:0"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        env=child_env(RUST_LOG="info", NO_COLOR="1"),
    )
    assert done.returncode != 0
    assert "refusing to serve 0.0.0.0:0 without a token" in done.stderr, done.stderr
    assert "--allow-unauthenticated" in done.stderr and "tokens" in done.stderr
    assert not (tmp_path / "data").exists(), "refused before the store was opened"


async def test_a_public_bind_is_served_with_the_override_and_checks_the_host(
    stablehand_bin: str, servers: list[HttpServer], tmp_path: Path
):
    config = write_config(tmp_path / "hosts.toml", '[http]\nallowed_hosts = ["build-box.example.com"]\n')
    servers.append(
        start_http_server(
            stablehand_bin,
            ["--in-memory", "--config", str(config), "--http", "0.0.0.0:0", "--allow-unauthenticated"],
        )
    )
    server = servers[-1]
    assert "without a token (--allow-unauthenticated)" in server.log_tail()
    url = server.url.replace("0.0.0.0", "127.0.0.1")
    async with client(url, "legacy") as c:
        sid = await new_shell(c)
        r = await call_ok(c, "session_exec", {"session_id": sid, "input": "echo served"})
        assert r["stdout"] == "served\n"
        await end_quietly(c, sid)

    port = url.rsplit(":", 1)[1].split("/")[0]

    def initialize(host: str) -> int:
        body = (
            b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",'
            b'"capabilities":{},"clientInfo":{"name":"host-check","version":"1"}}}'
        )
        request = urllib.request.Request(
            url,
            data=body,
            headers={"Host": host, "Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as e:
            return e.code

    assert initialize(f"elsewhere.example.com:{port}") == 403
    assert initialize(f"build-box.example.com:{port}") == 200
    assert initialize(f"127.0.0.1:{port}") == 200


async def wait_for_log(server: HttpServer, text: str, seen: int) -> None:
    """Waits until `text` appears in the server's log more than `seen` times."""
    with anyio.fail_after(15):
        while server.log_tail().count(text) <= seen:
            await anyio.sleep(0.02)


async def test_sighup_revokes_a_token_without_dropping_sessions(
    stablehand_bin: str, servers: list[HttpServer], tmp_path: Path
):
    secret_file = tmp_path / "alice.token"
    secret_file.write_text(TOKENS["alice"] + "\n")
    alice_entry = f'{{ name = "alice", token_file = "{secret_file}" }}'
    bob_entry = '{ name = "bob", token_env = "BOB_TOKEN" }'
    config = write_config(tmp_path / "reload.toml", f"[http]\ntokens = [{alice_entry}, {bob_entry}]\n")
    servers.append(
        start_http_server(
            stablehand_bin,
            ["--in-memory", "--config", str(config), "--http", "127.0.0.1:0"],
            env={"BOB_TOKEN": TOKENS["bob"]},
        )
    )
    server = servers[-1]
    url = server.url
    reloaded = "HTTP access rules reloaded"

    async with client(url, "2026-07-28", TOKENS["alice"]) as alice:
        sid = await new_shell(alice)
        pid = (await call_ok(alice, "session_state", {"session_id": sid}))["pid"]
    async with client(url, "2026-07-28", TOKENS["bob"]) as bob:
        assert (await call_ok(bob, "session_list", {}))["sessions"] == []

    write_config(config, f"[http]\ntokens = [{bob_entry}]\n")
    server.proc.send_signal(signal.SIGHUP)
    await wait_for_log(server, reloaded, 0)
    with pytest.raises(Exception) as refused:
        async with client(url, "2026-07-28", TOKENS["alice"]) as alice:
            await alice.call_tool("session_list", {})
    # The SDK wraps the server's 401 (its JSON-RPC error) in its task groups' exception groups.
    assert "a valid bearer token is required" in repr(refused.value), repr(refused.value)
    assert pid_alive(pid), "revoking a token does not end its sessions"

    # A file that does not load changes nothing.
    config.write_text("[http]\ntokens = [\n")
    server.proc.send_signal(signal.SIGHUP)
    await wait_for_log(server, "reload refused", 0)
    async with client(url, "2026-07-28", TOKENS["bob"]) as bob:
        await call_ok(bob, "session_list", {})

    write_config(config, f"[http]\ntokens = [{alice_entry}, {bob_entry}]\n")
    server.proc.send_signal(signal.SIGHUP)
    await wait_for_log(server, reloaded, 1)
    async with client(url, "2026-07-28", TOKENS["alice"]) as alice:
        r = await call_ok(alice, "session_exec", {"session_id": sid, "input": "echo still-here"})
        assert r["stdout"] == "still-here\n"
        await end_quietly(alice, sid)


OS_USERS = ("stablehand-test-a", "stablehand-test-b")


def ensure_os_users() -> None:
    """Creates the two test users (system accounts, no home, no login shell) if missing."""
    for user in OS_USERS:
        if subprocess.run(["id", user], capture_output=True).returncode != 0:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
                check=True,
                capture_output=True,
            )


@pytest.mark.skipif(os.geteuid() != 0, reason="running sessions as other users needs root (CI runs as root)")
async def test_principals_mapped_to_unix_users_are_separated_by_the_os(
    stablehand_bin: str, servers: list[HttpServer], tmp_path: Path
):
    ensure_os_users()
    alice_user, bob_user = OS_USERS
    entries = ", ".join(f'{{ name = "{n}", token = "{t}" }}' for n, t in TOKENS.items())
    entries += ', { name = "carol", token = "carol-secret-5555555555" }'
    config = write_config(
        tmp_path / "users.toml",
        f'[http]\ntokens = [{entries}]\n[principals.alice]\nuser = "{alice_user}"\n'
        f'[principals.bob]\nuser = "{bob_user}"\n',
    )
    data = tmp_path / "data"
    # The users must reach their directories: pytest's tmp_path is under a 0700 directory.
    homes = Path(tempfile.mkdtemp(prefix="stablehand-principals-", dir="/tmp"))
    homes.chmod(0o711)
    config.write_text(config.read_text() + f'[runtime]\nprincipals_dir = "{homes}"\n')
    servers.append(
        start_http_server(stablehand_bin, ["--data-dir", str(data), "--config", str(config), "--http", "127.0.0.1:0"])
    )
    url = servers[-1].url
    try:
        await check_os_separation(url, homes)
    finally:
        stop_http_server(servers[-1])
        shutil.rmtree(homes, ignore_errors=True)


async def check_os_separation(url: str, homes: Path) -> None:
    alice_user, _ = OS_USERS
    async with client(url, "2026-07-28", TOKENS["alice"]) as alice, client(url, "2026-07-28", TOKENS["bob"]) as bob:
        a = await call_ok(alice, "session_create", {"kind": "shell"})
        b = await call_ok(bob, "session_create", {"kind": "shell"})
        bob_dir = homes / "bob"
        assert b["cwd"] == str(bob_dir), b

        async def run(c: Client, sid: str, cmd: str) -> dict[str, Any]:
            return await call_ok(c, "session_exec", {"session_id": sid, "input": cmd})

        me = await run(alice, a["session_id"], 'id -un; echo "$USER $LOGNAME"; pwd; stat -c %a .')
        assert me["stdout"] == f"{alice_user}\n{alice_user} {alice_user}\n{homes / 'alice'}\n700\n", me
        r = await run(bob, b["session_id"], "echo bob-secret > secret && chmod 600 secret && echo $$")
        bob_pid = int(r["stdout"])
        for cmd, needle in [
            (f"kill -0 {bob_pid}", "Operation not permitted"),
            (f"kill -9 {b['pid']}", "Operation not permitted"),
            (f"cat /proc/{bob_pid}/environ", "Permission denied"),
            (f"ls /proc/{bob_pid}/cwd/", "Permission denied"),
            (f"cat {bob_dir}/secret", "Permission denied"),
        ]:
            r = await run(alice, a["session_id"], cmd)
            assert r["exit_code"] != 0 and needle in r["stderr"], (cmd, r)
        r = await run(bob, b["session_id"], "cat secret")
        assert r["stdout"] == "bob-secret\n", "bob's session survived alice's attempts"

    # An unmapped principal is refused rather than run as root.
    async with client(url, "2026-07-28", "carol-secret-5555555555") as carol:
        message = await call_error(carol, "session_create", {"kind": "shell"})
        assert 'principal "carol" is not mapped to a Unix user' in message, message


def test_bad_principal_mappings_refuse_to_start(stablehand_bin: str, tmp_path: Path):
    cases = [
        ('[principals.alice]\nuser = "no-such-user-stablehand"\n', 'no user named "no-such-user-stablehand"'),
        ("[principals.alice]\nuid = 3999999999\n", "uid 3999999999 has no entry"),
        ('[principals.alice]\nuser = "root"\n', "allow_root"),
        ('[principals.alice]\nuser = "root"\nuid = 0\n', "exactly one of user and uid"),
        ('[principals."a b"]\nuser = "root"\n', "not a usable principal name"),
    ]
    if os.geteuid() == 0:
        ensure_os_users()
        # A directory the user cannot reach is named, with the setting that fixes it.
        blocked = tmp_path / "blocked"
        blocked.mkdir(mode=0o700)
        cases.append(
            (
                f'[principals.alice]\nuser = "{OS_USERS[0]}"\n[runtime]\nprincipals_dir = "{blocked / "p"}"\n',
                "set runtime.principals_dir",
            )
        )
    for text, needle in cases:
        config = write_config(tmp_path / "bad.toml", text)
        done = subprocess.run(
            [stablehand_bin, "serve", "--in-memory", "--config", str(config), "--http", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            env=child_env(RUST_LOG="info", NO_COLOR="1"),
        )
        assert done.returncode != 0 and needle in done.stderr, (text, done.stderr)
