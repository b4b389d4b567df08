"""Fixtures for driving the real `stablehand` binary with the official MCP Python SDK.

The binary comes from the environment variable STABLEHAND_BIN (scripts/test.sh sets it).
Most tests are parametrized over transport (stdio, Streamable HTTP) and protocol mode
(the legacy initialize handshake, and the pinned 2026-07-28 era), so each runs four times.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from support import MODES, TRANSPORTS, open_client

# How long the HTTP server may take to print its address, and to exit after SIGTERM.
HTTP_START_TIMEOUT_S = 15.0
HTTP_STOP_TIMEOUT_S = 15.0

ADDRESS_RE = re.compile(r"serving MCP over Streamable HTTP at (http://\S+/mcp)")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def stablehand_bin() -> str:
    path = os.environ.get("STABLEHAND_BIN")
    if not path:
        pytest.fail(
            "STABLEHAND_BIN is not set: point it at the built server binary, e.g. "
            "STABLEHAND_BIN=$PWD/target/debug/stablehand (scripts/test.sh does this)",
            pytrace=False,
        )
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"STABLEHAND_BIN={path!r} is not an executable file; run cargo build first", pytrace=False)
    return path


def child_env(**extra: str) -> dict[str, str]:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    env.update(extra)
    return env


@dataclass
class HttpServer:
    """A `stablehand serve --http` child process and what it has logged."""

    proc: subprocess.Popen[str]
    url: str = ""
    lines: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=400))

    def log_tail(self) -> str:
        return "".join(self.lines)


def start_http_server(binary: str, args: list[str] | None = None, env: dict[str, str] | None = None) -> HttpServer:
    """Starts `binary serve` with `args` (default: in memory on a free loopback port) and `env`
    besides PATH and HOME, and waits for the address it reports."""
    proc = subprocess.Popen(
        [binary, "serve", *(args or ["--in-memory", "--http", "127.0.0.1:0"])],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        env=child_env(RUST_LOG="info", NO_COLOR="1", **(env or {})),
    )
    server = HttpServer(proc=proc)
    found = threading.Event()

    def drain() -> None:
        # Runs for the server's whole life so its stderr pipe never fills up.
        assert proc.stderr is not None
        for line in proc.stderr:
            server.lines.append(line)
            if not found.is_set():
                m = ADDRESS_RE.search(line)
                if m:
                    server.url = m.group(1)
                    found.set()
        found.set()  # EOF: wake the waiter, which then sees no URL

    threading.Thread(target=drain, name="stablehand-http-stderr", daemon=True).start()
    if not found.wait(HTTP_START_TIMEOUT_S) or not server.url:
        proc.kill()
        proc.wait(5)
        raise RuntimeError(
            f"the HTTP server did not report its address within {HTTP_START_TIMEOUT_S}s "
            f"(exit code {proc.returncode}); stderr:\n{server.log_tail()}"
        )
    return server


def stop_http_server(server: HttpServer) -> int:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
    try:
        return server.proc.wait(HTTP_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(5)
        raise AssertionError(
            f"the HTTP server did not exit within {HTTP_STOP_TIMEOUT_S}s of SIGTERM; stderr:\n{server.log_tail()}"
        ) from None


@pytest.fixture(scope="session")
def http_server(stablehand_bin: str):
    """One HTTP server for the whole run; it must exit 0 on SIGTERM at the end."""
    server = start_http_server(stablehand_bin)
    yield server
    code = stop_http_server(server)
    assert code == 0, f"the HTTP server exited with {code} after SIGTERM; stderr:\n{server.log_tail()}"


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


def stdio_params(binary: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=binary,
        args=["serve", "--in-memory"],
        env={"RUST_LOG": "warn", "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")},
    )


@pytest.fixture
def target(request: pytest.FixtureRequest, transport: str, stablehand_bin: str) -> StdioServerParameters | str:
    """What to hand to `Client`: stdio parameters (one server per client) or the HTTP URL."""
    if transport == "stdio":
        return stdio_params(stablehand_bin)
    # Looked up lazily so a run of stdio tests alone never starts the HTTP server.
    return request.getfixturevalue("http_server").url


Connect = Callable[..., contextlib.AbstractAsyncContextManager[Client]]


@pytest.fixture
def connect(target: StdioServerParameters | str, mode: str) -> Connect:
    """`async with connect() as client:` opens a client for this test's transport and mode."""

    def factory(**kwargs: Any) -> contextlib.AbstractAsyncContextManager[Client]:
        return open_client(target, mode, **kwargs)

    return factory
