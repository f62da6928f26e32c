#!/usr/bin/env bash
# Failover benchmark, vipd against keepalived: client-side outages, resources, scale.
# As root (it builds network namespaces; nothing touches the machine's own interfaces).
#
#   sudo integration/bench/run.sh                 # full run: 5 runs x 5 scenarios x 3 intervals
#   sudo integration/bench/run.sh --quick         # smoke run (1 run, 100ms and 10ms, 5 s idle)
#   sudo integration/bench/run.sh --runs 3 --idle-secs 20 --save
#   sudo integration/bench/run.sh --quick --pictures   # also draw the PNGs
#
# Options (passed to benches/failover.rs): --runs N, --quick, --idle-secs S,
# --intervals 1s,100ms,10ms, --scenarios death,graceful,failback,partition,maintenance,
# --agents vipd,keepalived, --no-resources, --no-scale.
# --save (handled here): also write the output to integration/bench/results-<date>.txt.
# --pictures (handled here): keep what the client saw in every event
# (target/bench-records/) and draw it with plot.py into integration/bench/pictures/
# (needs python3-matplotlib): one PNG per scenario and interval, vipd and keepalived
# side by side from the same run, and summary.png of the outage table.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" -ne 0 ]; then
    echo "run.sh: needs root (network namespaces); run it with sudo" >&2
    exit 1
fi
save=0
pictures=0
args=()
for a in "$@"; do
    case "$a" in
        --save) save=1 ;;
        --pictures) pictures=1 ;;
        *) args+=("$a") ;;
    esac
done
records="${CARGO_TARGET_DIR:-$PWD/target}/bench-records"
if [ "$pictures" -eq 1 ]; then
    rm -rf "$records"
    args+=(--records "$records")
fi
integration/setup.sh
# The probe/responder helper is an example; cargo bench does not build examples.
cargo build --release --example vipnet
export VIPNET_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/examples/vipnet"
if [ "$save" -eq 1 ]; then
    out="integration/bench/results-$(date -u +%Y-%m-%d).txt"
    {
        echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ)  $(uname -r)  $(nproc) CPUs  load: $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "# git $(git rev-parse --short HEAD 2>/dev/null || echo '?')  args: ${args[*]:-}"
    } > "$out"
    cargo bench --bench failover -- "${args[@]}" 2>&1 | grep --line-buffered -v '^\s*\(Compiling\|Finished\|Running\)' | tee -a "$out"
    echo "saved to $out"
else
    cargo bench --bench failover -- "${args[@]}"
fi
if [ "$pictures" -eq 1 ]; then
    python3 integration/bench/plot.py "$records" integration/bench/pictures
fi
