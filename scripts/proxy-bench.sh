#!/usr/bin/env bash
# The proxy's cost, measured in one run: two nodes (n1 on 127.0.0.2, n2 on 127.0.0.3, each on
# its own data dir) behind nginx (deploy/nginx.conf) on 127.0.0.1, and `stablehand load` with
# exec `true`, straight to node n1 and through the proxy, alternating, in both protocol eras:
#   1 client (latency: p50) and 64 clients (throughput), AB_SECS seconds each, PB_ROUNDS rounds.
# Prints one line per run and the medians per (target, era, clients).
#
#   scripts/proxy-bench.sh [BIN]          # BIN defaults to this tree's release build
# Needs nginx (scripts/test.sh installs it). Knobs: PB_ROUNDS (3), PB_SECS (10).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/serve_lib.sh
source scripts/serve_lib.sh

if [[ -z "${1:-}" ]]; then
    cargo build --release --locked --bin stablehand >&2
fi
BIN="${1:-target/release/stablehand}"
ROUNDS="${PB_ROUNDS:-3}"
SECS="${PB_SECS:-10}"
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
[[ -x "$NGINX" ]] || die "nginx is needed (apt-get install nginx-light)"

WORK="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# A free port on ADDR.
port_on() {
    python3 -c 'import socket,sys; s = socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1]); s.close()' "$1"
}

start_node() { # NAME ADDR PORT
    local name=$1 addr=$2 port=$3
    mkdir -p "$WORK/$name"
    printf '[http]\nallowed_hosts = ["127.0.0.1", "%s"]\n[runtime]\nmax_sessions = 2000\n' "$addr" >"$WORK/$name.toml"
    "$BIN" serve --http "$addr:$port" --node-id "$name" --data-dir "$WORK/$name" \
        --config "$WORK/$name.toml" --allow-unauthenticated 2>"$WORK/$name.log" &
    pids+=($!)
    local i
    for ((i = 0; i < 300; i++)); do
        (exec 3<>"/dev/tcp/$addr/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    die "node $name did not start: $(tail -n 5 "$WORK/$name.log")"
}

P1=$(port_on 127.0.0.2)
P2=$(port_on 127.0.0.3)
PX=$(port_on 127.0.0.1)
start_node n1 127.0.0.2 "$P1"
start_node n2 127.0.0.3 "$P2"

mkdir -p "$WORK/nginx/logs"
cp deploy/nginx.conf "$WORK/nginx/nginx.conf"
sed -i "s/listen [0-9.:]*8080[^;]*;/listen 127.0.0.1:$PX;/; s/listen 8080[^;]*;/listen 127.0.0.1:$PX;/" "$WORK/nginx/nginx.conf"
grep -q "127.0.0.1:$PX" "$WORK/nginx/nginx.conf" || die "could not set the listen address in deploy/nginx.conf"
cat >"$WORK/nginx/stablehand-nodes.conf" <<EOF
map \$sh_node \$sh_node_upstream {
    n1 stablehand_n1;
    n2 stablehand_n2;
    default "";
}
map \$sh_node \$sh_pool_upstream {
    default stablehand_pool;
}
upstream stablehand_pool {
    least_conn;
    server 127.0.0.2:$P1 max_fails=1 fail_timeout=5s;
    server 127.0.0.3:$P2 max_fails=1 fail_timeout=5s;
    keepalive 128;
}
upstream stablehand_n1 { server 127.0.0.2:$P1; keepalive 128; }
upstream stablehand_n2 { server 127.0.0.3:$P2; keepalive 128; }
EOF
user=""
[[ "$(id -u)" == 0 ]] && user="user root;"
"$NGINX" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" -e stderr \
    -g "daemon off; pid $WORK/nginx/nginx.pid; $user" 2>"$WORK/nginx.log" &
pids+=($!)
for ((i = 0; i < 300; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PX") 2>/dev/null && break
    sleep 0.1
done

DIRECT="http://127.0.0.2:$P1/mcp"
PROXY="http://127.0.0.1:$PX/mcp"
results="$WORK/results"
: >"$results"
run() { # TARGET-NAME URL PROTOCOL CLIENTS
    local out
    out=$("$BIN" load --url "$2" --allow-remote --scenario exec --protocol "$3" --clients "$4" \
        --duration "${SECS}s" --warmup 2s --json)
    python3 - "$1" "$3" "$4" "$out" >>"$results" <<'PY'
import json, sys
name, proto, clients, out = sys.argv[1:]
r = json.loads(out)
errors = sum(r["errors"].values())
nodes = ",".join(f"{k}:{v}" for k, v in sorted(r.get("sessions_by_node", {}).items()))
print(f"{name} {proto} {clients} {r['throughput_per_s']:.0f} {r['latency_us']['p50']:.0f} {errors} {nodes}")
PY
    tail -n 1 "$results" >&2
}

echo "# target protocol clients ops/s p50_us errors sessions_by_node" >&2
for ((round = 1; round <= ROUNDS; round++)); do
    for proto in 2026-07-28 handshake; do
        for clients in 1 64; do
            run direct "$DIRECT" "$proto" "$clients"
            run proxy "$PROXY" "$proto" "$clients"
        done
    done
done

python3 - "$results" <<'PY'
import statistics, sys
from collections import defaultdict
rows = defaultdict(list)
for line in open(sys.argv[1]):
    name, proto, clients, tput, p50, errors, *_ = line.split()
    rows[(proto, int(clients), name)].append((float(tput), float(p50), int(errors)))
print(f"{'protocol':10} {'clients':>7} {'direct ops/s':>13} {'proxy ops/s':>12} {'ratio':>6} {'direct p50':>11} {'proxy p50':>10} {'errors':>6}")
for proto in ("2026-07-28", "handshake"):
    for clients in (1, 64):
        d, p = rows[(proto, clients, "direct")], rows[(proto, clients, "proxy")]
        if not d or not p:
            continue
        dt, pt = statistics.median(x[0] for x in d), statistics.median(x[0] for x in p)
        dl, pl = statistics.median(x[1] for x in d), statistics.median(x[1] for x in p)
        errors = sum(x[2] for x in d + p)
        print(f"{proto:10} {clients:>7} {dt:>13.0f} {pt:>12.0f} {pt / dt:>6.2f} {dl:>9.0f}us {pl:>8.0f}us {errors:>6}")
PY
