#!/usr/bin/env bash
# Failover benchmark, vipd against keepalived: client-side outages, resources, scale.
# Needs root (it builds network namespaces; nothing touches the machine's own interfaces):
# run it from a root shell, or as a user with sudo (it builds as you and runs only the
# scenario runner and setup.sh through sudo).
#
#   integration/bench/run.sh                 # full run: 5 runs x 5 scenarios x 3 intervals
#   integration/bench/run.sh --quick         # smoke run (1 run, 100ms and 10ms, 5 s idle)
#   integration/bench/run.sh --runs 3 --idle-secs 20 --save
#   integration/bench/run.sh --quick --pictures   # also draw the PNGs
#
# The runner is the example `failover-scenarios` (integration/bench/failover/main.rs):
# it builds the LAN in namespaces, starts real agents and breaks things; it is not a
# micro-benchmark, so it lives here and not under benches/.
# Options (passed to the runner): --runs N, --quick, --idle-secs S,
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
    if ! command -v sudo >/dev/null; then
        echo "run.sh: needs root (network namespaces) and sudo is not installed: run it from a root shell" >&2
        exit 1
    fi
    # Build as the calling user; only the runner (and setup.sh) run as root.
    host=$(rustc -vV | sed -n 's/^host: //p')
    export "CARGO_TARGET_$(echo "$host" | tr 'a-z-' 'A-Z_')_RUNNER=$PWD/integration/as-root.sh"
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
    integration/as-root.sh rm -rf "$records"
    args+=(--records "$records")
fi
integration/as-root.sh integration/setup.sh
# The agents under test (vipd, vipctl), the probe/responder helper and the runner.
cargo build --release --bins --example vipnet --example failover-scenarios
release="${CARGO_TARGET_DIR:-$PWD/target}/release"
export VIPNET_BIN="$release/examples/vipnet" VIPD_BIN="$release/vipd" VIPCTL_BIN="$release/vipctl"
if [ "$save" -eq 1 ]; then
    . integration/bench/results-file.sh
    out="$(results_file "results-$(date -u +%Y-%m-%d)")"
    {
        echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ)  $(uname -r)  $(nproc) CPUs  load: $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "# git $(git rev-parse --short HEAD 2>/dev/null || echo '?')  args: ${args[*]:-}"
    } > "$out"
    cargo run --release --example failover-scenarios -- "${args[@]}" 2>&1 | grep --line-buffered -v '^\s*\(Compiling\|Finished\|Running\)' | tee -a "$out"
    echo "saved to $out"
else
    cargo run --release --example failover-scenarios -- "${args[@]}"
fi
if [ "$pictures" -eq 1 ]; then
    # Debian's python3, which has python3-matplotlib (a python3 earlier on PATH, such as
    # pyenv's, may not).
    py=/usr/bin/python3
    [ -x "$py" ] || py=python3
    "$py" integration/bench/plot.py "$records" integration/bench/pictures
fi
