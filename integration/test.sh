#!/usr/bin/env bash
# The whole test suite: codec, router, simulation, config, control, health checks,
# and (as root) the network-namespace tests against real kernels and keepalived.
#
#   sudo integration/test.sh            # everything
#   integration/test.sh                 # as a user: namespace tests skip themselves
#
# With VIPD_REQUIRE_NETNS=1 (CI sets it) a namespace test that cannot run fails.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then
    integration/setup.sh
fi
if [ "${CI:-}" = "true" ]; then
    export VIPD_REQUIRE_NETNS=1
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --locked --no-fail-fast "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
# One summary over every test binary, as the last lines.
awk '/^test result:/ { p += $4; f += $6; i += $8; b += 1 }
     END { printf "\nsummary: %d passed, %d failed, %d ignored in %d test binaries\n", p, f, i, b }' \
    "$log" | sed 's/;//g'
exit "$rc"
