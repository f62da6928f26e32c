#!/usr/bin/env bash
# Scale benchmark (issue 14), vipd beside keepalived in the same run: many virtual routers
# with many VIPs (198.18.0.0/15, inside the namespaces) on one interface. Figures: decision
# to every VIP added and announced (from a capture on the client), idle CPU and wake-ups of
# master and backup, RSS. Needs root (network namespaces).
#
#   integration/bench/scale.sh                         # 5 runs, 30 s idle, 75x10, 255x8, 1x1@10ms
#   integration/bench/scale.sh --runs 1 --idle-secs 5  # smoke run
#   integration/bench/scale.sh --scenarios 75x10 --agents vipd,keepalived
#   VIPD_BASE_BIN=/tmp/vipd-old integration/bench/scale.sh --agents vipd-base,vipd,keepalived
#   integration/bench/scale.sh --save                  # also write results-scale-<date>.txt
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" -ne 0 ]; then
    echo "scale.sh: needs root (network namespaces): run it from a root shell" >&2
    exit 1
fi
save=0
args=()
for a in "$@"; do
    case "$a" in
        --save) save=1 ;;
        *) args+=("$a") ;;
    esac
done
integration/setup.sh
# The agent under test and the runner (integration/bench/scale/main.rs), in two builds: in
# one, the runner's dev-dependencies would add features to vipd's dependencies (proptest's
# regex-syntax tables) and the vipd measured would be 0.4 MB larger than the one shipped.
cargo build --release --bins
cargo build --release --example scale-scenarios
release="${CARGO_TARGET_DIR:-$PWD/target}/release"
export VIPD_BIN="$release/vipd"
if [ "$save" -eq 1 ]; then
    . integration/bench/results-file.sh
    out="$(results_file "results-scale-$(date -u +%Y-%m-%d)")"
    {
        echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ)  $(uname -r)  $(nproc) CPUs  load: $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "# git $(git rev-parse --short HEAD 2>/dev/null || echo '?')  args: ${args[*]:-}"
    } > "$out"
    "$release/examples/scale-scenarios" "${args[@]}" 2>&1 | grep --line-buffered -v '^\s*\(Compiling\|Finished\|Running\)' | tee -a "$out"
    echo "saved to $out"
else
    "$release/examples/scale-scenarios" "${args[@]}"
fi
