#!/usr/bin/env bash
# The vipd demo: two load balancers (lb1 priority 150, lb2 priority 100) share the virtual IP
# 192.0.2.100; a client talks to it every 2 ms while lb1 crashes, is repaired and takes the
# VIP back, and is finally stopped gracefully. Numbered steps, measured client outages.
#
#   integration/demo.sh        # from a root shell, or as a user with sudo
#
# It needs root to create network namespaces. As a user it builds as you and runs only
# the set-up (integration/setup.sh) and the demo itself through sudo.
# Everything runs inside network namespaces the demo creates (and removes again, also on
# Ctrl-C); only documentation addresses are used; the machine's own interfaces are untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
    cat >&2 <<'MSG'
demo: needs root. It creates network namespaces (a switch, lb1, lb2 and a client), runs vipd
inside them and installs the tools it needs (iproute2, nftables, ...) with integration/setup.sh.
Nothing touches this machine's own interfaces. sudo is not installed: run it from a root
shell (for example `su -c integration/demo.sh`, or log in as root).
MSG
    exit 1
fi
integration/as-root.sh integration/setup.sh
target=${CARGO_TARGET_DIR:-target}
echo "demo: building vipd, vipctl and the demo (release)..."
cargo build --release --examples --bins
exec integration/as-root.sh "$target/release/examples/demo" "$@"
