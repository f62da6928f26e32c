#!/usr/bin/env bash
# Runs a command as root: as it is when already root (a root shell, CI), otherwise
# through sudo, passing on the environment variables the tests and the demo read
# (sudo resets the environment). integration/test.sh uses it as cargo's test runner,
# so that cargo itself (and the build) runs as the calling user and only the test
# binaries run as root; integration/demo.sh runs the demo with it.
#
#   integration/as-root.sh COMMAND [ARGS...]
set -euo pipefail
if [ "$(id -u)" -eq 0 ]; then
    exec "$@"
fi
if ! command -v sudo >/dev/null; then
    echo "as-root: $1 needs root and sudo is not installed: run this from a root shell" >&2
    exit 1
fi
vars=()
for v in VIPD_REQUIRE_NETNS VIPD_REQUIRE_PROMTOOL VIPD_KEEP_LOGS VIPNET_BIN VIPD_BIN VIPCTL_BIN \
    CI RUST_BACKTRACE RUST_LOG RUST_TEST_THREADS RUST_TEST_NOCAPTURE; do
    if [ -n "${!v+x}" ]; then
        vars+=("$v=${!v}")
    fi
done
exec sudo env "${vars[@]}" "$@"
