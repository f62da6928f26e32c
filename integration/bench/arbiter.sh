#!/usr/bin/env bash
# Arbiter benchmark (benches/arbiter.rs): split brain with and without the etcd lease
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
# The probe/responder helper is an example; cargo bench does not build examples.
cargo build --release --example vipnet
if [ -n "$save" ]; then
    out="integration/bench/results-arbiter-$(date -u +%Y-%m-%d).txt"
    echo "# git $(git rev-parse --short HEAD), $(date -u +%FT%TZ)" > "$out"
    cargo bench --bench arbiter -- "${args[@]}" 2>&1 | grep --line-buffered -v '^\s*\(Compiling\|Finished\|Running\)' | tee -a "$out"
else
    cargo bench --bench arbiter -- "${args[@]}"
fi
