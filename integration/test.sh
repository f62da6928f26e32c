#!/usr/bin/env bash
# The whole test suite: codec, router, simulation, config, control, health checks,
# monitoring files (promtool), and the network-namespace tests against real kernels,
# keepalived and Prometheus.
#
#   integration/test.sh                 # from a root shell, or as a user with sudo
#   integration/test.sh --test operate  # extra arguments go to cargo test
#
# As root it installs what it needs (integration/setup.sh) and runs cargo test. As a
# user, cargo (and the build) runs as you and only the test binaries run as root,
# through sudo (integration/as-root.sh as cargo's test runner); `sudo` may ask for your
# password once. Without sudo, or with VIPD_NO_ROOT=1, everything that needs no root
# runs and the namespace tests say they skipped. With VIPD_REQUIRE_NETNS=1 (CI sets it)
# a namespace test that cannot run fails.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${CI:-}" = "true" ]; then
    export VIPD_REQUIRE_NETNS=1
fi
if [ "$(id -u)" -eq 0 ]; then
    integration/setup.sh
elif [ "${VIPD_NO_ROOT:-0}" != 1 ] && command -v sudo >/dev/null; then
    echo "test.sh: not root: installing what the tests need and running the test binaries with sudo" >&2
    sudo integration/setup.sh
    host=$(rustc -vV | sed -n 's/^host: //p')
    runner_var="CARGO_TARGET_$(echo "$host" | tr 'a-z-' 'A-Z_')_RUNNER"
    export "$runner_var=$PWD/integration/as-root.sh"
else
    echo "test.sh: not root and no sudo: the namespace tests will skip" >&2
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
