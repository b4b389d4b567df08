#!/usr/bin/env bash
# The project's test command: the Python test environment (.venv: the official MCP SDK,
# debugpy), the pinned Claude Code CLI (.tools/claude, from npm), a formatting check, Rust tests, then the Python
# end-to-end suite that drives the real binary with the official MCP SDK, then the protocol
# conformance run if present.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

section() { printf '\n==== %s ====\n' "$*"; }

section "python environment (.venv)"
want="$(sha256sum requirements-test.txt | cut -d' ' -f1)"
stamp=.venv/.requirements.sha
if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
    rm -f "$stamp"
    .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-test.txt
    echo "$want" >"$stamp"
    echo "installed requirements-test.txt"
else
    echo "up to date"
fi

section "debian packages (programs the terminal and proxy tests run)"
# less, vi, top and tput for the terminal tests; nginx and haproxy for tests/python/test_proxy.py,
# which starts them itself on loopback with the configs in deploy/. Their Debian services must
# not start on install (nginx's would take port 80): a policy-rc.d that answers 101 ("action
# forbidden") is in place for the install and the one found before, if any, is put back after.
missing=()
for pair in less:less vi:vim-tiny top:procps tput:ncurses-bin /usr/sbin/nginx:nginx /usr/sbin/haproxy:haproxy; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if ((${#missing[@]} == 0)); then
    echo "up to date"
elif [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    policy=/usr/sbin/policy-rc.d
    saved_policy=""
    if [[ -e $policy ]]; then
        saved_policy="$(mktemp)"
        cp -p "$policy" "$saved_policy"
    fi
    restore_policy() {
        if [[ -n $saved_policy ]]; then
            cp -p "$saved_policy" "$policy" && rm -f "$saved_policy"
        else
            rm -f "$policy"
        fi
    }
    trap restore_policy EXIT
    printf '#!/bin/sh\n# scripts/test.sh: no service starts while packages install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    apt-get install -y -q --no-install-recommends "${missing[@]}" ||
        { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; }
    restore_policy
    trap - EXIT
else
    echo "missing Debian packages: ${missing[*]} (the terminal tests run less, vi, top and tput; the proxy tests nginx and haproxy); install them and run again" >&2
    exit 1
fi

section "claude code cli (.tools/claude, the agent tests' real agent)"
# tests/python/test_claude.py drives the real Claude Code CLI against a stand-in Messages API
# on loopback (tests/fixtures/messages_api.py). The CLI is pinned in tests/claude/package-lock.json
# and installed with `npm ci` into git-ignored .tools/claude, again only when the lock's sha256
# differs from the stamp left by the last install. --ignore-scripts: the package's postinstall
# (which would link bin/claude.exe to the platform's native binary) does not run, so the tests
# run the native binary of the platform package npm picked (an optional dependency per
# os/cpu/libc) directly. That binary does not need Node: under an older system Node, npm logs
# one EBADENGINE warning (the package asks for Node >= 22), which is harmless here.
# --prefer-offline: a warm npm cache installs with no registry access at all.
case "$(uname -m)" in
x86_64) claude_pkg=claude-code-linux-x64 ;;
aarch64 | arm64) claude_pkg=claude-code-linux-arm64 ;;
*)
    echo "no pinned Claude Code CLI for $(uname -m) (tests/claude has linux x86_64 and aarch64 builds); the agent tests need one" >&2
    exit 1
    ;;
esac
claude_tools=.tools/claude
claude_stamp=$claude_tools/.lock-sha256
claude_bin="$PWD/$claude_tools/node_modules/@anthropic-ai/$claude_pkg/claude"
want="$(sha256sum tests/claude/package-lock.json | cut -d' ' -f1)"
if [[ "$(cat "$claude_stamp" 2>/dev/null || true)" == "$want" && -x $claude_bin ]]; then
    echo "up to date"
else
    command -v npm >/dev/null || {
        echo "npm is needed once to install $claude_tools (apt-get install npm)" >&2
        exit 1
    }
    rm -f "$claude_stamp"
    mkdir -p "$claude_tools"
    cp tests/claude/package.json tests/claude/package-lock.json "$claude_tools/"
    if ! npm ci --prefix "$claude_tools" --ignore-scripts --no-audit --no-fund --prefer-offline \
        >"$claude_tools/npm-ci.log" 2>&1; then
        tail -n 30 "$claude_tools/npm-ci.log" >&2
        echo "npm ci failed (full log: $claude_tools/npm-ci.log)" >&2
        exit 1
    fi
    [[ -x $claude_bin ]] || {
        echo "$claude_bin missing after npm ci (log: $claude_tools/npm-ci.log)" >&2
        exit 1
    }
    echo "$want" >"$claude_stamp"
    echo "installed tests/claude/package-lock.json"
fi
claude_version="$("$claude_bin" --version)" || {
    echo "$claude_bin does not run" >&2
    exit 1
}
want_version="$(sed -n 's/.*"@anthropic-ai\/claude-code": "\([^"]*\)".*/\1/p' tests/claude/package.json)"
if [[ $claude_version != "$want_version "* ]]; then
    echo "$claude_bin is '$claude_version', expected $want_version (tests/claude/package.json)" >&2
    exit 1
fi
echo "$claude_version"
# The Python agent tests run this CLI, and must not skip for want of it.
export STABLEHAND_TEST_CLAUDE="$claude_bin"
export STABLEHAND_REQUIRE_CLAUDE=1

# tests/python/test_proxy.py runs nginx and haproxy (installed above), and must not skip for want of them.
export STABLEHAND_REQUIRE_PROXY=1

# The Rust tests of REPL and debug sessions run this interpreter (debugpy is installed in it).
export STABLEHAND_TEST_PYTHON="$PWD/.venv/bin/python"

section "formatting (cargo fmt --check)"
# The formatting the repository keeps, checked before anything builds: a diff fails the run.
if cargo fmt --version >/dev/null 2>&1; then
    cargo fmt --check
    echo "formatted"
else
    echo "rustfmt is not installed (rustup component add rustfmt): formatting not checked"
fi

section "cargo test"
cargo test --locked

section "cargo build (stablehand binary)"
cargo build --locked --bin stablehand
BIN="$PWD/target/debug/stablehand"

section "python end-to-end tests (tests/python)"
export STABLEHAND_BIN="$BIN"
.venv/bin/python -m pytest -q tests/python

if [[ -x scripts/conformance.sh ]]; then
    section "conformance (scripts/conformance.sh)"
    scripts/conformance.sh
fi

section "all tests passed"
