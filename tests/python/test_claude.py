"""Agent sessions keep their conversation, with the real Claude Code CLI.

The CLI (`claude -p --input-format stream-json --output-format stream-json --verbose`, pinned
in tests/claude and installed by scripts/test.sh into .tools/claude) comes from
STABLEHAND_TEST_CLAUDE. It talks to a stand-in for the Messages API on loopback
(tests/fixtures/messages_api.py), which answers `turn <n>: <text>`, n being the number of user
messages it was sent: an agent that got its history back answers a higher turn than a fresh
one. Each test runs its own `stablehand serve --http` on a data dir of its own, so a session
can be evicted (at `runtime.max_sessions`, by creating one session too many), and the server
SIGKILLed and started again on the same store.

Without STABLEHAND_TEST_CLAUDE the module is skipped, unless STABLEHAND_REQUIRE_CLAUDE=1
(scripts/test.sh sets both), which makes that a failure.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from conftest import HttpServer, start_http_server, stop_http_server
from support import call_ok, end_quietly, open_client, result_text

pytestmark = pytest.mark.anyio

MESSAGES_API = Path(__file__).resolve().parent.parent / "fixtures" / "messages_api.py"
# Every test here is bounded by this (pytest.ini's 60 s timeout is the backstop).
DEADLINE_S = 55.0
# How long a state may take to come (an eviction, an agent's exit, a purge).
STATE_WAIT_S = 30.0
# The stand-in's usage per answer (messages_api.py).
TOKENS_IN, TOKENS_OUT = 7, 3


def config(**runtime: int) -> str:
    """The servers' configuration, with `runtime` settings added. Evictions are made at
    max_sessions (creating one session too many evicts the least recently used idle one), not
    by idle timeouts, which a loaded machine can trip between two calls of a test.
    sweep_interval_ms: retention is checked every 100 ms. durability "always": an answered
    call's changes (the agent's conversation id and counters included) are on disk before the
    answer, so a SIGKILL right after a turn loses nothing (batched, the default, may lose up to
    store.flush_interval_ms of changes, which is the store's business, not these tests')."""
    lines = "".join(f"{k} = {v}\n" for k, v in runtime.items())
    return f'[runtime]\nsweep_interval_ms = 100\n{lines}\n[store]\ndurability = "always"\n'


@pytest.fixture(scope="module")
def claude() -> str:
    path = os.environ.get("STABLEHAND_TEST_CLAUDE")
    if not path:
        reason = (
            "STABLEHAND_TEST_CLAUDE is not set: point it at the Claude Code CLI's native binary "
            "(scripts/test.sh installs the pinned one into .tools/claude and sets it)"
        )
        if os.environ.get("STABLEHAND_REQUIRE_CLAUDE") == "1":
            pytest.fail(f"{reason}; STABLEHAND_REQUIRE_CLAUDE=1 forbids skipping", pytrace=False)
        pytest.skip(reason)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"STABLEHAND_TEST_CLAUDE={path!r} is not an executable file", pytrace=False)
    return path


@pytest.fixture(scope="module")
def messages_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The stand-in Messages API for the whole module; yields its base URL."""
    log = tmp_path_factory.mktemp("messages_api") / "stderr.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, str(MESSAGES_API)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        first = proc.stdout.readline() if ready else ""
        if not first.startswith("port "):
            raise RuntimeError(
                f"messages_api.py printed {first!r} instead of 'port N' (exit code {proc.poll()}); "
                f"stderr:\n{log.read_text()}"
            )
        yield f"http://127.0.0.1:{int(first.split()[1])}"
    finally:
        proc.kill()
        proc.wait(5)


class Servers:
    """The test's `stablehand serve --http` processes, all on one data dir; the ones still
    running are stopped at the end of the test."""

    def __init__(self, binary: str, tmp_path: Path) -> None:
        self.binary = binary
        self.data = tmp_path / "data"
        self.config = tmp_path / "stablehand.toml"
        # The agents' HOME: nothing the CLI writes lands in the real one.
        self.home = tmp_path / "home"
        self.home.mkdir()
        self.started: list[HttpServer] = []

    def start(self, **runtime: int) -> HttpServer:
        self.config.write_text(config(**runtime))
        args = ["--data-dir", str(self.data), "--http", "127.0.0.1:0", "--config", str(self.config)]
        self.started.append(start_http_server(self.binary, args, env={"HOME": str(self.home)}))
        return self.started[-1]

    def kill(self, server: HttpServer) -> None:
        """SIGKILL: no session is ended or written on the way out."""
        server.proc.kill()
        server.proc.wait(10)

    def log(self) -> str:
        return "".join(f"--- server {s.proc.pid} ---\n{s.log_tail()}" for s in self.started)

    def conversation_files(self, session_id: str, agent_session_id: str) -> list[Path]:
        """Where Claude Code keeps the conversation: the session's own config dir."""
        return sorted((self.agent_dir(session_id)).glob(f"projects/*/{agent_session_id}.jsonl"))

    def agent_dir(self, session_id: str) -> Path:
        """A session's own config dir: named by the uuid of its handle (`<node>.<uuid>`)."""
        return self.data / "agents" / session_id.rsplit(".", 1)[-1]


@pytest.fixture
def servers(stablehand_bin: str, tmp_path: Path) -> Iterator[Servers]:
    s = Servers(stablehand_bin, tmp_path)
    yield s
    for server in s.started:
        if server.proc.poll() is None:
            stop_http_server(server)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """The agents' working directory."""
    path = tmp_path / "work"
    path.mkdir()
    return path


def agent_args(claude: str, api: str, work: Path, **extra: Any) -> dict[str, Any]:
    """session_create arguments for a Claude Code session talking to the stand-in."""
    return {
        "kind": "agent",
        "command": [claude, "-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"],
        "cwd": str(work),
        "env": {
            "ANTHROPIC_BASE_URL": api,
            "ANTHROPIC_API_KEY": "sk-test",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
        },
        **extra,
    }


def client(server: HttpServer) -> Any:
    return open_client(server.url, "2026-07-28", deadline=DEADLINE_S, read_timeout_seconds=40)


async def turn(c: Client, sid: str, text: str) -> dict[str, Any]:
    """One turn that must succeed; returns the exec result."""
    r = await call_ok(c, "session_exec", {"session_id": sid, "input": text, "timeout_ms": 30000})
    assert not r.get("error"), f"turn {text!r} failed: {r.get('error')}; messages: {r.get('messages')}"
    assert not r.get("timed_out"), f"turn {text!r} timed out: {r}"
    assert isinstance(r.get("result"), dict), f"turn {text!r} has no result line: {r}"
    return r


def answer(r: dict[str, Any]) -> str:
    return r["result"].get("result")


def brief(r: dict[str, Any]) -> dict[str, Any]:
    """The telling fields of a turn's result line, for assertion messages."""
    return {k: r["result"].get(k) for k in ("subtype", "is_error", "result", "errors", "session_id")}


def counters(state: dict[str, Any]) -> tuple[int, int, int]:
    m = state["metrics"]
    return (m["messages"], m["input_tokens"], m["output_tokens"])


async def wait_state(c: Client, sid: str, want: str) -> dict[str, Any]:
    """Polls session_state until the session is in state `want` (at most STATE_WAIT_S)."""
    state: dict[str, Any] = {}
    with anyio.move_on_after(STATE_WAIT_S):
        while True:
            state = await call_ok(c, "session_state", {"session_id": sid})
            if state["state"] == want:
                return state
            await anyio.sleep(0.1)
    raise AssertionError(f"session {sid} not {want} within {STATE_WAIT_S}s: {state.get('state_detail')} ({state})")


async def evict(c: Client, sid: str) -> tuple[dict[str, Any], str]:
    """At max_sessions, with `sid` the least recently used idle session: creates a shell, which
    evicts `sid`. Returns the evicted session's state and the shell's id."""
    shell = (await call_ok(c, "session_create", {"kind": "shell"}))["session_id"]
    return await wait_state(c, sid, "Suspended"), shell


def check_first_turn(r: dict[str, Any], text: str) -> str:
    """Checks a first turn's result and returns the agent's conversation id (from its init line)."""
    assert answer(r) == f"turn 1: {text}", brief(r)
    messages = r["messages"]
    inits = [m for m in messages if m.get("type") == "system" and m.get("subtype") == "init"]
    assert inits, f"no system/init line among the turn's messages: {messages}"
    assert messages[-1] == r["result"]
    assert (r["usage"]["input_tokens"], r["usage"]["output_tokens"]) == (TOKENS_IN, TOKENS_OUT), r["usage"]
    agent_session_id = inits[0]["session_id"]
    assert agent_session_id and r["result"]["session_id"] == agent_session_id
    return agent_session_id


def check_conversation_sentence(state: dict[str, Any]) -> str:
    sentence = state.get("agent_conversation")
    assert isinstance(sentence, str) and sentence.strip(), f"no agent_conversation sentence: {state}"
    return sentence


async def test_an_evicted_claude_session_resumes_its_conversation(claude, messages_api, servers, work):
    server = servers.start(max_sessions=1)
    async with client(server) as c:
        sid = (await call_ok(c, "session_create", agent_args(claude, messages_api, work)))["session_id"]
        shell = None
        try:
            r = await turn(c, sid, "alpha")
            agent_sid = check_first_turn(r, "alpha")
            before = await call_ok(c, "session_state", {"session_id": sid})
            assert before.get("agent_session_id") == agent_sid, before
            first_launch = check_conversation_sentence(before)
            assert counters(before)[1:] == (TOKENS_IN, TOKENS_OUT), before["metrics"]
            assert counters(before)[0] >= len(r["messages"]), (before["metrics"], r["messages"])
            files = servers.conversation_files(sid, agent_sid)
            assert files, f"no {agent_sid}.jsonl under {servers.data / 'agents' / sid}/projects"

            evicted, shell = await evict(c, sid)
            assert evicted.get("agent_session_id") == agent_sid, evicted
            assert counters(evicted) == counters(before), "eviction lost the agent's counters"

            resumed = await call_ok(c, "session_resume", {"session_id": sid})
            assert resumed["state"] == "Ready", resumed
            assert resumed.get("agent_session_id") == agent_sid, resumed
            assert counters(resumed) == counters(before), "the resume lost the agent's counters"
            resumed_launch = check_conversation_sentence(resumed)
            assert resumed_launch != first_launch, (first_launch, resumed_launch)

            r = await turn(c, sid, "beta")
            assert answer(r) == "turn 2: beta", f"the history did not come back: {brief(r)}"
            after = await call_ok(c, "session_state", {"session_id": sid})
            assert after.get("agent_session_id") == agent_sid, "a plain resume must continue the same conversation"
            messages, tokens_in, tokens_out = counters(after)
            assert (tokens_in, tokens_out) == (2 * TOKENS_IN, 2 * TOKENS_OUT), after["metrics"]
            assert messages >= counters(before)[0] + len(r["messages"]), after["metrics"]
        finally:
            await end_quietly(c, sid)
            if shell:
                await end_quietly(c, shell)
    assert stop_http_server(server) == 0, servers.log()


async def test_a_claude_session_resumes_its_conversation_after_a_server_sigkill(claude, messages_api, servers, work):
    server = servers.start()
    async with client(server) as c:
        sid = (await call_ok(c, "session_create", agent_args(claude, messages_api, work)))["session_id"]
        r = await turn(c, sid, "alpha")
        agent_sid = check_first_turn(r, "alpha")
        before = await call_ok(c, "session_state", {"session_id": sid})
        assert before.get("agent_session_id") == agent_sid, before
    servers.kill(server)

    server = servers.start()
    async with client(server) as c:
        try:
            restored = await call_ok(c, "session_state", {"session_id": sid})
            assert restored["state"] == "Suspended", restored
            assert restored.get("agent_session_id") == agent_sid, restored
            assert counters(restored) == counters(before), (
                f"the restart lost the agent's counters: {before['metrics']} -> {restored['metrics']}"
            )
            resumed = await call_ok(c, "session_resume", {"session_id": sid})
            assert resumed["state"] == "Ready", resumed
            assert resumed["cwd"] == str(work), resumed
            check_conversation_sentence(resumed)
            r = await turn(c, sid, "beta")
            assert answer(r) == "turn 2: beta", f"the history did not come back after the restart: {brief(r)}"
            after = await call_ok(c, "session_state", {"session_id": sid})
            assert after.get("agent_session_id") == agent_sid, after
            assert counters(after)[1:] == (2 * TOKENS_IN, 2 * TOKENS_OUT), after["metrics"]
        finally:
            await end_quietly(c, sid)
    assert stop_http_server(server) == 0, servers.log()


async def test_a_claude_session_forks_another_ones_conversation(claude, messages_api, servers, work):
    server = servers.start(max_sessions=2)
    async with client(server) as c:
        parent = (await call_ok(c, "session_create", agent_args(claude, messages_api, work)))["session_id"]
        child = shell = None
        try:
            parent_sid = check_first_turn(await turn(c, parent, "alpha"), "alpha")

            # command, env and cwd come from the parent.
            created = await call_ok(c, "session_create", {"kind": "agent", "agent": {"fork_from": parent}})
            child = created["session_id"]
            assert child != parent
            r = await turn(c, child, "gamma")
            assert answer(r) == "turn 2: gamma", f"the fork did not get the parent's history: {brief(r)}"
            forked = await call_ok(c, "session_state", {"session_id": child})
            child_sid = forked.get("agent_session_id")
            assert child_sid and child_sid != parent_sid, f"the fork continues the parent's conversation itself: {forked}"
            assert r["result"]["session_id"] == child_sid
            assert forked["cwd"] == str(work), forked
            check_conversation_sentence(forked)

            # The parent goes on from its own history, without the child's turn.
            r = await turn(c, parent, "epsilon")
            assert answer(r) == "turn 2: epsilon", f"the parent saw the fork's turn: {brief(r)}"
            state = await call_ok(c, "session_state", {"session_id": parent})
            assert state.get("agent_session_id") == parent_sid, state

            # The child (now the least recently used), evicted and resumed, goes on from its own.
            _, shell = await evict(c, child)
            resumed = await call_ok(c, "session_resume", {"session_id": child})
            assert resumed["state"] == "Ready", resumed
            assert resumed.get("agent_session_id") == child_sid, resumed
            r = await turn(c, child, "zeta")
            assert answer(r) == "turn 3: zeta", f"the resumed fork lost its history: {brief(r)}"
        finally:
            for s in (child, shell):
                if s:
                    await end_quietly(c, s)
            await end_quietly(c, parent)
    assert stop_http_server(server) == 0, servers.log()


async def test_a_resume_whose_conversation_was_deleted_fails_clearly_then_starts_fresh(
    claude, messages_api, servers, work
):
    server = servers.start(max_sessions=1)
    async with client(server) as c:
        sid = (await call_ok(c, "session_create", agent_args(claude, messages_api, work)))["session_id"]
        shell = None
        try:
            agent_sid = check_first_turn(await turn(c, sid, "alpha"), "alpha")
            _, shell = await evict(c, sid)
            files = servers.conversation_files(sid, agent_sid)
            assert files, f"no {agent_sid}.jsonl under {servers.data / 'agents' / sid}/projects"
            for f in files:
                f.unlink()

            resumed = await call_ok(c, "session_resume", {"session_id": sid})
            failed_launch = check_conversation_sentence(resumed)
            # The CLI exits at once ("No conversation found with session ID: ..."): the resume
            # answers Ready, or already Suspended again with the setting named.
            assert resumed["state"] in ("Ready", "Suspended"), resumed
            if resumed["state"] == "Suspended":
                assert "agents.claude.resume_args" in resumed["state_detail"], resumed

            exec_result = await c.call_tool("session_exec", {"session_id": sid, "input": "lost", "timeout_ms": 30000})
            structured = exec_result.structured_content or {}
            error_kind = (structured.get("error") or {}).get("kind")
            result_line = structured.get("result") or {}
            assert not str(result_line.get("result", "")).startswith("turn "), (
                f"the agent answered as if nothing was lost: {result_line.get('result')!r}"
            )
            suspended = await wait_state(c, sid, "Suspended")
            detail = suspended["state_detail"]
            exec_said = (
                f"tool error: {result_text(exec_result)}"
                if exec_result.is_error
                else {"error": structured.get("error"), "result": result_line}
            )
            assert error_kind == "AgentResumeFailed" or "agents.claude.resume_args" in detail, (
                f"neither the exec ({exec_said}) nor the state ({detail!r}) says the resume failed"
            )
            # The record is kept (the conversation id too), and nothing restarted the agent.
            assert suspended.get("agent_session_id") == agent_sid, suspended
            actions = [a["action"] for a in suspended["audit"]]
            assert actions.count("resumed") == 1, actions

            fresh = await call_ok(c, "session_resume", {"session_id": sid, "fresh": True})
            assert fresh["state"] == "Ready", fresh
            fresh_launch = check_conversation_sentence(fresh)
            assert fresh_launch != failed_launch, (failed_launch, fresh_launch)
            r = await turn(c, sid, "delta")
            assert answer(r) == "turn 1: delta", f"a fresh start should not see any history: {brief(r)}"
            after = await call_ok(c, "session_state", {"session_id": sid})
            new_sid = after.get("agent_session_id")
            assert new_sid and new_sid != agent_sid, after
            assert servers.conversation_files(sid, new_sid), "the fresh conversation is not in the session's config dir"
        finally:
            await end_quietly(c, sid)
            if shell:
                await end_quietly(c, shell)
    assert stop_http_server(server) == 0, servers.log()


async def test_a_purged_claude_session_takes_its_config_dir_along(claude, messages_api, servers, work):
    # Ended records are kept runtime.retention_ms, then purged with the agent's config dir.
    server = servers.start(retention_ms=1000)
    async with client(server) as c:
        sid = (await call_ok(c, "session_create", agent_args(claude, messages_api, work)))["session_id"]
        agent_sid = check_first_turn(await turn(c, sid, "alpha"), "alpha")
        config_dir = servers.agent_dir(sid)
        assert servers.conversation_files(sid, agent_sid), f"no {agent_sid}.jsonl under {config_dir}/projects"
        await call_ok(c, "session_end", {"session_id": sid, "grace_ms": 500})
        with anyio.move_on_after(STATE_WAIT_S):
            while not (await c.call_tool("session_state", {"session_id": sid})).is_error or config_dir.exists():
                await anyio.sleep(0.1)
        gone = await c.call_tool("session_state", {"session_id": sid})
        assert gone.is_error, f"session {sid} not purged within {STATE_WAIT_S}s: {gone.structured_content}"
        assert not config_dir.exists(), f"{config_dir} outlived its purged session: {list(config_dir.rglob('*'))}"
    assert stop_http_server(server) == 0, servers.log()
