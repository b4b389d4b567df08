#!/usr/bin/env bash
# Where an exec's CPU goes: `stablehand serve --http` on an on-disk store, `stablehand load`
# running exec `true` with CPU_CLIENTS clients (default 64), and the CPU time the server, the
# load generator and the sessions' bashes each used over the measured window, divided by the
# execs answered in it. CPU time is read from /proc (utime + stime), so it counts what each
# party spent, wherever it ran; throughput alone mixes them all on a shared machine.
#
#   scripts/cpu_per_exec.sh SERVER_BIN [LOAD_BIN]      # LOAD_BIN defaults to SERVER_BIN
# Knobs: CPU_ROUNDS (default 1), CPU_SECS (measured seconds, default 8), CPU_LABEL.
# Prints one line per round: LABEL tput=… server=…us load=…us bash=…us total=…us
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/serve_lib.sh
source scripts/serve_lib.sh

SERVER="${1:-}"
[[ -x "$SERVER" ]] || die "usage: scripts/cpu_per_exec.sh SERVER_BIN [LOAD_BIN]"
LOAD="${2:-$SERVER}"
CLIENTS="${CPU_CLIENTS:-64}"
SECS="${CPU_SECS:-8}"
ROUNDS="${CPU_ROUNDS:-1}"
LABEL="${CPU_LABEL:-$(basename "$SERVER")}"
HZ="$(getconf CLK_TCK)"

# ticks PID...: utime + stime of every thread of the given processes, in clock ticks.
ticks() {
    local t=0 p f
    for p in "$@"; do
        read -r -a f <"/proc/$p/stat" 2>/dev/null || continue
        # Fields 14 and 15; a process name with spaces would shift them, bash's has none.
        t=$((t + f[13] + f[14]))
    done
    echo "$t"
}

for ((round = 1; round <= ROUNDS; round++)); do
    data="$(mktemp -d "${TMPDIR:-/tmp}/stablehand-cpu.XXXXXX")"
    port="$(free_port)"
    RUST_LOG=warn "$SERVER" serve --http "127.0.0.1:$port" --data-dir "$data" 2>"$data.log" &
    server=$!
    wait_accepting "$port" "$server" "$data.log"
    "$LOAD" load --url "http://127.0.0.1:$port/mcp" --scenario exec --clients "$CLIENTS" \
        --warmup 3s --duration "${SECS}s" --json >"$data.json" &
    load=$!
    # The window: from just after the warm-up to just before the end of the measured phase.
    sleep 3.3
    mapfile -t bashes < <(pgrep -P "$server" bash)
    s0=$(ticks "$server") l0=$(ticks "$load") b0=$(ticks "${bashes[@]}") t0=$(date +%s.%N)
    sleep "$(echo "$SECS - 0.6" | bc)"
    s1=$(ticks "$server") l1=$(ticks "$load") b1=$(ticks "${bashes[@]}") t1=$(date +%s.%N)
    wait "$load"
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    python3 - "$LABEL" "$data.json" "$HZ" "$s0" "$s1" "$l0" "$l1" "$b0" "$b1" "$t0" "$t1" <<'PY'
import json, sys
label, report, hz = sys.argv[1], sys.argv[2], float(sys.argv[3])
s0, s1, l0, l1, b0, b1, t0, t1 = map(float, sys.argv[4:])
tput = json.load(open(report))["throughput_per_s"]
execs = tput * (t1 - t0)
per = lambda a, b: (b - a) / hz / execs * 1e6
server, load, bash = per(s0, s1), per(l0, l1), per(b0, b1)
print(f"{label} tput={tput:.0f} server={server:.1f}us load={load:.1f}us "
      f"bash={bash:.1f}us total={server + load + bash:.1f}us")
PY
    rm -rf "$data" "$data.log" "$data.json"
done
