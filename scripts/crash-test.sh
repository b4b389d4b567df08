#!/usr/bin/env bash
# The long crash test: runs the server under create/exec calls with durability = "always",
# SIGKILLs it at a random moment, restarts it and checks that every acknowledged call is in
# the store; CYCLES times (default 1000). Prints the seed, cycles, acknowledged and lost writes.
#
#   scripts/crash-test.sh [CYCLES]
set -euo pipefail
cd "$(dirname "$0")/.."
CYCLES=${1:-1000}
STABLEHAND_CRASH_CYCLES=$CYCLES cargo test --locked --test tests \
    persistence::with_durability_always_acknowledged_work_survives_sigkill \
    -- --exact --nocapture 2>&1 | grep -E "crash test|test result|panicked|lost"
