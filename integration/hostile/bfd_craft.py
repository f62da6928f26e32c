#!/usr/bin/python3
"""Hostile BFD Control packets (RFC 5880 §4.1) for vipd's namespace tests.

Usage: bfd_craft.py TARGET CASE COUNT [INTERVAL_MS]

Sends COUNT UDP datagrams to TARGET:3784 from a source port in 49152..65535 (standard
library only). CASE is one of:
  ttl254         a valid-looking Up packet with TTL / hop limit 254 (RFC 5881 §5)
  zero_your_up   state Up with Your Discriminator 0 (RFC 5880 §6.8.6)
  unknown_discr  state Up with a Your Discriminator no session has
  down_from_rogue state Down, Your Discriminator 0, from an address with no session
  truncated      the first 10 bytes of a packet (Length 24 beyond the payload)
  tiny           the first 3 bytes (not even the Length field)
  bad_version    version 2
  zero_mult      Detect Mult 0
  flood          unknown_discr as fast as the socket takes them
Prints the number sent.
"""
import socket
import struct
import sys
import time


def packet(version=1, state=3, mult=3, my=0x1234, your=0, tx=10000, rx=10000):
    b0 = (version << 5) | 0
    b1 = state << 6
    return struct.pack("!BBBBIIIII", b0, b1, mult, 24, my, your, tx, rx, 0)


def main():
    target, case, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    gap = float(sys.argv[4]) / 1000.0 if len(sys.argv) > 4 else 0.001
    v6 = ":" in target
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    ttl = 254 if case == "ttl254" else 255
    if v6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
    else:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
    for port in range(49152 + 777, 65535):
        try:
            s.bind(("::" if v6 else "0.0.0.0", port))
            break
        except OSError:
            continue
    data = {
        "ttl254": packet(state=1, your=0),
        "zero_your_up": packet(state=3, your=0),
        "unknown_discr": packet(state=3, your=0xDEADBEEF),
        "down_from_rogue": packet(state=1, your=0),
        "truncated": packet()[:10],
        "tiny": packet()[:3],
        "bad_version": packet(version=2, state=1),
        "zero_mult": packet(mult=0, state=1),
        "flood": packet(state=3, your=0xDEADBEEF),
    }[case]
    sent = 0
    for _ in range(count):
        try:
            s.sendto(data, (target, 3784))
            sent += 1
        except OSError:
            time.sleep(0.001)
        if case != "flood":
            time.sleep(gap)
    print(sent)


if __name__ == "__main__":
    main()
