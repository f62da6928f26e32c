#!/usr/bin/env bash
# Arbiter scenarios (integration/bench/arbiter/main.rs, the example arbiter-scenarios): split brain with and without the etcd lease
# arbiter beside keepalived, and host-death takeover with the arbiter at TTL 1 s and 2 s.
#
#   sudo integration/bench/arbiter.sh            # 5 runs of each
#   sudo integration/bench/arbiter.sh --runs 10
#   sudo integration/bench/arbiter.sh --quick    # 1 run of each
#   ... --save                                   # also write results-arbiter-<date>.txt
set -euo pipefail
cd "$(dirname "$0")/../.."
save=
args=()
for a in "$@"; do
    if [ "$a" = "--save" ]; then save=1; else args+=("$a"); fi
done
if [ "$(id -u)" -eq 0 ]; then
    integration/setup.sh
fi
# The agents under test (vipd, vipctl), the probe/responder helper and the runner.
cargo build --release --bins --example vipnet --example arbiter-scenarios
release="${CARGO_TARGET_DIR:-$PWD/target}/release"
export VIPNET_BIN="$release/examples/vipnet" VIPD_BIN="$release/vipd" VIPCTL_BIN="$release/vipctl"
if [ -n "$save" ]; then
    . integration/bench/results-file.sh
    out="$(results_file "results-arbiter-$(date -u +%Y-%m-%d)")"
    echo "# git $(git rev-parse --short HEAD), $(date -u +%FT%TZ)" > "$out"
    cargo run --release --example arbiter-scenarios -- "${args[@]}" 2>&1 | grep --line-buffered -v '^\s*\(Compiling\|Finished\|Running\)' | tee -a "$out"
else
    cargo run --release --example arbiter-scenarios -- "${args[@]}"
fi
