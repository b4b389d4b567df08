#!/usr/bin/env bash
# Endurance: `stablehand serve --http` on an on-disk store while 64 clients (SOAK_CLIENTS)
# each run session_exec `true` (SOAK_COMMAND) on their own shell, for SOAK_SECS (default 1800)
# after a SOAK_WARMUP (default 60 s) warm-up. Every SOAK_SAMPLE seconds (default 10) it
# records the server's RSS, its open descriptors, the data dir's size and the server's zombie
# children in a CSV. With a SOAK_COMMAND other than `true`, docs/soak.png is left alone.
#
# With SOAK_OLD_BIN=/path/to/an/older/stablehand, the same load runs first against that build
# (same machine, same run), stopped after SOAK_OLD_SECS (default 600) or as soon as its RSS
# passes SOAK_OLD_MAX_MB (default 6000), so an unbounded store cannot exhaust the machine.
#
# Then scripts/soak_report.py prints the summary for BENCHMARKS.md and draws docs/soak.png.
#
#   scripts/soak.sh                                   # the release build of this tree
#   SOAK_OLD_BIN=/tmp/old/stablehand SOAK_SECS=1800 scripts/soak.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/serve_lib.sh
source scripts/serve_lib.sh

SECS="${SOAK_SECS:-1800}"
WARMUP="${SOAK_WARMUP:-60}"
SAMPLE="${SOAK_SAMPLE:-10}"
CLIENTS="${SOAK_CLIENTS:-64}"
COMMAND="${SOAK_COMMAND:-true}"
OLD_BIN="${SOAK_OLD_BIN:-}"
OLD_SECS="${SOAK_OLD_SECS:-600}"
OLD_MAX_MB="${SOAK_OLD_MAX_MB:-6000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
OUT="$CARGO_TARGET_DIR/soak"
mkdir -p "$OUT"


cargo build --release --locked --bin stablehand >&2
NEW_BIN="$CARGO_TARGET_DIR/release/stablehand"

# soak NAME BIN SECS MAX_MB: one run; writes $OUT/NAME.csv and $OUT/NAME.json.
soak() {
    local name=$1 bin=$2 secs=$3 max_mb=$4
    local data port pid load_pid log="$OUT/$name.log" csv="$OUT/$name.csv" start now rss
    data="$(mktemp -d "${TMPDIR:-/tmp}/stablehand-soak.XXXXXX")"
    port="$(free_port)"
    RUST_LOG=warn "$bin" serve --http "127.0.0.1:$port" --data-dir "$data" 2>"$log" &
    pid=$!
    wait_accepting "$port" "$pid" "$log"
    echo "t_s,rss_kb,fds,data_kb,zombies" >"$csv"
    "$NEW_BIN" load --url "http://127.0.0.1:$port/mcp" --scenario exec --command "$COMMAND" \
        --clients "$CLIENTS" \
        --warmup "${WARMUP}s" --duration "${secs}s" --timeout 120s --json >"$OUT/$name.json" &
    load_pid=$!
    start=$(date +%s)
    while kill -0 "$load_pid" 2>/dev/null; do
        now=$(($(date +%s) - start))
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
        echo "$now,$rss,$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l),$(du -sk "$data" | cut -f1),$(ps --ppid "$pid" -o stat= | grep -c '^Z' || true)" >>"$csv"
        if ((rss > max_mb * 1024)); then
            echo "soak.sh: $name passed ${max_mb} MB of RSS at ${now} s; stopping it" >&2
            kill "$load_pid" 2>/dev/null || true
            break
        fi
        sleep "$SAMPLE"
    done
    wait "$load_pid" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$data"
}

if [[ -n "$OLD_BIN" ]]; then
    [[ -x "$OLD_BIN" ]] || die "SOAK_OLD_BIN=$OLD_BIN is not an executable"
    echo "soak.sh: old build $OLD_BIN for up to ${OLD_SECS} s" >&2
    soak old "$OLD_BIN" "$OLD_SECS" "$OLD_MAX_MB"
fi
echo "soak.sh: this build for ${SECS} s after a ${WARMUP} s warm-up" >&2
soak new "$NEW_BIN" "$SECS" 1000000

PYTHON=python3
[[ -x .venv/bin/python ]] && PYTHON=.venv/bin/python
PLOT=plot
[[ "$COMMAND" == true ]] || PLOT=no-plot
"$PYTHON" scripts/soak_report.py "$OUT" "$WARMUP" \
    "scripts/soak.sh (SOAK_SECS=$SECS${OLD_BIN:+, SOAK_OLD_BIN}, SOAK_CLIENTS=$CLIENTS, SOAK_COMMAND='$COMMAND')" "$PLOT"
