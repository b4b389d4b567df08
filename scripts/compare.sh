#!/usr/bin/env bash
# stablehand against its physical baselines, in one run on one machine:
#   - spawn+wait of bash and a bare pipe round trip to a warm bash (cargo bench --bench baselines);
#   - a bare jsonrpsee no-op over loopback HTTP (examples/bare_jsonrpsee.rs, load --protocol raw);
#   - stablehand serve --http --in-memory under `stablehand load`: noop, state, exec `true` and
#     create-end.
# Each result is saved as JSON under ${CARGO_TARGET_DIR:-target}/compare/; then
# scripts/compare_report.py writes the comparison section of BENCHMARKS.md (between the
# compare:begin/end markers) and docs/latency.png.
#
# Run from anywhere: scripts/compare.sh
# Knobs: COMPARE_SECS (seconds per load run, default 10), COMPARE_CLIENTS (clients of the
# throughput runs, default 64), COMPARE_PROTOCOL (protocol of the stablehand runs, default:
# the load command's own), BENCH_SECS (seconds per baseline measurement, default 3),
# CARGO_TARGET_DIR (default target).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/serve_lib.sh
source scripts/serve_lib.sh

SECS="${COMPARE_SECS:-10}"
CLIENTS="${COMPARE_CLIENTS:-64}"
PROTOCOL="${COMPARE_PROTOCOL:-}"
export BENCH_SECS="${BENCH_SECS:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
TARGET="$CARGO_TARGET_DIR"
OUT="$TARGET/compare"
WARMUP=1s
CREATE_END_CLIENTS=16

section() { printf '\n==== %s ====\n' "$*" >&2; }

# The command as run, with the knobs that were set, for the report.
command_line="scripts/compare.sh"
for knob in BENCH_SECS COMPARE_PROTOCOL COMPARE_CLIENTS COMPARE_SECS; do
    if [[ -n "${!knob:-}" && ("$knob" != BENCH_SECS || "$BENCH_SECS" != 3) ]]; then
        command_line="$knob=${!knob} $command_line"
    fi
done

section "python environment (.venv, requirements-bench.txt)"
want="$(sha256sum requirements-bench.txt | cut -d' ' -f1)"
stamp=.venv/.requirements-bench.sha
if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
    rm -f "$stamp"
    .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-bench.txt
    echo "$want" >"$stamp"
    echo "installed requirements-bench.txt" >&2
else
    echo "up to date" >&2
fi
PYTHON="$PWD/.venv/bin/python"

section "build (release)"
cargo build --release --locked --bin stablehand --example bare_jsonrpsee
cargo bench --locked --bench baselines --no-run
BIN="$TARGET/release/stablehand"
BARE="$TARGET/release/examples/bare_jsonrpsee"
[[ -x "$BIN" && -x "$BARE" ]] || die "built binaries not found under $TARGET/release"
"$BIN" load --help >/dev/null 2>&1 || die "$BIN has no 'load' subcommand"

mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.log

# What the report needs to describe the run.
"$PYTHON" - "$OUT/meta.json" "$command_line" "$SECS" "$CLIENTS" "$BENCH_SECS" "$WARMUP" <<'EOF'
import datetime, json, sys
path, command, secs, clients, bench_secs, warmup = sys.argv[1:]
meta = {
    "command": command,
    "secs": float(secs),
    "clients": int(clients),
    "bench_secs": float(bench_secs),
    "warmup": warmup,
    "loadavg_start": open("/proc/loadavg").read().strip(),
    "started_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
}
json.dump(meta, open(path, "w"), indent=1)
EOF

section "baselines: spawn+wait of bash, pipe round trip to a warm bash (${BENCH_SECS}s each)"
cargo bench --locked --bench baselines >"$OUT/baselines.json"
"$PYTHON" - "$OUT/baselines.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for k, s in d.items():
    if "p50_us" not in s:
        continue  # protocol_variants: only with BENCH_VARIANTS, not part of the comparison
    print(f"  {k}: p50 {s['p50_us']:.1f} µs, p99 {s['p99_us']:.1f} µs, {s['per_s']:,.0f}/s (n={s['n']})",
          file=sys.stderr)
EOF

# Servers, ended on any exit.
bare_pid=""
serve_pid=""
stop_servers() {
    local pid
    for pid in $bare_pid $serve_pid; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for pid in $bare_pid $serve_pid; do
        wait "$pid" 2>/dev/null || true
    done
    bare_pid=""
    serve_pid=""
}
trap stop_servers EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

section "servers"
# The bare server serves until its stdin closes, so it runs as a coprocess (its stdin is a pipe
# held open by this script) rather than as a background job (whose stdin is /dev/null).
coproc BARE_PROC { exec "$BARE" --addr 127.0.0.1:0 2>"$OUT/bare_jsonrpsee.log"; }
bare_pid=$BARE_PROC_PID
line=""
read -r -t 30 line <&"${BARE_PROC[0]}" || die "bare_jsonrpsee did not report its address"
[[ "$line" =~ ^listening\ (http://[0-9.]+:[0-9]+/)$ ]] || die "unexpected line from bare_jsonrpsee: $line"
BARE_URL="${BASH_REMATCH[1]}"
echo "bare jsonrpsee: $BARE_URL" >&2

port="$(free_port)"
"$BIN" serve --http "127.0.0.1:$port" --in-memory </dev/null 2>"$OUT/stablehand.log" &
serve_pid=$!
wait_accepting "$port" "$serve_pid" "$OUT/stablehand.log"
URL="http://127.0.0.1:$port/mcp"
echo "stablehand: $URL" >&2

# run_load NAME CLIENTS ARGS...: one `stablehand load` run, saved as $OUT/NAME-cCLIENTS.json.
run_load() {
    local name=$1 clients=$2
    shift 2
    local file="$OUT/$name-c$clients.json"
    section "$name, $clients client(s), ${SECS}s"
    local rc=0
    "$BIN" load "$@" --clients "$clients" --duration "${SECS}s" --warmup "$WARMUP" --json \
        >"$file" || rc=$?
    if ! "$PYTHON" - "$file" "$rc" <<'EOF'; then
import json, sys
path, rc = sys.argv[1], int(sys.argv[2])
try:
    r = json.load(open(path))
except ValueError:
    sys.exit(1)
lat = r.get("latency_us") or {}
errors = sum((r.get("errors") or {}).values())
note = f" (load exited with status {rc})" if rc else ""
print(f"  {r['throughput_per_s']:,.0f} ok/s, p50 {lat.get('p50', 0):.1f} µs, "
      f"p99 {lat.get('p99', 0):.1f} µs, {errors} errors{note}", file=sys.stderr)
EOF
        rm -f "$file"
        die "no JSON report from the $name run with $clients client(s) (exit status $rc)"
    fi
}

ours=(--url "$URL")
if [[ -n "$PROTOCOL" ]]; then
    ours+=(--protocol "$PROTOCOL")
fi
run_load bare-noop 1 --url "$BARE_URL" --protocol raw --scenario noop
run_load bare-noop "$CLIENTS" --url "$BARE_URL" --protocol raw --scenario noop
run_load noop 1 "${ours[@]}" --scenario noop
run_load noop "$CLIENTS" "${ours[@]}" --scenario noop
run_load state 1 "${ours[@]}" --scenario state
run_load state "$CLIENTS" "${ours[@]}" --scenario state
run_load exec 1 "${ours[@]}" --scenario exec --command true
run_load exec "$CLIENTS" "${ours[@]}" --scenario exec --command true
run_load create-end 1 "${ours[@]}" --scenario create-end
run_load create-end "$CREATE_END_CLIENTS" "${ours[@]}" --scenario create-end

section "report"
stop_servers
"$PYTHON" scripts/compare_report.py "$OUT"
echo "results: $OUT" >&2
