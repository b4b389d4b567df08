#!/usr/bin/env bash
# Scale runs: stablehand serve --http under stablehand load, each run on a fresh server.
#   shells   1,000 live shell sessions (64 clients x 16 sessions each), exec `true`
#   cats     10,000 live `cat` process sessions (64 clients x 157 = 10,048), exec one line
#   clients  200 HTTP clients at once, each exec `true` on its own shell, for 60 s
# While each run lasts, the server's VmRSS, thread count and child processes are sampled every
# 200 ms from /proc. Results go to ${CARGO_TARGET_DIR:-target}/scale/; then
# scripts/scale_report.py writes the scale section of BENCHMARKS.md (between the
# scale:begin/end markers).
#
# Run from anywhere: scripts/scale.sh
# 10,000 sessions need about 42,000 open files (4 per session: 3 pipes and a pidfd). The script
# raises the soft limit to the hard one, and the hard one when it may (CAP_SYS_RESOURCE); under
# a lower hard limit the cats run holds as many sessions as fit, and the report says so.
# Knobs: SCALE_SECS (seconds measured by the shells and cats runs, default 30),
# SCALE_CLIENTS_SECS (the 200-client run, default 60), SCALE_RUNS (which runs, default
# "shells cats clients"), CARGO_TARGET_DIR (default target).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/serve_lib.sh
source scripts/serve_lib.sh

SECS="${SCALE_SECS:-30}"
CLIENTS_SECS="${SCALE_CLIENTS_SECS:-60}"
RUNS="${SCALE_RUNS:-shells cats clients}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
OUT="$CARGO_TARGET_DIR/scale"
MAX_SESSIONS=11000

section() { printf '\n==== %s ====\n' "$*" >&2; }

command_line="scripts/scale.sh"
for knob in SCALE_RUNS SCALE_CLIENTS_SECS SCALE_SECS; do
    if [[ -n "${!knob:-}" ]]; then
        command_line="$knob=\"${!knob}\" $command_line"
    fi
done

section "build (release)"
cargo build --release --locked --bin stablehand
BIN="$CARGO_TARGET_DIR/release/stablehand"
[[ -x "$BIN" ]] || die "built binary not found at $BIN"

section "limits"
# Each session holds 4 descriptors (stdin, stdout and stderr pipes, a pidfd); the rest is the
# server's own (connections, store, reactors).
FDS_PER_SESSION=4
RESERVE=2048
need=$((MAX_SESSIONS * FDS_PER_SESSION + RESERVE))
if (($(ulimit -Hn) < need)); then
    ulimit -Hn "$need" 2>/dev/null ||
        echo "scale.sh: the hard open-file limit is $(ulimit -Hn) and cannot be raised here (that needs CAP_SYS_RESOURCE); 10,000 sessions need $need" >&2
fi
ulimit -Sn "$(ulimit -Hn)"
NOFILE=$(ulimit -Hn)
# Sessions per client of the cats run: 157 (10,048 sessions), or as many as the limit allows.
CATS_PER=$(((NOFILE - RESERVE) / FDS_PER_SESSION / 64))
((CATS_PER > 157)) && CATS_PER=157
((CATS_PER >= 16)) || die "the open-file limit ($NOFILE) is too low even for 1,000 sessions"
if ((CATS_PER < 157)); then
    echo "scale.sh: the cats run holds $((CATS_PER * 64)) sessions instead of 10,048 (open-file limit $NOFILE)" >&2
fi
pid_max=$(cat /proc/sys/kernel/pid_max)
((pid_max > MAX_SESSIONS + 2000)) || die "kernel.pid_max is $pid_max; 10,000 sessions need more"
echo "open files: soft $(ulimit -Sn), hard $NOFILE; pid_max $pid_max" >&2

mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.tsv "$OUT"/*.log
cat >"$OUT/config.toml" <<EOF
[runtime]
max_sessions = $MAX_SESSIONS
EOF

python3 - "$OUT/meta.json" "$command_line" "$NOFILE" "$FDS_PER_SESSION" <<'EOF'
import datetime, json, os, subprocess, sys
path, command, nofile, fds_per_session = sys.argv[1:]
def run(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""
model = next((l.split(":", 1)[1].strip() for l in run("lscpu").splitlines()
              if l.startswith("Model name")), "")
mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
json.dump({
    "command": command,
    "cpu": model,
    "cores": os.cpu_count(),
    "mem_kib": int(mem),
    "kernel": run("uname", "-r"),
    "bash": run("bash", "--version").splitlines()[0] if run("bash", "--version") else "",
    "commit": run("git", "rev-parse", "--short", "HEAD")
              + (" with uncommitted changes" if run("git", "status", "--porcelain") else ""),
    "started_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
    "loadavg_start": open("/proc/loadavg").read().strip(),
    "nofile_hard": int(nofile),
    "fds_per_session": int(fds_per_session),
}, open(path, "w"), indent=1)
EOF

serve_pid=""
sampler_pid=""
stop_all() {
    if [[ -n "$sampler_pid" ]]; then
        kill "$sampler_pid" 2>/dev/null || true
        wait "$sampler_pid" 2>/dev/null || true
    fi
    if [[ -n "$serve_pid" ]] && kill -0 "$serve_pid" 2>/dev/null; then
        kill -TERM "$serve_pid" 2>/dev/null || true
        wait "$serve_pid" 2>/dev/null || true
    fi
    sampler_pid=""
    serve_pid=""
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# VmRSS (KiB), threads and child processes of $1, one line per 200 ms:
# "epoch_secs rss_kib threads children".
sample() {
    local pid=$1 rss threads kids
    while [[ -r /proc/$pid/status ]]; do
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || break
        threads=$(awk '/^Threads:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || break
        kids=$(cat /proc/"$pid"/task/*/children 2>/dev/null | wc -w)
        printf '%s %s %s %s\n' "$EPOCHREALTIME" "$rss" "$threads" "$kids"
        sleep 0.2
    done
}

# run NAME CLIENTS SESSIONS_PER_CLIENT SECS CREATE_ARGS COMMAND
run() {
    local name=$1 clients=$2 per=$3 secs=$4 create=$5 command=$6 port
    section "$name: $clients clients x $per sessions, ${secs}s"
    port="$(free_port)"
    "$BIN" serve --http "127.0.0.1:$port" --in-memory --config "$OUT/config.toml" \
        </dev/null 2>"$OUT/$name.server.log" &
    serve_pid=$!
    wait_accepting "$port" "$serve_pid" "$OUT/$name.server.log"
    sleep 1
    awk '/^VmRSS:/ {print $2}' "/proc/$serve_pid/status" >"$OUT/$name.rss_before"
    sample "$serve_pid" >"$OUT/$name.samples.tsv" &
    sampler_pid=$!
    local started ended
    started=$EPOCHREALTIME
    "$BIN" load --url "http://127.0.0.1:$port/mcp" --scenario exec --command "$command" \
        --clients "$clients" --sessions-per-client "$per" --create-args "$create" \
        --duration "${secs}s" --warmup 2s --json >"$OUT/$name.json" ||
        echo "scale.sh: the load run $name reported failures (see $OUT/$name.json)" >&2
    ended=$EPOCHREALTIME
    stop_all
    python3 - "$OUT/$name.json" "$clients" "$per" "$started" "$ended" "$OUT/$name.rss_before" <<'EOF'
import json, sys
path, clients, per, started, ended, before = sys.argv[1:]
d = json.load(open(path))
d["sessions"] = int(clients) * int(per)
d["started"], d["ended"] = float(started), float(ended)
d["rss_before_kib"] = int(open(before).read().strip() or 0)
json.dump(d, open(path, "w"), indent=1)
lat = d["latency_us"]
print(f"  {d['ok']:,} ok, errors {d['errors'] or 0}, {d['throughput_per_s']:,.0f}/s, "
      f"p50 {lat['p50']:,.0f} µs, p99 {lat['p99']:,.0f} µs", file=sys.stderr)
EOF
}

for r in $RUNS; do
    case "$r" in
    shells) run shells 64 16 "$SECS" '{}' true ;;
    cats) run cats 64 "$CATS_PER" "$SECS" '{"kind":"process","command":["cat"]}' ping ;;
    clients) run clients 200 1 "$CLIENTS_SECS" '{}' true ;;
    *) die "unknown run '$r' (shells, cats, clients)" ;;
    esac
done

section "report"
python3 scripts/scale_report.py "$OUT"
