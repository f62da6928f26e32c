#!/usr/bin/python3
"""Craft VRRP / CARP / junk packets for vipd's hostile-packet and checksum tests.

Run ONLY inside a test namespace (the harness does: `ip netns exec <rogue ns> python3 ...`).
Frames are built with scapy (Ethernet + IPv4, IPv4 checksum by scapy) around a VRRP payload
built by hand (so that every field, the checksum form and the length can be wrong on purpose),
then sent with an AF_PACKET socket in a bounded loop (fast enough for a 50,000-packet flood).

Cases (--case):
  valid          well-formed VRRPv3 advert (pseudo-header checksum, as keepalived)
  nopseudo       well-formed VRRPv3 advert, checksum WITHOUT the IPv4 pseudo-header (RFC 9568)
  v2             well-formed VRRPv2 advert (auth type 0), interval --v2-interval seconds
  truncated      the first 6 bytes of a VRRPv3 advert
  bad_version    version 5
  bad_type       type 2
  count_overflow Count IPvX Addrs = 8 while one address follows
  bad_checksum   checksum off by one
  ttl254         valid advert sent with TTL 254 (use --prio 255 for the brief's case)
  interval0      Max Adver Int = 0 (checksum correct)
  carp           36-byte CARP advert, first byte 0x21
  random         random bytes (8..64) with IP protocol 112
All cases take --vrid, --prio, --interval-cs, --ttl (default 255; ttl254 forces 254), --count,
--gap (seconds between packets; 0 = as fast as possible), --duration (stop after that many
seconds whatever --count says).
Prints one line: `sent N packets in S s (case C)`.
"""

import argparse
import os
import random
import socket
import struct
import sys
import time

from scapy.all import Ether, IP, Raw  # noqa: E402

VRRP_GROUP = "224.0.0.18"
VRRP_GROUP_MAC = "01:00:5e:00:00:12"


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def pseudo(src: str, dst: str, length: int) -> bytes:
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 112, length)


def v3(vrid, prio, interval_cs, addrs, src, dst, form="pseudo", version=3, vtype=1, count=None):
    """VRRPv3 advert bytes with a correct checksum in `form` ('pseudo' or 'plain')."""
    n = len(addrs) if count is None else count
    body = struct.pack(
        "!BBBBH H",
        (version << 4) | vtype,
        vrid,
        prio,
        n,
        interval_cs & 0x0FFF,
        0,
    )
    body += b"".join(socket.inet_aton(a) for a in addrs)
    if form == "pseudo":
        c = csum(pseudo(src, dst, len(body)) + body)
    else:
        c = csum(body)
    return body[:6] + struct.pack("!H", c) + body[8:]


def v2(vrid, prio, interval_s, addrs):
    body = struct.pack("!BBBBBBH", (2 << 4) | 1, vrid, prio, len(addrs), 0, interval_s, 0)
    body += b"".join(socket.inet_aton(a) for a in addrs)
    body += b"\0" * 8
    c = csum(body)
    return body[:6] + struct.pack("!H", c) + body[8:]


def carp(vhid):
    # CARP (ucarp/OpenBSD): version 2, type 1 -> first byte 0x21; 36 bytes in all:
    # ver/type, vhid, advskew, authlen, demote, advbase, cksum, counter (8), HMAC (20).
    body = struct.pack("!BBBBBBH", 0x21, vhid, 0, 7, 0, 1, 0) + os.urandom(8) + os.urandom(20)
    c = csum(body)
    return body[:6] + struct.pack("!H", c) + body[8:]


def payload_for(a, rnd):
    src, dst = a.src, a.dst
    addrs = [a.vip]
    if a.case == "valid" or a.case == "ttl254":
        return v3(a.vrid, a.prio, a.interval_cs, addrs, src, dst)
    if a.case == "nopseudo":
        return v3(a.vrid, a.prio, a.interval_cs, addrs, src, dst, form="plain")
    if a.case == "v2":
        return v2(a.vrid, a.prio, a.v2_interval, addrs)
    if a.case == "truncated":
        return v3(a.vrid, a.prio, a.interval_cs, addrs, src, dst)[:6]
    if a.case == "bad_version":
        return v3(a.vrid, a.prio, a.interval_cs, addrs, src, dst, version=5)
    if a.case == "bad_type":
        return v3(a.vrid, a.prio, a.interval_cs, addrs, src, dst, vtype=2)
    if a.case == "count_overflow":
        return v3(a.vrid, a.prio, a.interval_cs, addrs, src, dst, count=8)
    if a.case == "bad_checksum":
        p = bytearray(v3(a.vrid, a.prio, a.interval_cs, addrs, src, dst))
        c = struct.unpack("!H", p[6:8])[0]
        p[6:8] = struct.pack("!H", (c + 1) & 0xFFFF)
        return bytes(p)
    if a.case == "interval0":
        return v3(a.vrid, a.prio, 0, addrs, src, dst)
    if a.case == "carp":
        return carp(a.vrid)
    if a.case == "random":
        return bytes(rnd.getrandbits(8) for _ in range(rnd.randint(8, 64)))
    raise SystemExit("unknown case %r" % a.case)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iface", default="eth0")
    ap.add_argument("--case", required=True)
    ap.add_argument("--src", required=True)
    ap.add_argument("--dst", default=VRRP_GROUP)
    ap.add_argument("--dmac", default=VRRP_GROUP_MAC)
    ap.add_argument("--vip", default="192.0.2.100")
    ap.add_argument("--vrid", type=int, default=51)
    ap.add_argument("--prio", type=int, default=200)
    ap.add_argument("--interval-cs", type=int, default=10)
    ap.add_argument("--v2-interval", type=int, default=1)
    ap.add_argument("--ttl", type=int, default=255)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--gap", type=float, default=0.0)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.count < 0 or a.count > 1_000_000:
        raise SystemExit("count out of range")
    ttl = 254 if a.case == "ttl254" else a.ttl
    rnd = random.Random(a.seed)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    smac = open("/sys/class/net/%s/address" % a.iface).read().strip()
    # The payload is the same for every packet except for random/carp: build once when we can.
    fixed = a.case not in ("random", "carp")
    frame = None
    t0 = time.monotonic()
    sent = 0
    for i in range(a.count):
        if time.monotonic() - t0 > a.duration:
            break
        if frame is None or not fixed:
            pl = payload_for(a, rnd)
            pkt = Ether(src=smac, dst=a.dmac) / IP(src=a.src, dst=a.dst, ttl=ttl, proto=112, tos=0xC0) / Raw(pl)
            frame = bytes(pkt)
        try:
            s.send(frame)
        except BlockingIOError:
            time.sleep(0.001)
            s.send(frame)
        except OSError as e:  # ENOBUFS under a flood: back off briefly, retry once
            time.sleep(0.002)
            try:
                s.send(frame)
            except OSError:
                print("send failed: %s" % e, file=sys.stderr)
                continue
        sent += 1
        if a.gap > 0:
            time.sleep(a.gap)
    print("sent %d packets in %.3f s (case %s)" % (sent, time.monotonic() - t0, a.case))


if __name__ == "__main__":
    main()
