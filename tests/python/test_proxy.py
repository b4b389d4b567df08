"""Several nodes behind a proxy: deploy/nginx.conf and deploy/haproxy.cfg, on loopback.

Two `stablehand serve --http` nodes, `n1` on 127.0.0.2 and `n2` on 127.0.0.3, each on a data
dir of its own, and in front of them nginx (then HAProxy) on 127.0.0.1, run from the files in
deploy/ with a node list written here. The routing files are used as they are, but for the
listening address and the access log's path (`render_nginx`, `render_haproxy`). Clients use the
official MCP Python SDK in both protocol eras; a few requests are written by hand where the
test is about a header.

What is checked: creates spread over both nodes; 64 clients exec through the proxy without an
error; a handle sent straight to the wrong node gets an error naming its owner; a
Mcp-Param-Session-Id header that disagrees with the body is refused (400, -32020); killing node
2 fails its sessions at once while node 1's keep working, and node 2 restarted on its data dir
has them back Suspended and resumable through the proxy; a draining node (SIGUSR1) takes no
new session while its own keep working, and is ready again after SIGUSR2. The Kubernetes
manifests are parsed and checked against each other, and the proxy's ConfigMap runs against
two pods found through a stand-in for the cluster DNS.

nginx and HAProxy come from Debian packages (scripts/test.sh installs them). Without nginx the
proxy tests are skipped (without HAProxy, its half), unless STABLEHAND_REQUIRE_PROXY=1
(scripts/test.sh sets it), which makes that a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from mcp import Client
from mcp.shared.exceptions import MCPError

from conftest import HttpServer, start_http_server, stop_http_server
from support import call_ok, open_client, result_text

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parent.parent.parent
DEPLOY = REPO / "deploy"
NODE_HOSTS = {"n1": "127.0.0.2", "n2": "127.0.0.3"}
MODERN = "2026-07-28"
# Bound of one test's conversations (pytest.ini's 60 s backstop is raised to match below).
DEADLINE_S = 100.0
# How long a state may take to come (a proxy noticing a node, a drain taking effect).
STATE_WAIT_S = 15.0
PROXY_START_S = 15.0
# A routed request's node: the text before the first '.' of a handle.
PREFIX_RE = re.compile(r"^([a-z0-9-]+)\.")


def prefix(handle: str) -> str:
    m = PREFIX_RE.match(handle)
    assert m, f"handle {handle!r} has no node prefix"
    return m.group(1)


# ---- binaries ------------------------------------------------------------------------------


def find_program(name: str) -> str:
    """The program's path (Debian puts nginx and HAProxy in /usr/sbin, often not on a user's
    PATH); skips, or fails under STABLEHAND_REQUIRE_PROXY=1, when it is missing."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if path:
        return path
    reason = f"{name} is not installed (scripts/test.sh installs it from Debian packages: apt-get install {name})"
    if os.environ.get("STABLEHAND_REQUIRE_PROXY") == "1":
        pytest.fail(f"{reason}; STABLEHAND_REQUIRE_PROXY=1 forbids skipping", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def nginx_bin() -> str:
    return find_program("nginx")


@pytest.fixture(scope="session")
def haproxy_bin() -> str:
    return find_program("haproxy")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# ---- raw HTTP --------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def rpc(self) -> dict[str, Any]:
        """The JSON-RPC message of the body (JSON, or the first `data:` event of an SSE body)."""
        text = self.body.decode("utf-8", "replace")
        if self.headers.get("content-type", "").startswith("text/event-stream"):
            for line in text.splitlines():
                if line.startswith("data:") and line[5:].strip():
                    return json.loads(line[5:])
            raise AssertionError(f"SSE body without data: {text!r}")
        try:
            return json.loads(text)
        except ValueError:
            raise AssertionError(f"HTTP {self.status} body is not JSON: {text!r}") from None


def request(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
    """One HTTP request (blocking; run it with anyio.to_thread.run_sync from async code)."""
    data = None if body is None else json.dumps(body).encode()
    all_headers = {"Accept": "application/json, text/event-stream"}
    if data is not None:
        all_headers["Content-Type"] = "application/json"
    all_headers.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return Reply(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())


async def arequest(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
    return await anyio.to_thread.run_sync(lambda: request(method, url, body, headers))


def modern_call(name: str, arguments: dict[str, Any], param_session_id: str | None) -> tuple[dict, dict[str, str]]:
    """A 2026-07-28 tools/call written by hand: the body (with the `_meta` envelope that
    revision requires) and its headers, with Mcp-Param-Session-Id as given (None: left out)."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": name,
            "arguments": arguments,
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    }
    headers = {"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": name}
    if param_session_id is not None:
        headers["Mcp-Param-Session-Id"] = param_session_id
    return body, headers


def legacy_initialize() -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "proxy-test", "version": "1"}},
    }


# ---- the nodes -------------------------------------------------------------------------------


@dataclass
class Node:
    name: str
    host: str
    data: Path
    config: Path
    port: int = 0
    server: HttpServer | None = None
    past: list[HttpServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/mcp"

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log(self) -> str:
        runs = [*self.past, *([self.server] if self.server else [])]
        return "".join(f"--- node {self.name} (pid {s.proc.pid}) ---\n{s.log_tail()}" for s in runs)


class Nodes:
    """n1 and n2, each on its own loopback address and data dir."""

    def __init__(self, binary: str, tmp: Path) -> None:
        self.binary = binary
        self.by_name: dict[str, Node] = {}
        for name, host in NODE_HOSTS.items():
            data = tmp / name / "data"
            data.parent.mkdir(parents=True)
            config = tmp / name / "stablehand.toml"
            # A node checks Host: its own address is not a loopback *name*. durability
            # "always": a session acknowledged before a SIGKILL is on disk.
            config.write_text(f'[http]\nallowed_hosts = ["{host}"]\n\n[store]\ndurability = "always"\n')
            self.by_name[name] = Node(name, host, data, config)

    def __getitem__(self, name: str) -> Node:
        return self.by_name[name]

    def start(self, name: str) -> Node:
        """Starts the node on its address (the port it had, else a free one) and data dir."""
        node = self.by_name[name]
        args = ["--http", f"{node.host}:{node.port}", "--node-id", name, "--data-dir", str(node.data)]
        node.server = start_http_server(self.binary, [*args, "--config", str(node.config)])
        port = int(node.server.url.rsplit(":", 1)[1].split("/")[0])
        assert node.port in (0, port), f"node {name} came back on port {port}, not {node.port}"
        node.port = port
        return node

    def kill(self, name: str) -> None:
        """SIGKILL: nothing is ended or written on the way out."""
        node = self.by_name[name]
        assert node.server is not None
        node.server.proc.kill()
        node.server.proc.wait(10)
        node.past.append(node.server)
        node.server = None

    def signal(self, name: str, sig: signal.Signals) -> None:
        node = self.by_name[name]
        assert node.server is not None and node.server.proc.poll() is None, f"node {name} is not running"
        node.server.proc.send_signal(sig)

    def log(self) -> str:
        return "".join(n.log() for n in self.by_name.values())

    def stop(self) -> None:
        for node in self.by_name.values():
            if node.server is not None and node.server.proc.poll() is None:
                stop_http_server(node.server)


@pytest.fixture(scope="module")
def nodes(stablehand_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    n = Nodes(stablehand_bin, tmp_path_factory.mktemp("nodes"))
    try:
        for name in NODE_HOSTS:
            n.start(name)
        yield n
    finally:
        n.stop()


# ---- the proxies -----------------------------------------------------------------------------


def substitute(text: str, pattern: str, replacement: str) -> str:
    """Replaces the one line matching `pattern` (the config must still have it)."""
    out, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    assert count == 1, f"expected one line matching {pattern!r} in the config, found {count}"
    return out


def render_nginx(directory: Path, port: int, nodes: Nodes) -> Path:
    """deploy/nginx.conf listening on 127.0.0.1:port, logging into `directory`, with a node
    list for n1 and n2 in the form deploy/nginx-nodes.example.conf shows."""
    conf = (DEPLOY / "nginx.conf").read_text()
    conf = substitute(conf, r"^(\s*)listen 8080;$", rf"\g<1>listen 127.0.0.1:{port};")
    conf = substitute(conf, r"^(\s*)access_log /var/log/nginx/access\.log ", rf"\g<1>access_log {directory}/access.log ")
    (directory / "nginx.conf").write_text(conf)
    n1, n2 = nodes["n1"], nodes["n2"]
    node_list = "\n".join(f"    {n.name} stablehand_{n.name};" for n in (n1, n2))
    pool = "\n".join(f"    server {n.host}:{n.port} max_fails=1 fail_timeout=5s;" for n in (n1, n2))
    per_node = "".join(f"upstream stablehand_{n.name} {{\n    server {n.host}:{n.port};\n    keepalive 16;\n}}\n" for n in (n1, n2))
    # Temporary files in `directory` (Debian's are under /var/lib/nginx, root's).
    temp = "".join(f"{d}_temp_path {directory}/{d};\n" for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (directory / "stablehand-nodes.conf").write_text(
        f"map $sh_node $sh_node_upstream {{\n{node_list}\n    default \"\";\n}}\n"
        "map $sh_node $sh_pool_upstream {\n    default stablehand_pool;\n}\n"
        f"upstream stablehand_pool {{\n    least_conn;\n{pool}\n    keepalive 32;\n}}\n"
        f"{per_node}{temp}"
    )
    return directory / "nginx.conf"


def render_haproxy(directory: Path, port: int, nodes: Nodes) -> list[Path]:
    """deploy/haproxy.cfg listening on 127.0.0.1:port, with a node file in the form
    deploy/haproxy-nodes.example.cfg shows."""
    cfg = (DEPLOY / "haproxy.cfg").read_text()
    cfg = substitute(cfg, r"^(\s*)bind :8080$", rf"\g<1>bind 127.0.0.1:{port}")
    (directory / "haproxy.cfg").write_text(cfg)
    n1, n2 = nodes["n1"], nodes["n2"]
    text = "backend stablehand_pool from stablehand_pool_defaults\n"
    text += "".join(f"    server {n.name} {n.host}:{n.port}\n" for n in (n1, n2))
    for n in (n1, n2):
        text += f"\nbackend stablehand_node_{n.name} from stablehand_node_defaults\n    server {n.name} {n.host}:{n.port}\n"
    (directory / "stablehand-nodes.cfg").write_text(text)
    return [directory / "haproxy.cfg", directory / "stablehand-nodes.cfg"]


@dataclass
class Proxy:
    kind: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def log(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"--- {self.kind} ---\n{text[-6000:]}"


def start_proxy(kind: str, binary: str, directory: Path, nodes: Nodes) -> Proxy:
    port = free_port()
    log_path = directory / "proxy.log"
    if kind == "nginx":
        conf = render_nginx(directory, port, nodes)
        globals_ = f"daemon off; pid {directory}/nginx.pid;"
        if os.geteuid() == 0:
            # Workers would run as nobody, which cannot enter pytest's 0700 tmp dirs.
            globals_ += " user root;"
        argv = [binary, "-c", str(conf), "-p", str(directory), "-e", "stderr", "-g", globals_]
        check = [binary, "-t", "-q", "-c", str(conf), "-p", str(directory), "-e", "stderr", "-g", globals_]
    else:
        files = render_haproxy(directory, port, nodes)
        argv = [binary, "-db", *(a for f in files for a in ("-f", str(f)))]
        check = [binary, "-c", "-q", *(a for f in files for a in ("-f", str(f)))]
    checked = subprocess.run(check, capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, f"{kind} refuses the rendered config:\n{checked.stdout}{checked.stderr}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    proxy = Proxy(kind, port, proc, log_path)
    deadline = time.monotonic() + PROXY_START_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} exited with {proc.returncode} at start:\n{proxy.log()}")
        with contextlib.suppress(OSError):
            if request("GET", f"http://127.0.0.1:{port}/healthz").status == 200:
                return proxy
        if time.monotonic() > deadline:
            stop_proxy(proxy)
            raise RuntimeError(f"{kind} did not answer /healthz within {PROXY_START_S}s:\n{proxy.log()}")
        time.sleep(0.05)


def stop_proxy(proxy: Proxy) -> None:
    if proxy.proc.poll() is None:
        proxy.proc.terminate()
        try:
            proxy.proc.wait(10)
        except subprocess.TimeoutExpired:
            proxy.proc.kill()
            proxy.proc.wait(5)


@pytest.fixture(scope="module", params=["nginx", "haproxy"])
def proxy(request: pytest.FixtureRequest, nodes: Nodes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    binary = request.getfixturevalue(f"{request.param}_bin")
    p = start_proxy(request.param, binary, tmp_path_factory.mktemp(request.param), nodes)
    try:
        for name in NODE_HOSTS:
            wait_routable(p, name)
        yield p
    finally:
        stop_proxy(p)


def reached_node(reply: Reply) -> bool:
    """True unless the proxy answered for a node it could not reach."""
    return b"is unavailable" not in reply.body and "x-stablehand-proxy" not in reply.headers


def wait_routable(proxy: Proxy, name: str) -> None:
    """Waits until a request routed to node `name` through the proxy reaches it (HAProxy marks
    a node up after its first health check)."""
    deadline = time.monotonic() + STATE_WAIT_S
    while True:
        probe = f"{name}.{uuid.uuid4()}"
        body, headers = modern_call("session_state", {"session_id": probe}, probe)
        reply = request("POST", proxy.url, body, headers)
        if reached_node(reply):
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"node {name} is not reachable through {proxy.kind} after {STATE_WAIT_S}s: HTTP {reply.status} "
                f"{reply.body!r}\n{proxy.log()}"
            )
        time.sleep(0.05)


async def await_routable(proxy: Proxy, name: str) -> None:
    await anyio.to_thread.run_sync(lambda: wait_routable(proxy, name))


def logs(nodes: Nodes, proxy: Proxy | None = None) -> str:
    return nodes.log() + (proxy.log() if proxy else "")


# ---- clients ---------------------------------------------------------------------------------


def client(url: str, mode: str) -> contextlib.AbstractAsyncContextManager[Client]:
    return open_client(url, mode, deadline=DEADLINE_S, read_timeout_seconds=30)


async def prepared(c: Client, mode: str) -> Client:
    """A 2026-07-28 client lists the tools first, so it mirrors session_id in
    Mcp-Param-Session-Id (which the proxy routes on) from its first call."""
    if mode == MODERN:
        await c.list_tools()
    return c


async def create_shell(c: Client) -> str:
    return (await call_ok(c, "session_create", {"kind": "shell"}))["session_id"]


async def echo(c: Client, sid: str, text: str) -> None:
    r = await call_ok(c, "session_exec", {"session_id": sid, "input": f"echo {text}"})
    assert r["stdout"] == f"{text}\n", r


async def end(c: Client, sid: str) -> None:
    with contextlib.suppress(Exception):
        await c.call_tool("session_end", {"session_id": sid, "grace_ms": 500})


async def session_on(stack: contextlib.AsyncExitStack, url: str, mode: str, node: str) -> tuple[Client, str]:
    """A client through the proxy and a new shell on `node`. A handshake-era client is held by
    the node its initialize reached (its Mcp-Session-Id names it), so clients are opened until
    one is there, the others held open meanwhile (the pool prefers the least busy node); a
    2026-07-28 client reaches every node, and creates until one lands there. Bounded in count
    and time (HAProxy takes a node into its pool after a health check)."""
    # (A time bound by hand: the clients' own cancel scopes outlive this function.)
    deadline = time.monotonic() + STATE_WAIT_S
    c: Client | None = None
    seen: list[str] = []
    while len(seen) < 30 and time.monotonic() < deadline:
        if c is None or mode != MODERN:
            c = await prepared(await stack.enter_async_context(client(url, mode)), mode)
        sid = await create_shell(c)
        if prefix(sid) == node:
            return c, sid
        seen.append(sid)
        await end(c, sid)
        await anyio.sleep(0.05)
    raise AssertionError(f"no session landed on {node} through the proxy: {seen}")


# ---- tests: the pool and routing -------------------------------------------------------------


async def test_creates_land_on_both_nodes(nodes: Nodes, proxy: Proxy, mode: str):
    created: list[tuple[Client, str]] = []
    async with contextlib.AsyncExitStack() as stack:
        # Clients held open together: a handshake-era client's creates go to the node of its
        # initialize, and an open one counts for its node in the pool.
        for _ in range(4):
            c = await prepared(await stack.enter_async_context(client(proxy.url, mode)), mode)
            for _ in range(2):
                created.append((c, await create_shell(c)))
        for c, sid in created:
            # Every handle is reachable through the proxy by the client that created it.
            state = await call_ok(c, "session_state", {"session_id": sid})
            assert state["state"] in ("Ready", "Busy"), state
        for c, sid in created:
            await end(c, sid)
    sids = [sid for _, sid in created]
    assert {prefix(sid) for sid in sids} == {"n1", "n2"}, f"creates through {proxy.kind} did not reach both nodes: {sids}"


@pytest.mark.timeout(150)
async def test_64_clients_exec_through_the_proxy(nodes: Nodes, proxy: Proxy, mode: str):
    clients, execs = 64, 3
    errors: list[str] = []
    owners: list[str] = []

    async def one(i: int) -> None:
        try:
            async with client(proxy.url, mode) as c:
                await prepared(c, mode)
                sid = await create_shell(c)
                owners.append(prefix(sid))
                for j in range(execs):
                    await echo(c, sid, f"c{i}-{j}")
                await call_ok(c, "session_end", {"session_id": sid, "grace_ms": 500})
        except Exception as e:  # noqa: BLE001 - every failure is counted and shown
            errors.append(f"client {i}: {type(e).__name__}: {e}")

    with anyio.fail_after(DEADLINE_S + 30):
        async with anyio.create_task_group() as tg:
            for i in range(clients):
                tg.start_soon(one, i)
    assert not errors, f"{len(errors)} of {clients} clients failed through {proxy.kind}:\n" + "\n".join(errors[:10]) + logs(nodes, proxy)
    assert len(owners) == clients
    assert set(owners) == {"n1", "n2"}, f"all {clients} creates went to one node: {sorted(set(owners))}"


@pytest.mark.parametrize("protocol", ["2026-07-28", "handshake"])
def test_stablehand_load_through_the_proxy_reaches_every_owner(
    stablehand_bin: str, nodes: Nodes, proxy: Proxy, protocol: str
):
    """`stablehand load` through the proxy: its creates spread over both nodes and every exec
    reaches the node that holds its session (no error)."""
    run = subprocess.run(
        [stablehand_bin, "load", "--url", proxy.url, "--scenario", "exec", "--command", "echo x",
         "--protocol", protocol, "--clients", "16", "--count", "320", "--warmup", "0s", "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr + logs(nodes, proxy)
    report = json.loads(run.stdout)
    assert report["ok"] == 320 and not report["errors"], json.dumps(report["error_examples"]) + logs(nodes, proxy)
    by_node = report["sessions_by_node"]
    assert sum(by_node.values()) == 16, by_node
    if protocol == "2026-07-28":
        # Each create names no node: the pool spreads them.
        assert set(by_node) == {"n1", "n2"}, by_node
    else:
        # A handshake-era client's sessions are on the node its initialize reached.
        assert set(by_node) <= {"n1", "n2"}, by_node


async def test_proxy_answers_for_unknown_and_malformed_nodes(nodes: Nodes, proxy: Proxy):
    # A node no backend is configured for: answered by the proxy, naming it; 404 with
    # Mcp-Session-Id (a handshake-era client initializes again), 503 without.
    body, headers = modern_call("session_state", {"session_id": f"n9.{uuid.uuid4()}"}, f"n9.{uuid.uuid4()}")
    r = await arequest("POST", proxy.url, body, headers)
    assert r.status == 503, (r, proxy.log())
    assert r.rpc()["error"] == {"code": -32001, "message": "node n9 is unavailable"}, r
    r = await arequest("POST", proxy.url, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, {"Mcp-Session-Id": "n9." + "0" * 32})
    assert r.status == 404, (r, proxy.log())
    assert r.rpc()["error"]["message"] == "node n9 is unavailable", r
    # Handles naming a node in Mcp-Name (task ids, session resources) are routed too.
    r = await arequest(
        "POST",
        proxy.url,
        {"jsonrpc": "2.0", "id": 3, "method": "tasks/get", "params": {"taskId": "n9." + "a" * 32}},
        {"Mcp-Name": "n9." + "a" * 32},
    )
    assert r.status == 503 and b"node n9 is unavailable" in r.body, r
    r = await arequest("POST", proxy.url, {"jsonrpc": "2.0", "id": 4, "method": "resources/read"}, {"Mcp-Name": "stablehand://sessions/n9.x/state"})
    assert r.status == 503 and b"node n9 is unavailable" in r.body, r
    # The proxy's own health, and nothing but /mcp forwarded.
    assert (await arequest("GET", proxy.url.replace("/mcp", "/healthz"))).status == 200
    assert (await arequest("GET", proxy.url.replace("/mcp", "/other"))).status == 404


# ---- tests: the nodes' own checks (straight to a node, no proxy) -----------------------------


async def test_a_handle_sent_to_the_wrong_node_names_its_owner(nodes: Nodes, mode: str):
    n1, n2 = nodes["n1"], nodes["n2"]
    async with client(n1.url, mode) as c1, client(n2.url, mode) as c2:
        await prepared(c1, mode)
        await prepared(c2, mode)
        sid = await create_shell(c1)
        assert prefix(sid) == "n1", sid
        try:
            for tool, args in (
                ("session_exec", {"session_id": sid, "input": "echo hi"}),
                ("session_state", {"session_id": sid}),
                ("session_end", {"session_id": sid}),
            ):
                r = await c2.call_tool(tool, args)
                assert r.is_error, f"{tool} of an n1 handle on n2 succeeded: {r.structured_content}"
                assert "on node n1" in result_text(r), f"{tool}: {result_text(r)}"
            # The session is untouched.
            await echo(c1, sid, "still-here")
        finally:
            await end(c1, sid)

    # A handshake-era Mcp-Session-Id of node n1, sent to n2: 404 naming n1.
    r = await arequest("POST", n1.url, legacy_initialize())
    assert r.status == 200, r
    protocol_session = r.headers.get("mcp-session-id", "")
    assert prefix(protocol_session) == "n1" and re.fullmatch(r"n1\.[0-9a-f]{32}", protocol_session), protocol_session
    r = await arequest(
        "POST",
        n2.url,
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"Mcp-Session-Id": protocol_session, "MCP-Protocol-Version": "2025-11-25"},
    )
    assert r.status == 404, r
    assert "n1" in r.rpc()["error"]["message"], r


async def test_a_param_header_that_disagrees_with_the_body_is_refused(nodes: Nodes):
    n1 = nodes["n1"]
    async with client(n1.url, MODERN) as c:
        await prepared(c, MODERN)
        sid = await create_shell(c)
        try:
            # Agreeing: served.
            body, headers = modern_call("session_state", {"session_id": sid}, sid)
            r = await arequest("POST", n1.url, body, headers)
            assert r.status == 200, r
            assert "result" in r.rpc(), r
            # Another handle in the header than in the body; a header of another node; none.
            for header in (f"n1.{uuid.uuid4()}", f"n2.{sid.split('.', 1)[1]}", None):
                body, headers = modern_call("session_state", {"session_id": sid}, header)
                r = await arequest("POST", n1.url, body, headers)
                assert r.status == 400, (header, r)
                assert r.rpc()["error"]["code"] == -32020, (header, r)
        finally:
            await end(c, sid)


async def test_a_forged_header_through_the_proxy_reaches_no_session(nodes: Nodes, proxy: Proxy):
    async with contextlib.AsyncExitStack() as stack:
        c, sid = await session_on(stack, proxy.url, MODERN, "n1")
        try:
            body, headers = modern_call("session_exec", {"session_id": sid, "input": "echo forged"}, f"n2.{sid.split('.', 1)[1]}")
            r = await arequest("POST", proxy.url, body, headers)
            assert r.status == 400 and r.rpc()["error"]["code"] == -32020, (r, logs(nodes, proxy))
        finally:
            await end(c, sid)


# ---- tests: a node that dies, a node that drains ----------------------------------------------


@pytest.mark.timeout(150)
async def test_killing_node_2_fails_its_sessions_and_a_restart_brings_them_back(nodes: Nodes, proxy: Proxy, mode: str):
    with anyio.fail_after(DEADLINE_S + 30):
        async with contextlib.AsyncExitStack() as stack:
            c1, s1 = await session_on(stack, proxy.url, mode, "n1")
            c2, s2 = await session_on(stack, proxy.url, mode, "n2")
            await echo(c1, s1, "before")
            await echo(c2, s2, "before")

            nodes.kill("n2")
            # Node 2's session fails at once (the proxy answers: node unavailable), it does
            # not hang; node 1's keeps working.
            with anyio.fail_after(10):
                try:
                    r = await c2.call_tool("session_exec", {"session_id": s2, "input": "echo after"})
                    failed = result_text(r) if r.is_error else ""
                except MCPError as e:
                    failed = f"{e.code}: {e.message}"
                assert failed, f"an exec on killed node 2 succeeded through {proxy.kind}"
                assert "node n2 is unavailable" in failed, failed
            await echo(c1, s1, "after")
            if mode == MODERN:
                # One client reaches both nodes: node 1's session is still fine from it.
                await echo(c2, s1, "same-client")

            nodes.start("n2")
            await await_routable(proxy, "n2")
            # A handshake-era client of node 2 lost its protocol session with it: a new client
            # whose initialize reaches node 2 carries on.
            if mode != MODERN:
                c2 = await legacy_client_on(stack, proxy.url, s2)
            state = await call_ok(c2, "session_state", {"session_id": s2})
            assert state["state"] == "Suspended", state
            resumed = await call_ok(c2, "session_resume", {"session_id": s2})
            assert resumed["state"] == "Ready", resumed
            await echo(c2, s2, "resumed")
            await echo(c1, s1, "still")
            await end(c1, s1)
            await end(c2, s2)


async def legacy_client_on(stack: contextlib.AsyncExitStack, url: str, sid: str) -> Client:
    """A handshake-era client through the proxy whose protocol session is on the node of `sid`
    (clients reaching another node answer "on node ..." and are held open meanwhile)."""
    deadline = time.monotonic() + STATE_WAIT_S
    answers: list[str] = []
    while len(answers) < 30 and time.monotonic() < deadline:
        c = await stack.enter_async_context(client(url, "legacy"))
        r = await c.call_tool("session_state", {"session_id": sid})
        if not r.is_error:
            return c
        answers.append(result_text(r))
        assert f"on node {prefix(sid)}" in answers[-1], answers[-1]
        await anyio.sleep(0.05)
    raise AssertionError(f"no handshake-era client reached node {prefix(sid)} through the proxy: {answers}")


async def wait_ready(node: Node, want: int) -> None:
    """Polls the node's GET /readyz until it answers `want` (at most STATE_WAIT_S)."""
    status = 0
    with anyio.move_on_after(STATE_WAIT_S):
        while True:
            status = (await arequest("GET", f"{node.base}/readyz")).status
            if status == want:
                return
            await anyio.sleep(0.02)
    raise AssertionError(f"node {node.name}'s /readyz answers {status}, not {want}, after {STATE_WAIT_S}s")


async def test_a_draining_node_takes_no_new_sessions(nodes: Nodes, proxy: Proxy, mode: str):
    n2 = nodes["n2"]
    assert (await arequest("GET", f"{n2.base}/healthz")).status == 200
    await wait_ready(n2, 200)
    async with contextlib.AsyncExitStack() as stack:
        # A session on node 2 from before the drain.
        direct = await prepared(await stack.enter_async_context(client(n2.url, mode)), mode)
        old = await create_shell(direct)
        assert prefix(old) == "n2", old
        nodes.signal("n2", signal.SIGUSR1)
        try:
            await wait_ready(n2, 503)
            assert (await arequest("GET", f"{n2.base}/healthz")).status == 200

            # Straight to node 2: a create, and a handshake-era initialize, get 503 draining.
            body, headers = modern_call("session_create", {"kind": "shell"}, None)
            r = await arequest("POST", n2.url, body, headers)
            assert r.status == 503, r
            assert r.headers.get("retry-after") == "1", r
            assert "draining" in r.rpc()["error"]["message"], r
            r = await arequest("POST", n2.url, legacy_initialize())
            assert r.status == 503 and "draining" in r.rpc()["error"]["message"], r
            if mode == MODERN:
                with pytest.raises(MCPError, match="draining"):
                    await direct.call_tool("session_create", {"kind": "shell"})

            # Through the proxy: every create lands on node 1.
            created = []
            for _ in range(3):
                c = await prepared(await stack.enter_async_context(client(proxy.url, mode)), mode)
                for _ in range(2):
                    created.append((c, await create_shell(c)))
            assert {prefix(s) for _, s in created} == {"n1"}, [s for _, s in created]
            for c, sid in created:
                await end(c, sid)

            # Node 2's own session keeps working, straight and through the proxy.
            await echo(direct, old, "draining")
            if mode == MODERN:
                via = await prepared(await stack.enter_async_context(client(proxy.url, mode)), mode)
                await echo(via, old, "through-the-proxy")
        finally:
            nodes.signal("n2", signal.SIGUSR2)
        await wait_ready(n2, 200)
        again = await create_shell(direct)
        assert prefix(again) == "n2", again
        await end(direct, again)
        await end(direct, old)


# ---- tests: the deployment files ----------------------------------------------------------------


def k8s_documents() -> dict[tuple[str, str], dict[str, Any]]:
    docs: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                key = (doc["kind"], doc["metadata"]["name"])
                assert key not in docs, f"{key} defined twice"
                assert doc["metadata"].get("namespace", "stablehand") == "stablehand", (path, key)
                docs[key] = doc
    return docs


def test_kubernetes_manifests_fit_together():
    docs = k8s_documents()
    sts = docs[("StatefulSet", "stablehand")]["spec"]
    pod = sts["template"]["spec"]
    (container,) = pod["containers"]
    labels = sts["template"]["metadata"]["labels"]
    assert sts["selector"]["matchLabels"] == labels
    assert sts["replicas"] == 2

    # Pod name = node id; one volume per pod for the store.
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    args = container["args"]
    assert args[:3] == ["serve", "--http", "0.0.0.0:8765"], args
    assert args[args.index("--node-id") + 1] == "$(POD_NAME)"
    assert args[args.index("--data-dir") + 1] == "/data"
    config_path = args[args.index("--config") + 1]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    (claim,) = sts["volumeClaimTemplates"]
    assert mounts[claim["metadata"]["name"]] == "/data"
    assert config_path.startswith(mounts["config"] + "/")

    # Probes, drain before stop, resources.
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    pre_stop = " ".join(container["lifecycle"]["preStop"]["exec"]["command"])
    assert "kill -USR1 1" in pre_stop, pre_stop
    sleep = int(re.search(r"sleep (\d+)", pre_stop).group(1))
    assert pod["terminationGracePeriodSeconds"] >= sleep + 20
    assert {"requests", "limits"} <= set(container["resources"])

    # The headless Service that names each pod (ready or not), and the ready pods' one.
    governing = docs[("Service", sts["serviceName"])]["spec"]
    assert governing["clusterIP"] == "None" and governing["publishNotReadyAddresses"] is True
    assert governing["selector"] == labels
    ready = docs[("Service", "stablehand-ready")]["spec"]
    assert ready["clusterIP"] == "None" and not ready.get("publishNotReadyAddresses", False)
    assert ready["selector"] == labels

    # The nodes accept the Host of the proxy's Service.
    toml_text = docs[("ConfigMap", "stablehand-config")]["data"]["stablehand.toml"]
    assert '"stablehand-proxy.stablehand.svc.cluster.local"' in toml_text

    # The proxy runs deploy/nginx.conf unchanged, with a node list that names the pods by the
    # governing Service's DNS and the pool by the ready one's.
    proxy_config = docs[("ConfigMap", "stablehand-proxy")]["data"]
    assert proxy_config["nginx.conf"] == (DEPLOY / "nginx.conf").read_text(), (
        "deploy/kubernetes/20-proxy.yaml's nginx.conf differs from deploy/nginx.conf: copy it there"
    )
    node_list = proxy_config["stablehand-nodes.conf"]
    assert f".{sts['serviceName']}.stablehand.svc.cluster.local:8765" in node_list
    assert "stablehand-ready.stablehand.svc.cluster.local:8765" in node_list
    assert f"{docs[('StatefulSet', 'stablehand')]['metadata']['name']}-[0-9]+" in node_list

    deployment = docs[("Deployment", "stablehand-proxy")]["spec"]
    (nginx,) = deployment["template"]["spec"]["containers"]
    proxy_mounts = {m["name"]: m["mountPath"] for m in nginx["volumeMounts"]}
    assert nginx["command"][:3] == ["nginx", "-c", proxy_mounts["config"] + "/nginx.conf"]
    assert nginx["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"requests", "limits"} <= set(nginx["resources"])
    port = nginx["ports"][0]["containerPort"]
    assert f"listen {port};" in proxy_config["nginx.conf"]
    service = docs[("Service", "stablehand-proxy")]["spec"]
    assert service["selector"] == deployment["template"]["metadata"]["labels"]


class FakeDns:
    """A DNS server on loopback answering A queries from a table (NXDOMAIN for other names),
    standing in for the cluster DNS that the Kubernetes proxy config resolves pods with."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.serve, name="fake-dns", daemon=True)
        self.thread.start()

    def answer(self, query: bytes) -> bytes:
        labels, i = [], 12
        while query[i]:
            labels.append(query[i + 1 : i + 1 + query[i]].decode().lower())
            i += 1 + query[i]
        question = query[12 : i + 5]
        qtype = int.from_bytes(query[i + 1 : i + 3], "big")
        addresses = self.table.get(".".join(labels))
        flags = 0x8180 if addresses is not None else 0x8183  # a response, recursion; NXDOMAIN
        records = [a for a in (addresses or []) if qtype == 1]
        head = query[:2] + flags.to_bytes(2, "big") + (1).to_bytes(2, "big") + len(records).to_bytes(2, "big") + bytes(4)
        body = b"".join(
            b"\xc0\x0c" + (1).to_bytes(2, "big") + (1).to_bytes(2, "big") + (5).to_bytes(4, "big") + (4).to_bytes(2, "big") + socket.inet_aton(a)
            for a in records
        )
        return head + question + body

    def serve(self) -> None:
        while not self.stopped.is_set():
            try:
                query, peer = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            with contextlib.suppress(Exception):
                self.sock.sendto(self.answer(query), peer)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.sock.close()


@pytest.mark.timeout(90)
async def test_kubernetes_proxy_config_routes_pods_found_by_dns(stablehand_bin: str, nginx_bin: str, tmp_path: Path):
    """The proxy of deploy/kubernetes/20-proxy.yaml (deploy/nginx.conf with the DNS node list),
    with pods stablehand-0 and stablehand-1 on 127.0.0.4 and 127.0.0.5 (one port, as pods
    have) named by a stand-in for the cluster DNS."""
    proxy_config = k8s_documents()[("ConfigMap", "stablehand-proxy")]["data"]
    pods = {"stablehand-0": "127.0.0.4", "stablehand-1": "127.0.0.5"}
    servers: dict[str, HttpServer] = {}
    dns: FakeDns | None = None
    proxy: Proxy | None = None
    try:
        port = 0
        for name, host in pods.items():
            (tmp_path / name).mkdir()
            config = tmp_path / name / "stablehand.toml"
            config.write_text(f'[http]\nallowed_hosts = ["{host}"]\n')
            args = ["--http", f"{host}:{port}", "--node-id", name, "--data-dir", str(tmp_path / name / "data")]
            servers[name] = start_http_server(stablehand_bin, [*args, "--config", str(config)])
            port = int(servers[name].url.rsplit(":", 1)[1].split("/")[0])
        # <pod>.<governing Service>.<namespace>.svc..., and the ready pods' Service.
        names = {f"{n}.stablehand.stablehand.svc.cluster.local": [h] for n, h in pods.items()}
        dns = FakeDns(names | {"stablehand-ready.stablehand.svc.cluster.local": list(pods.values())})

        d = tmp_path / "proxy"
        d.mkdir()
        proxy_port = free_port()
        conf = substitute(proxy_config["nginx.conf"], r"^(\s*)listen 8080;$", rf"\g<1>listen 127.0.0.1:{proxy_port};")
        conf = substitute(conf, r"^(\s*)access_log /var/log/nginx/access\.log ", rf"\g<1>access_log {d}/access.log ")
        (d / "nginx.conf").write_text(conf)
        node_list = proxy_config["stablehand-nodes.conf"].replace("kube-dns.kube-system.svc.cluster.local", f"127.0.0.1:{dns.port}")
        node_list = node_list.replace(".svc.cluster.local:8765", f".svc.cluster.local:{port}")
        temp = "".join(f"{t}_temp_path {d}/{t};\n" for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (d / "stablehand-nodes.conf").write_text(node_list + temp)
        globals_ = f"daemon off; pid {d}/nginx.pid;" + (" user root;" if os.geteuid() == 0 else "")
        with open(d / "proxy.log", "wb") as log:
            proc = subprocess.Popen(
                [nginx_bin, "-c", str(d / "nginx.conf"), "-p", str(d), "-e", "stderr", "-g", globals_],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        proxy = Proxy("nginx (kubernetes)", proxy_port, proc, d / "proxy.log")
        deadline = time.monotonic() + PROXY_START_S
        while True:
            with contextlib.suppress(OSError):
                if (await arequest("GET", proxy.url.replace("/mcp", "/healthz"))).status == 200:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, f"nginx did not start:\n{proxy.log()}"
            await anyio.sleep(0.05)

        async with contextlib.AsyncExitStack() as stack:
            # Creates spread over both pods, and each session is reached by its handle.
            c = await prepared(await stack.enter_async_context(client(proxy.url, MODERN)), MODERN)
            sids = [await create_shell(c) for _ in range(6)]
            assert {prefix(s) for s in sids} == set(pods), f"{sids}\n{proxy.log()}"
            for sid in sids:
                await echo(c, sid, "by-dns")
            # A handshake-era client works through it too.
            legacy = await stack.enter_async_context(client(proxy.url, "legacy"))
            mine = await create_shell(legacy)
            await echo(legacy, mine, "legacy")
            await end(legacy, mine)

            # A pod that drains is skipped for creates (DNS still lists it here, as it does
            # until the readiness probe fails), and its sessions keep working.
            servers["stablehand-1"].proc.send_signal(signal.SIGUSR1)
            ready = f"http://{pods['stablehand-1']}:{port}/readyz"
            with anyio.fail_after(STATE_WAIT_S):
                while (await arequest("GET", ready)).status != 503:
                    await anyio.sleep(0.02)
            more = [await create_shell(c) for _ in range(4)]
            assert {prefix(s) for s in more} == {"stablehand-0"}, more
            for sid in sids:
                await echo(c, sid, "while-draining")
            for sid in sids + more:
                await end(c, sid)

        # A pod that does not exist: no DNS name, so "unavailable", naming it.
        body, headers = modern_call("session_state", {"session_id": f"stablehand-7.{uuid.uuid4()}"}, f"stablehand-7.{uuid.uuid4()}")
        r = await arequest("POST", proxy.url, body, headers)
        assert r.status == 503 and r.rpc()["error"]["message"] == "node stablehand-7 is unavailable", r
        # A name that is not one of the StatefulSet's pods is not even looked up.
        body, headers = modern_call("session_state", {"session_id": f"elsewhere.{uuid.uuid4()}"}, f"elsewhere.{uuid.uuid4()}")
        r = await arequest("POST", proxy.url, body, headers)
        assert r.status == 503 and r.rpc()["error"]["message"] == "node elsewhere is unavailable", r
    finally:
        if proxy is not None:
            stop_proxy(proxy)
        if dns is not None:
            dns.stop()
        for server in servers.values():
            if server.proc.poll() is None:
                stop_http_server(server)


def test_deployment_configs_pass_their_checkers(nginx_bin: str, haproxy_bin: str, tmp_path: Path):
    """`nginx -t` on deploy/nginx.conf with the example node list and with the Kubernetes one
    (kube-dns stands for itself only in a cluster), and `haproxy -c` on the example."""
    proxy_config = k8s_documents()[("ConfigMap", "stablehand-proxy")]["data"]
    variants = {
        "example": (DEPLOY / "nginx-nodes.example.conf").read_text(),
        "kubernetes": proxy_config["stablehand-nodes.conf"].replace("kube-dns.kube-system.svc.cluster.local", "127.0.0.1"),
    }
    for name, node_list in variants.items():
        d = tmp_path / name
        d.mkdir()
        conf = (DEPLOY / "nginx.conf").read_text()
        conf = substitute(conf, r"^(\s*)access_log /var/log/nginx/access\.log ", rf"\g<1>access_log {d}/access.log ")
        temp = "".join(f"{t}_temp_path {d}/{t};\n" for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (d / "nginx.conf").write_text(conf)
        (d / "stablehand-nodes.conf").write_text(node_list + temp)
        r = subprocess.run(
            [nginx_bin, "-t", "-c", str(d / "nginx.conf"), "-p", str(d), "-e", "stderr", "-g", f"pid {d}/nginx.pid;"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert r.returncode == 0, f"nginx -t with the {name} node list:\n{r.stderr}"
    r = subprocess.run(
        [haproxy_bin, "-c", "-f", str(DEPLOY / "haproxy.cfg"), "-f", str(DEPLOY / "haproxy-nodes.example.cfg")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, f"haproxy -c:\n{r.stdout}{r.stderr}"
    assert "ALERT" not in r.stdout + r.stderr, r.stdout + r.stderr
