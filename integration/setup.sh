#!/usr/bin/env bash
# Installs what the namespace tests, the demo and the benchmark need, on Debian, as root.
# Debian's own keepalived and prometheus services are kept from starting: they are only
# ever run by the tests, inside their own network namespaces.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

need=(iproute2 nftables keepalived tshark tcpdump arping python3 python3-scapy procps curl util-linux prometheus python3-matplotlib etcd-server etcd-client protobuf-compiler libprotobuf-dev frr)
missing=()
for p in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages ${missing[*]}; run as root to install them" >&2
    exit 1
fi
# Keep packaged services (keepalived) from starting on install.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
# Belt and braces: never leave a distro keepalived running.
if command -v systemctl >/dev/null && systemctl is-active --quiet keepalived 2>/dev/null; then
    systemctl stop keepalived || true
fi
systemctl disable keepalived >/dev/null 2>&1 || true
# The same for Prometheus (installed for promtool; the tests start their own).
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl stop prometheus || true
fi
systemctl disable prometheus >/dev/null 2>&1 || true
# And etcd (the arbiter tests start their own three-member cluster in namespaces).
if command -v systemctl >/dev/null && systemctl is-active --quiet etcd 2>/dev/null; then
    systemctl stop etcd || true
fi
systemctl disable etcd >/dev/null 2>&1 || true
