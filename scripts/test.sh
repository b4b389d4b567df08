#!/usr/bin/env bash
# The project's test command: the Python test environment (.venv: the official MCP SDK,
# debugpy), Rust tests, then the Python end-to-end suite that drives the real binary with the
# official MCP SDK, then the protocol conformance run if present.
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

section "debian packages (programs the terminal tests run)"
missing=()
for pair in less:less vi:vim-tiny top:procps tput:ncurses-bin; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if ((${#missing[@]} == 0)); then
    echo "up to date"
elif [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" ||
        { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; }
else
    echo "missing Debian packages: ${missing[*]} (the terminal tests run less, vi, top and tput); install them and run again" >&2
    exit 1
fi

# The Rust tests of REPL and debug sessions run this interpreter (debugpy is installed in it).
export STABLEHAND_TEST_PYTHON="$PWD/.venv/bin/python"

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
