#!/usr/bin/env bash
# Runs the namespace-harness self-test (needs root), then reports vipd-* namespaces left over
# by test processes that are gone (a harness teardown bug: fails).
set -euo pipefail
cd "$(dirname "$0")/.."
VIPD_REQUIRE_NETNS=1 cargo test --test harness_selftest -- --nocapture "$@"
leftover=0
for ns in $(ip netns list | awk '/^vipd-/ {print $1}'); do
    pid=${ns#vipd-}; pid=${pid%%-*}
    if [ ! -d "/proc/$pid" ]; then
        echo "leftover namespace $ns (pid $pid is gone)" >&2
        leftover=1
    fi
done
exit "$leftover"
