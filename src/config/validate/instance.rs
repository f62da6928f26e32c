//! `[[instance]]`: identity, priority, version, VIPs, timers, peers, checksum form,
//! announcements; the tracks, hooks and BFD of an instance are checked by their own
//! modules.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::ops::Range;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;

use super::super::defaults;
use super::super::duration::format_duration;
use super::super::raw::{RawInstance, S};
use super::super::{Announce, Family, Instance};
use super::keys::{is_v6_link_local, unusable_address};
use super::{join, Cx, Seen};
use crate::proto::{Centis, Version};

/// Largest number of VIPs: Count IPvX Addrs is 8 bits (RFC 5798 §5.2.6), and an IPv6
/// advert must fit a 1500-byte MTU (40 + 8 + 16 * 90 = 1488).
const MAX_VIPS_V4: usize = 255;
const MAX_VIPS_V6: usize = 90;

impl Cx<'_> {
    pub(super) fn instance(
        &mut self,
        idx: usize,
        raw: &S<RawInstance>,
    ) -> (Option<Instance>, Seen) {
        let p = format!("instance[{idx}]");
        let table = raw.span();
        let r = raw.get_ref();
        let before = self.errors.len();
        let mut seen = Seen {
            name: None,
            interface: None,
            vrid: None,
            family: None,
            vips: Vec::new(),
            table: table.clone(),
            vrid_span: r.vrid.as_ref().map_or(table.clone(), |v| v.span()),
            path: p.clone(),
        };

        let name = match &r.name {
            None => {
                self.missing(
                    &table,
                    &p,
                    "name",
                    "each instance needs a unique name, like name = \"web\"",
                );
                None
            }
            Some(v) => {
                let n = self.object_name(v, &p);
                if let Some(n) = &n {
                    seen.name = Some((n.clone(), v.span()));
                }
                n
            }
        };
        let interface = match &r.interface {
            None => {
                self.missing(
                    &table,
                    &p,
                    "interface",
                    "the interface the virtual router runs on, like interface = \"eth0\"",
                );
                None
            }
            Some(v) => self.ifname(v, &p, "interface"),
        };
        seen.interface = interface.clone();
        let vrid = match &r.vrid {
            None => {
                self.missing(
                    &table,
                    &p,
                    "vrid",
                    "the Virtual Router ID 1..=255, the same on all routers of the group",
                );
                None
            }
            // RFC 5798 §5.2.3: VRID is 1..=255.
            Some(v) => self
                .in_range(v, &p, "vrid", 1..=255)
                .and_then(|n| u8::try_from(n).ok()),
        };
        seen.vrid = vrid;

        let address_owner = r
            .address_owner
            .as_ref()
            .map_or(defaults::ADDRESS_OWNER, |v| *v.get_ref());
        // RFC 5798 §6.1: priority 255 is reserved for the address owner, 1..=254 for backups.
        let priority = match &r.priority {
            None => Some(if address_owner {
                defaults::OWNER_PRIORITY
            } else {
                defaults::PRIORITY
            }),
            Some(v) => self.checked(v, &p, "priority", |&n| match (address_owner, n) {
                (true, 255) => Ok(255),
                (true, _) => Err(format!(
                    "priority must be 255 with address-owner = true (or leave priority out), got {n}"
                )),
                (false, 255) => Err("priority 255 is only for the address owner: set address-owner = true (the VIPs must then be the interface's own addresses) or use 1..=254".to_owned()),
                // In range: the cast cannot truncate.
                (false, 1..=254) => Ok(n as u8),
                (false, _) => Err(format!(
                    "priority must be 1..=254 (255 only with address-owner = true), got {n}"
                )),
            }),
        };

        let version = match &r.version {
            None => Some(defaults::VERSION),
            Some(v) => self.checked(v, &p, "version", |&n| match n {
                2 => Ok(Version::V2),
                3 => Ok(Version::V3),
                n => Err(format!("version must be 2 or 3, got {n}")),
            }),
        };

        // VIPs and the family.
        let vips = self.vips(r, &table, &p, vrid, &mut seen);
        let family = seen.family;

        // RFC 3768 (VRRPv2) is IPv4 only.
        if let (Some(Version::V2), Some(Family::V6), Some(v)) = (version, family, &r.version) {
            self.err(
                v.span(),
                join(&p, "version"),
                "version 2 (RFC 3768) is IPv4 only, but the vips are IPv6: use version = 3"
                    .to_owned(),
            );
        }

        let advert_interval = self.advert_interval(r, &p, version);

        let preempt = match &r.preempt {
            None => defaults::PREEMPT,
            Some(v) => {
                if address_owner && !*v.get_ref() {
                    // RFC 5798 §6.1 Preempt_Mode: the owner (priority 255) always preempts.
                    self.err(
                        v.span(),
                        join(&p, "preempt"),
                        "preempt = false cannot apply to an address owner: it always preempts (RFC 5798 §6.1); remove the key".to_owned(),
                    );
                }
                *v.get_ref()
            }
        };
        let preempt_delay = self.bounded_or(
            r.preempt_delay.as_ref(),
            &p,
            "preempt-delay",
            Duration::ZERO..=Duration::from_secs(3600),
            defaults::PREEMPT_DELAY,
        );
        if let (Some(v), Some(_), false) = (&r.preempt_delay, preempt_delay, preempt) {
            self.err(
                v.span(),
                join(&p, "preempt-delay"),
                "preempt-delay has no effect with preempt = false: remove one of them".to_owned(),
            );
        }

        let vip_addrs: Vec<IpAddr> = vips.iter().map(|n| n.addr()).collect();
        let unicast_peers = self.peers(r, &p, family, &vip_addrs);
        let source_address = self.source_address(r, &p, family, &vip_addrs, address_owner);

        // keepalived's v3_checksum_as_v2 / FRR's checksum-with-ipv4-pseudoheader: only the
        // VRRPv3-over-IPv4 send form is a choice (RFC 5798 §5.2.8, RFC 9568).
        let checksum_pseudo_header = match (&r.checksum_pseudo_header, version, family) {
            (Some(v), Some(Version::V3), Some(Family::V4)) => *v.get_ref(),
            (Some(v), Some(ver), Some(fam)) => {
                let why = if ver == Version::V2 {
                    "VRRPv2 never uses a pseudo-header"
                } else if fam == Family::V6 {
                    "IPv6 always uses one"
                } else {
                    ""
                };
                self.err(
                    v.span(),
                    join(&p, "checksum-pseudo-header"),
                    format!("checksum-pseudo-header applies only to version 3 over IPv4 ({why}): remove the key"),
                );
                false
            }
            (Some(v), _, _) => *v.get_ref(),
            (None, Some(Version::V2), _) => false,
            (None, _, _) => defaults::CHECKSUM_PSEUDO_HEADER,
        };

        let virtual_mac = self.virtual_mac(r, &p, address_owner);
        let announce = self.announce(r, &p);
        let notify = self.notify(r.notify.as_ref(), &join(&p, "notify"), true);
        let bfd = self.bfd(r, &p, family, &vip_addrs, unicast_peers.as_deref());

        let mut tracks = Vec::new();
        let mut track_names: HashMap<String, usize> = HashMap::new();
        for (i, t) in r.tracks.iter().enumerate() {
            let tp = format!("{p}.track[{i}]");
            if address_owner {
                // RFC 5798 §6.1: the owner's priority is 255 and is not changed by tracking.
                self.err(
                    t.span(),
                    tp.clone(),
                    "an address owner cannot be tracked: its priority stays 255; remove the track or address-owner".to_owned(),
                );
                continue;
            }
            if let Some(spec) = self.track(t, &tp) {
                if let Some(line) = track_names.get(&spec.name) {
                    let span = t.get_ref().name.as_ref().map_or(t.span(), |n| n.span());
                    self.err(
                        span,
                        join(&tp, "name"),
                        format!(
                            "track name {:?} is already used in this instance at line {line}: give each track a unique name",
                            spec.name
                        ),
                    );
                } else {
                    track_names.insert(spec.name.clone(), self.line_of(&t.span()));
                    tracks.push(spec);
                }
            }
        }

        if self.errors.len() > before {
            return (None, seen);
        }
        let built = (|| {
            Some(Instance {
                name: name?,
                interface: interface?,
                vrid: vrid?,
                priority: priority?,
                address_owner,
                advert_interval: advert_interval?,
                version: version?,
                preempt,
                preempt_delay: preempt_delay?,
                family: family?,
                vips,
                unicast_peers: unicast_peers?,
                source_address: source_address?,
                checksum_pseudo_header,
                announce: announce?,
                tracks,
                notify: notify?,
                // Filled in by `config` (needs the [arbiter] section).
                arbiter: false,
                arbiter_key: None,
                virtual_mac,
                bfd: bfd?,
            })
        })();
        (built, seen)
    }

    /// `virtual-mac` (RFC 5798 §7.3): not for an address owner (its VIPs are the
    /// interface's own addresses and stay there).
    fn virtual_mac(&mut self, r: &RawInstance, p: &str, address_owner: bool) -> bool {
        let Some(v) = &r.virtual_mac else {
            return false;
        };
        if !*v.get_ref() {
            return false;
        }
        if address_owner {
            self.err(
                v.span(),
                join(p, "virtual-mac"),
                "an address owner's VIPs are the interface's own addresses and cannot move to a virtual MAC link: remove virtual-mac or address-owner".to_owned(),
            );
            return false;
        }
        true
    }

    pub(super) fn vips(
        &mut self,
        r: &RawInstance,
        table: &Range<usize>,
        p: &str,
        vrid: Option<u8>,
        seen: &mut Seen,
    ) -> Vec<IpNet> {
        let key = join(p, "vips");
        let Some(list) = &r.vips else {
            self.missing(
                table,
                p,
                "vips",
                "an instance needs at least one virtual address, like vips = [\"192.0.2.100/24\"]",
            );
            return Vec::new();
        };
        if list.get_ref().is_empty() {
            self.err(
                list.span(),
                key,
                "vips must list at least one address, like [\"192.0.2.100/24\"]".to_owned(),
            );
            return Vec::new();
        }
        let mut out: Vec<IpNet> = Vec::new();
        let mut family: Option<(Family, IpNet)> = None;
        let mut link_local_seen = false;
        for (i, v) in list.get_ref().iter().enumerate() {
            let s = v.get_ref();
            let net = match IpNet::from_str(s) {
                Ok(n) => n,
                Err(_) => match IpAddr::from_str(s) {
                    Ok(a) => IpNet::from(a),
                    Err(_) => {
                        self.err(
                            v.span(),
                            key.clone(),
                            format!(
                                "vips: {s:?} is not an address or address/prefix like \"192.0.2.100/24\" or \"2001:db8::100/64\""
                            ),
                        );
                        continue;
                    }
                },
            };
            let addr = net.addr();
            if let Some(why) = unusable_address(&addr) {
                self.err(
                    v.span(),
                    key.clone(),
                    format!("vips: {addr} cannot be a virtual address ({why})"),
                );
                continue;
            }
            let fam = Family::of(addr);
            match &family {
                None => family = Some((fam, net)),
                Some((f, first)) if *f != fam => {
                    self.err(
                        v.span(),
                        key.clone(),
                        format!(
                            "vips: {net} is {fam} but {first} is {f}: all VIPs of an instance are one address family (use a second instance for the other)"
                        ),
                    );
                    continue;
                }
                Some(_) => {}
            }
            if out.iter().any(|n| n.addr() == addr) {
                self.err(
                    v.span(),
                    key.clone(),
                    format!("vips: {addr} is listed twice"),
                );
                continue;
            }
            if is_v6_link_local(&addr) {
                // RFC 5798 §5.2.9: the first IPv6 address is the link-local one (only one).
                if link_local_seen {
                    self.err(v.span(), key.clone(), format!("vips: {net} is a second link-local address; an instance has one link-local VIP"));
                    continue;
                }
                if i != 0 {
                    self.err(
                        v.span(),
                        key.clone(),
                        format!("vips: the link-local VIP {net} must be first (RFC 5798 §5.2.9), or leave it out to use the derived one"),
                    );
                    continue;
                }
                link_local_seen = true;
            }
            seen.vips.push((addr, v.span()));
            out.push(net);
        }
        seen.family = family.as_ref().map(|(f, _)| *f);
        if seen.family == Some(Family::V6) && !link_local_seen {
            if let Some(vrid) = vrid {
                // RFC 5798 §5.2.9 needs a link-local first address; derive it from the
                // virtual MAC 00-00-5E-00-02-{VRID} (RFC 5798 §7.3) as EUI-64.
                let ll = Ipv6Addr::new(
                    0xfe80,
                    0,
                    0,
                    0,
                    0x0200,
                    0x5eff,
                    0xfe00,
                    0x0200 | u16::from(vrid),
                );
                if let Ok(net) = IpNet::new(IpAddr::V6(ll), 64) {
                    out.insert(0, net);
                }
            }
        }
        let max = match seen.family {
            Some(Family::V6) => MAX_VIPS_V6,
            _ => MAX_VIPS_V4,
        };
        if out.len() > max {
            self.err(
                list.span(),
                key,
                format!(
                    "vips: {} addresses, at most {max} fit one advert (IPv6 counts the link-local VIP)",
                    out.len()
                ),
            );
        }
        out
    }

    pub(super) fn advert_interval(
        &mut self,
        r: &RawInstance,
        p: &str,
        version: Option<Version>,
    ) -> Option<Centis> {
        let (d, v) = match &r.advert_interval {
            None => (defaults::ADVERT_INTERVAL, None),
            Some(v) => (self.duration(v, p, "advert-interval")?, Some(v)),
        };
        let span = v.map_or(0..0, |v| v.span());
        let got = v.map_or_else(
            || format!("{:?}", format_duration(defaults::ADVERT_INTERVAL)),
            |v| format!("{:?}", v.get_ref()),
        );
        match version? {
            Version::V3 => {
                // RFC 5798 §5.2.7: 12-bit Max Adver Int in centiseconds.
                let ms = d.as_nanos() / 1_000_000;
                if d.as_nanos() % 10_000_000 != 0 || !(10..=40_950).contains(&ms) {
                    self.err(
                        span,
                        join(p, "advert-interval"),
                        format!("advert-interval must be 10ms..=40.95s in steps of 10ms for version 3, got {got}"),
                    );
                    return None;
                }
                u16::try_from(ms / 10).ok().map(Centis)
            }
            Version::V2 => {
                // RFC 3768 §5.3.7: Adver Int is 8 bits of whole seconds.
                let secs = d.as_secs();
                if d.subsec_nanos() != 0 || !(1..=255).contains(&secs) {
                    self.err(
                        span,
                        join(p, "advert-interval"),
                        format!("advert-interval must be whole seconds 1s..=255s for version 2, got {got}"),
                    );
                    return None;
                }
                u16::try_from(secs * 100).ok().map(Centis)
            }
        }
    }

    pub(super) fn peers(
        &mut self,
        r: &RawInstance,
        p: &str,
        family: Option<Family>,
        vips: &[IpAddr],
    ) -> Option<Vec<IpAddr>> {
        let Some(list) = &r.unicast_peers else {
            return Some(Vec::new());
        };
        let mut out = Vec::new();
        let mut ok = true;
        for v in list.get_ref() {
            let peer = self.checked(v, p, "unicast-peers", |s| {
                let addr = IpAddr::from_str(s).map_err(|_| {
                    format!("unicast-peers: {s:?} is not an IP address (no prefix, no port)")
                })?;
                let problem = address_problem(addr, family, "a peer", "peers").or_else(|| {
                    if out.contains(&addr) {
                        Some(format!("{addr} is listed twice"))
                    } else if vips.contains(&addr) {
                        Some(format!("{addr} is one of this instance's VIPs; peers are the other routers' own addresses"))
                    } else {
                        None
                    }
                });
                match problem {
                    Some(m) => Err(format!("unicast-peers: {m}")),
                    None => Ok(addr),
                }
            });
            match peer {
                Some(addr) => out.push(addr),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    pub(super) fn source_address(
        &mut self,
        r: &RawInstance,
        p: &str,
        family: Option<Family>,
        vips: &[IpAddr],
        owner: bool,
    ) -> Option<Option<IpAddr>> {
        let Some(v) = &r.source_address else {
            return Some(None);
        };
        let multicast = r
            .unicast_peers
            .as_ref()
            .is_none_or(|l| l.get_ref().is_empty());
        self.checked(v, p, "source-address", |s| {
            let addr = IpAddr::from_str(s)
                .map_err(|_| format!("source-address: {s:?} is not an IP address (no prefix)"))?;
            let problem = address_problem(addr, family, "a source address", "the source").or_else(|| {
                if !owner && vips.contains(&addr) {
                    Some(format!(
                        "{addr} is a VIP; the source must be an address the router keeps as backup"
                    ))
                } else if multicast && matches!(addr, IpAddr::V6(_)) && !is_v6_link_local(&addr) {
                    // RFC 5798 §5.1.2.1: the IPv6 source is the interface's link-local address.
                    Some(format!(
                        "{addr} is not link-local: multicast IPv6 adverts are sent from the interface's link-local address (RFC 5798 §5.1.2.1)"
                    ))
                } else {
                    None
                }
            });
            match problem {
                Some(m) => Err(format!("source-address: {m}")),
                None => Ok(Some(addr)),
            }
        })
    }

    pub(super) fn announce(&mut self, r: &RawInstance, p: &str) -> Option<Announce> {
        let count = self.bounded_or(
            r.announce_count.as_ref(),
            p,
            "announce-count",
            0..=100,
            i64::from(defaults::ANNOUNCE_COUNT),
        );
        let spacing = self.bounded_or(
            r.announce_spacing.as_ref(),
            p,
            "announce-spacing",
            Duration::ZERO..=Duration::from_secs(10),
            defaults::ANNOUNCE_SPACING,
        );
        let refresh = self.opt_bounded(
            r.announce_refresh.as_ref(),
            p,
            "announce-refresh",
            Duration::from_secs(1)..=Duration::from_secs(86_400),
        );
        Some(Announce {
            count: u32::try_from(count?).unwrap_or(0),
            spacing: spacing?,
            refresh: refresh?,
        })
    }
}

/// Why `addr` cannot be `role` of an instance whose VIPs are of `family` (the rule says
/// `who` must be of the VIPs' family), as far as the address alone tells.
fn address_problem(addr: IpAddr, family: Option<Family>, role: &str, who: &str) -> Option<String> {
    if let Some(why) = unusable_address(&addr) {
        Some(format!("{addr} cannot be {role} ({why})"))
    } else if family.is_some_and(|f| f != Family::of(addr)) {
        Some(format!(
            "{addr} is {} but the vips are {}: {who} must be of the VIPs' family",
            Family::of(addr),
            family.map_or(Family::V4, |f| f)
        ))
    } else {
        None
    }
}
