#!/usr/bin/env bash
# Front door under a slow-connection flood (BENCHMARKS.md, "Front door: slow-connection flood").
# For each server binary given as NAME=PATH (default: this tree's release build as "new"), on a
# fresh `serve --http --in-memory` with the default configuration (max_connections 4096):
#   idle        one client's `ping`, no flood (the baseline)
#   idle-create-end  its session_create + session_end, no flood (the baseline)
#   ping        the same client's `ping` while `stablehand load --hold N` holds N slow connections
#               (each sends part of a request line, then nothing; one the server closes is opened
#               again after FLOOD_REOPEN); the client connects into the flood and keeps its
#               connection
#   ping-new    the same, with a new connection for every ping (`--reconnect`): a new client
#   create-end  the client's session_create + session_end during the same flood
# The load generator is always this tree's (`--hold` is new); only the server differs, so
#   scripts/flood.sh main=/path/to/main/stablehand new=target/release/stablehand
# is an A/B of the front door. Each scenario runs FLOOD_RUNS times on a fresh server; the
# summary gives the median of each figure over the runs. JSON reports go to
# ${CARGO_TARGET_DIR:-target}/flood/.
# Knobs: FLOOD_HOLD (10000), FLOOD_SECS (15), FLOOD_REOPEN (1s), FLOOD_RUNS (3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/serve_lib.sh
source scripts/serve_lib.sh

HOLD="${FLOOD_HOLD:-10000}"
SECS="${FLOOD_SECS:-15}"
REOPEN="${FLOOD_REOPEN:-1s}"
RUNS="${FLOOD_RUNS:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
OUT="$CARGO_TARGET_DIR/flood"
LOAD="$CARGO_TARGET_DIR/release/stablehand"


cargo build --release --locked --bin stablehand >&2
servers=("$@")
((${#servers[@]})) || servers=("new=$LOAD")
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.err
# The flood and the server each need HOLD descriptors and more.
ulimit -Sn "$(ulimit -Hn)"
(($(ulimit -Hn) > HOLD + 1000)) || die "the open-file limit ($(ulimit -Hn)) is too low for $HOLD held connections"

run() { # NAME BIN SCENARIO RUN
    local name=$1 bin=$2 scenario=$3 n=$4 port pid log args
    port=$(free_port)
    log="$OUT/$name-$scenario-$n.server.log"
    RUST_LOG=warn "$bin" serve --http "127.0.0.1:$port" --in-memory 2>"$log" &
    pid=$!
    wait_accepting "$port" "$pid" "$log"
    args=(--url "http://127.0.0.1:$port/mcp" --clients 1 --duration "${SECS}s" --timeout 5s --json)
    case $scenario in
        idle) args+=(--scenario noop) ;;
        idle-create-end) args+=(--scenario create-end) ;;
        ping) args+=(--scenario noop --hold "$HOLD" --hold-reopen "$REOPEN") ;;
        ping-new) args+=(--scenario noop --reconnect --hold "$HOLD" --hold-reopen "$REOPEN") ;;
        create-end) args+=(--scenario create-end --hold "$HOLD" --hold-reopen "$REOPEN") ;;
    esac
    echo "$name $scenario run $n" >&2
    if ! "$LOAD" load "${args[@]}" >"$OUT/$name-$scenario-$n.json" 2>"$OUT/$name-$scenario-$n.err"; then
        rm -f "$OUT/$name-$scenario-$n.json"
        tail -n 1 "$OUT/$name-$scenario-$n.err" >&2 || true
    fi
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

for s in "${servers[@]}"; do
    name=${s%%=*}
    bin=${s#*=}
    [[ -x "$bin" ]] || die "$bin is not an executable"
    for ((n = 1; n <= RUNS; n++)); do
        for scenario in idle idle-create-end ping ping-new create-end; do
            run "$name" "$bin" "$scenario" "$n"
        done
    done
done

python3 - "$OUT" "$HOLD" "$SECS" "$REOPEN" "$RUNS" "${servers[@]}" <<'EOF'
import json, re, statistics, sys
from pathlib import Path

out, hold, secs, reopen, runs, servers = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6:]
med = lambda xs: statistics.median(xs) if xs else None
ms = lambda us: "-" if us is None else f"{us / 1000:.2f} ms"
print(f"| server | scenario | runs ok | p50 | p99 | p99.9 | max | ops/s | errors | held open (mean) | closed by server |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for s in servers:
    name = s.split("=", 1)[0]
    for scenario in ("idle", "idle-create-end", "ping", "ping-new", "create-end"):
        reports, failures = [], []
        for n in range(1, runs + 1):
            f = out / f"{name}-{scenario}-{n}.json"
            if f.exists():
                reports.append(json.loads(f.read_text()))
            else:
                err = (out / f"{name}-{scenario}-{n}.err").read_text().strip().splitlines()
                failures.append(re.sub(r"^\S+Z\s+ERROR\s+", "", err[-1]) if err else "failed")
        lat = lambda k: med([r["latency_us"][k] for r in reports if r["ok"]])
        errs = sum(sum(r["errors"].values()) for r in reports)
        held = med([r["hold"]["open_mean"] for r in reports if r.get("hold")])
        closed = med([r["hold"]["closed_by_server"] for r in reports if r.get("hold")])
        print(
            f"| {name} | {scenario} | {len(reports)}/{runs} | {ms(lat('p50'))} | {ms(lat('p99'))} | {ms(lat('p999'))} | {ms(lat('max'))} | "
            + (f"{med([r['throughput_per_s'] for r in reports]):.0f}" if reports else "-")
            + f" | {errs} | {'-' if held is None else f'{held:.0f}'} | {'-' if closed is None else f'{closed:.0f}'} |"
        )
        for fail in sorted(set(failures)):
            print(f"| {name} | {scenario}: failed | {fail} |")
print(f"\n{hold} held connections, {secs} s measured per run, closed ones reopened after {reopen}, {runs} runs per row (medians).")
EOF
