//! Wire formats as pure functions over bytes: VRRP v2/v3 adverts, the IPv4 header
//! in front of them on a raw socket, and the announcement frames (gratuitous ARP,
//! unsolicited Neighbour Advertisement) that a new master sends.
//!
//! Nothing here performs I/O. Every decoder accepts any byte string and returns
//! `Ok` or `Err`; none can panic or read out of bounds.

pub mod arp;
pub mod bfd;
pub mod drop;
pub mod ipv4;
pub mod ndp;
pub mod vrrp;

pub use arp::gratuitous_arp;
pub use drop::DropReason;
pub use ipv4::{parse_ipv4, Ipv4Header};
pub use ndp::unsolicited_na;
pub use vrrp::{
    Advert, Centis, ChecksumForm, DecodeError, EncodeError, Family, Version, VrrpPacket,
};
