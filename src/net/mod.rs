//! net: the only place that touches the kernel: raw sockets, netlink, packet sockets.
