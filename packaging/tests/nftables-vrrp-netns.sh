#!/usr/bin/env bash
# Proves packaging/examples/nftables-vrrp.nft does what docs/security.md says,
# inside two throwaway network namespaces (nothing touches the host's own
# interfaces): a "rogue" namespace sends VRRP adverts with scapy over a veth to
# a "router" namespace that has the ruleset loaded and listens on raw
# protocol-112 sockets.
#
# Expected: from a peer with TTL / hop limit 255 -> delivered; from a non-peer,
# or with TTL 64 -> dropped and counted.
#
# Needs root, iproute2, nftables and python3-scapy. Without root it skips,
# unless VIPD_REQUIRE_NETNS=1 (then a skip is a failure).
set -euo pipefail

skip() {
    if [[ ${VIPD_REQUIRE_NETNS:-0} == 1 ]]; then
        echo "nftables-vrrp-netns: FAIL (required): $*" >&2
        exit 1
    fi
    echo "nftables-vrrp-netns: skipped: $*"
    exit 0
}
[[ $(id -u) -eq 0 ]] || skip "needs root for network namespaces"
py=/usr/bin/python3
for t in ip nft "$py"; do command -v "$t" >/dev/null || skip "$t is not installed"; done
"$py" -c 'import scapy' 2>/dev/null || skip "python3-scapy is not installed"

ruleset=$(cd "$(dirname "$0")/.." && pwd)/examples/nftables-vrrp.nft
prefix=vipd-nft-$$-$RANDOM
rogue=${prefix}-r
router=${prefix}-l
out=$(mktemp)
cleanup() {
    for ns in "$rogue" "$router"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -f "$out"
}
trap cleanup EXIT

ip netns add "$rogue"
ip netns add "$router"
ip -n "$rogue" link add eth0 type veth peer name eth0 netns "$router"
ip -n "$rogue" addr add 192.0.2.66/24 dev eth0
ip -n "$router" addr add 192.0.2.11/24 dev eth0
ip -n "$rogue" link set eth0 up
ip -n "$router" link set eth0 up
for _ in $(seq 50); do # wait for carrier, at most 5 s
    ip -n "$router" link show eth0 | grep -q 'LOWER_UP' && break
    sleep 0.1
done
ip netns exec "$router" nft -f "$ruleset"

# Receiver: raw protocol-112 sockets joined to 224.0.0.18 and ff02::12.
ip netns exec "$router" "$py" -c '
import socket, struct
s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
s4.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
              socket.inet_aton("224.0.0.18") + socket.inet_aton("192.0.2.11"))
s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 112)
s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
              socket.inet_pton(socket.AF_INET6, "ff02::12") + struct.pack("@I", socket.if_nametoindex("eth0")))
print("ready", flush=True)
got = []
for s in (s4, s6):
    s.settimeout(4)
    try:
        while True:
            data, addr = s.recvfrom(2000)
            got.append(addr[0] + (" ttl=%d" % data[8] if s is s4 else ""))
    except socket.timeout:
        pass
for g in sorted(got):
    print("got", g)
' >"$out" &
for _ in $(seq 50); do grep -q ready "$out" && break; sleep 0.1; done

ip netns exec "$rogue" "$py" - <<'PY'
from scapy.all import Ether, IP, IPv6, Raw, conf, sendp
conf.verb = 0
v4 = b"\x31\x33\x96\x01\x00\x64\x00\x00" + bytes([192, 0, 2, 100])
v6 = b"\x31\x33\x96\x01\x00\x64\x00\x00" + bytes(16)
for src, ttl in [("192.0.2.12", 255), ("192.0.2.66", 255), ("192.0.2.12", 64)]:
    sendp(Ether(dst="01:00:5e:00:00:12") / IP(src=src, dst="224.0.0.18", ttl=ttl, proto=112) / Raw(v4), iface="eth0")
for src, hlim in [("fe80::11", 255), ("fe80::66", 255), ("fe80::12", 64)]:
    sendp(Ether(dst="33:33:00:00:00:12") / IPv6(src=src, dst="ff02::12", hlim=hlim, nh=112) / Raw(v6), iface="eth0")
PY
wait

counters=$(ip netns exec "$router" nft list table inet vipd_vrrp)
cat "$out"
echo "$counters" | grep counter
want=$'ready\ngot 192.0.2.12 ttl=255\ngot fe80::11'
[[ $(cat "$out") == "$want" ]] || { echo "nftables-vrrp-netns: FAIL: delivered set differs" >&2; exit 1; }
for c in 'packets 1 .*non-peer \(v4\)' 'packets 1 .*non-peer \(v6\)' 'packets 1 .*TTL != 255' \
    'packets 1 .*hop limit != 255' 'packets 2 .*from a peer'; do
    echo "$counters" | grep -Eq "$c" || { echo "nftables-vrrp-netns: FAIL: no counter matching /$c/" >&2; exit 1; }
done
echo "nftables-vrrp-netns: ok"
