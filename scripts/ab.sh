#!/usr/bin/env bash
# Two builds side by side in one run, through MCP HTTP on an on-disk store (what a user runs):
#   exec `true` with 1 client (latency), exec `true` with 64 clients (throughput), the same
#   with durability = "always" (64 clients), and 100,000 create + end cycles (16 clients) with
#   the server's RSS and descriptors before, right after, and 30 s after.
# Rounds alternate A, B, A, B... so drift on a shared machine hits both; medians are reported.
#
#   scripts/ab.sh OLD_BIN [NEW_BIN]        # NEW_BIN defaults to this tree's release build
# Knobs: AB_ROUNDS (default 3), AB_SECS (seconds per load run, default 10), AB_CHURN (create +
# end cycles, default 100000; 0 skips), AB_ONLY (a space-separated subset of: p50 tput durable
# churn).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/serve_lib.sh
source scripts/serve_lib.sh

OLD="${1:-}"
[[ -x "$OLD" ]] || die "usage: scripts/ab.sh OLD_BIN [NEW_BIN]"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
if [[ -z "${2:-}" ]]; then
    cargo build --release --locked --bin stablehand >&2
fi
NEW="${2:-$CARGO_TARGET_DIR/release/stablehand}"
ROUNDS="${AB_ROUNDS:-3}"
SECS="${AB_SECS:-10}"
CHURN="${AB_CHURN:-100000}"
ONLY="${AB_ONLY:-p50 tput durable churn}"
OUT="$CARGO_TARGET_DIR/ab"
mkdir -p "$OUT"
LOAD="$NEW"

# serve BIN CONFIG_TEXT: starts a server on a fresh data dir; sets PORT, PID, DATA.
serve() {
    local bin=$1 config=$2
    DATA="$(mktemp -d "${TMPDIR:-/tmp}/stablehand-ab.XXXXXX")"
    printf '%s\n' "$config" >"$DATA.toml"
    PORT="$(free_port)"
    RUST_LOG=warn "$bin" serve --http "127.0.0.1:$PORT" --data-dir "$DATA" --config "$DATA.toml" \
        2>"$OUT/server.log" &
    PID=$!
    wait_accepting "$PORT" "$PID" "$OUT/server.log"
}

stop() {
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    rm -rf "$DATA" "$DATA.toml"
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$PID/status"; }
fds() { find "/proc/$PID/fd" -mindepth 1 -maxdepth 1 | wc -l; }

# run NAME BIN CONFIG CLIENTS: one exec load run; appends "NAME p50_us ops_per_s" to results.
run() {
    local name=$1 bin=$2 config=$3 clients=$4 json
    serve "$bin" "$config"
    json="$("$LOAD" load --url "http://127.0.0.1:$PORT/mcp" --scenario exec --clients "$clients" \
        --warmup 2s --duration "${SECS}s" --json)"
    stop
    python3 -c 'import json,sys; r=json.loads(sys.argv[2]); p=[x["us"] for x in r["percentiles"] if x["p"]==50.0][0]; print(sys.argv[1], p, r["throughput_per_s"], r["ops"]-r["ok"])' \
        "$name" "$json" >>"$OUT/results.txt"
}

churn() {
    local name=$1 bin=$2 before after settled fd0 fd1
    serve "$bin" ""
    before=$(rss_kb)
    fd0=$(fds)
    "$LOAD" load --url "http://127.0.0.1:$PORT/mcp" --scenario create-end --clients 16 \
        --count "$CHURN" --timeout 120s --json >"$OUT/churn-$name.json"
    after=$(rss_kb)
    fd1=$(fds)
    sleep 30 # memory the allocator returns after its decay time
    settled=$(rss_kb)
    echo "churn-$name $before $after $settled $fd0 $fd1 $(($(zombies) + 0))" >>"$OUT/churn.txt"
    stop
}

# Zombie children of the server.
zombies() {
    local n=0 p
    for p in $(cat "/proc/$PID/task/"*/children 2>/dev/null); do
        [[ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" == Z ]] && n=$((n + 1))
    done
    echo $n
}

: >"$OUT/results.txt"
: >"$OUT/churn.txt"
for ((r = 1; r <= ROUNDS; r++)); do
    for side in old new; do
        bin=$OLD
        [[ $side == new ]] && bin=$NEW
        echo "ab.sh: round $r, $side" >&2
        [[ " $ONLY " == *" p50 "* ]] && run "p50-$side" "$bin" "" 1
        [[ " $ONLY " == *" tput "* ]] && run "tput-$side" "$bin" "" 64
        [[ " $ONLY " == *" durable "* ]] && run "durable-$side" "$bin" $'[store]\ndurability = "always"' 64
    done
done
if [[ " $ONLY " == *" churn "* && "$CHURN" != 0 ]]; then
    for side in old new; do
        bin=$OLD
        [[ $side == new ]] && bin=$NEW
        echo "ab.sh: churn, $side" >&2
        churn "$side" "$bin"
    done
fi

python3 - "$OUT" "$OLD" "$NEW" <<'EOF'
import statistics, sys, os
out, old, new = sys.argv[1:4]
rows = {}
for line in open(os.path.join(out, "results.txt")):
    name, p50, tput, errors = line.split()
    rows.setdefault(name, []).append((float(p50), float(tput), int(errors)))
def med(name, i):
    v = [x[i] for x in rows.get(name, [])]
    return statistics.median(v) if v else None
print(f"A = {old}\nB = {new}\n")
print("| figure | A (old) | B (new) | B / A |\n|---|---|---|---|")
for key, label, i, unit in [("p50", "exec `true`, 1 client, p50", 0, "µs"),
                            ("tput", "exec `true`, 64 clients", 1, "/s"),
                            ("durable", "exec `true`, 64 clients, durability always", 1, "/s")]:
    a, b = med(f"{key}-old", i), med(f"{key}-new", i)
    if a and b:
        n = len(rows[f"{key}-old"])
        print(f"| {label} (median of {n}) | {a:,.0f} {unit} | {b:,.0f} {unit} | {b / a:.2f} |")
errs = {k: sum(x[2] for x in v) for k, v in rows.items() if sum(x[2] for x in v)}
if errs:
    print(f"\nerrors: {errs}")
path = os.path.join(out, "churn.txt")
if os.path.getsize(path):
    print("\n| churn (create + end, 16 clients) | RSS before | right after | 30 s after | growth | descriptors | zombies |")
    print("|---|---|---|---|---|---|---|")
    for line in open(path):
        name, before, after, settled, fd0, fd1, z = line.split()
        before, after, settled = int(before), int(after), int(settled)
        print(f"| {name} | {before/1024:.1f} MB | {after/1024:.1f} MB | {settled/1024:.1f} MB | "
              f"{(settled-before)/1024:+.1f} MB | {fd0} → {fd1} | {z} |")
EOF
