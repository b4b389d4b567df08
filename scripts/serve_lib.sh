# Helpers shared by the scripts that start a server (sourced, not run).

# die MESSAGE...: prints "SCRIPT: MESSAGE" on stderr and exits 1.
die() {
    echo "${0##*/}: $*" >&2
    exit 1
}

# A free loopback port: bind port 0, note the port, close; the server binds it right after.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_accepting PORT PID LOG: waits (30 s at most) until the server PID accepts connections
# on PORT; dies with the tail of LOG if it exits first.
wait_accepting() {
    local port=$1 pid=$2 log=$3 i
    for ((i = 0; ; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$log" >&2 || true
            die "stablehand serve exited before accepting connections"
        fi
        ((i < 300)) || die "stablehand serve did not accept connections on port $port within 30 s"
        sleep 0.1
    done
}
