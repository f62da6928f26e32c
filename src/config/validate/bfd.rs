//! `[instance.bfd]`: validation of the peer-BFD table (a child of `validate`).

use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use super::super::defaults;
use super::super::raw::{RawInstance, RawTrack, S};
use super::super::{BfdSpec, Family};
use super::keys::unusable_address;
use super::{join, Cx};
use crate::track::CheckKind;

/// Shortest `interval`.
pub(super) const MIN_INTERVAL: Duration = Duration::from_millis(1);
/// Longest `interval` (Desired Min TX is 32 bits of microseconds; beyond a minute BFD
/// detects nothing VRRP would not).
pub(super) const MAX_INTERVAL: Duration = Duration::from_secs(60);

impl Cx<'_> {
    /// `multiplier` (Detect Mult, 8 bits: RFC 5880 §4.1).
    fn multiplier(&mut self, v: Option<&S<i64>>, p: &str) -> Option<u8> {
        self.bounded_or(
            v,
            p,
            "multiplier",
            1..=255,
            i64::from(defaults::BFD_MULTIPLIER),
        )
        .and_then(|n| u8::try_from(n).ok())
    }

    /// `Some(None)`: no `[instance.bfd]`; `None`: errors were reported.
    pub(super) fn bfd(
        &mut self,
        r: &RawInstance,
        p: &str,
        family: Option<Family>,
        vips: &[IpAddr],
        unicast_peers: Option<&[IpAddr]>,
    ) -> Option<Option<BfdSpec>> {
        let Some(raw) = &r.bfd else {
            return Some(None);
        };
        let bp = join(p, "bfd");
        let before = self.errors.len();
        let b = raw.get_ref();
        let interval = self.bounded_or(
            b.interval.as_ref(),
            &bp,
            "interval",
            MIN_INTERVAL..=MAX_INTERVAL,
            defaults::BFD_INTERVAL,
        );
        let multiplier = self.multiplier(b.multiplier.as_ref(), &bp);
        let peers = match &b.peers {
            Some(list) => self.bfd_peers(list, &bp, family, vips),
            None => match unicast_peers {
                Some([]) => {
                    self.missing(
                        &raw.span(),
                        &bp,
                        "peers",
                        "with multicast adverts (no unicast-peers) BFD needs the other routers' addresses, like peers = [\"192.0.2.12\"]",
                    );
                    None
                }
                Some(list) => Some(list.to_vec()),
                // unicast-peers had errors of their own.
                None => None,
            },
        };
        if self.errors.len() > before {
            return None;
        }
        Some(Some(BfdSpec {
            peers: peers?,
            interval: interval?,
            multiplier: multiplier?,
        }))
    }

    /// `kind = "bfd"` in `[[instance.track]]`: `peer` (required) and `multiplier`.
    pub(super) fn track_bfd(&mut self, raw: &S<RawTrack>, p: &str) -> Option<CheckKind> {
        let t = raw.get_ref();
        let multiplier = self.multiplier(t.multiplier.as_ref(), p);
        let v = self.required(&t.peer, &raw.span(), p, "peer", "a bfd track runs a session to peer = \"IP\" (a gateway or backend on the instance's interface)")?;
        let peer = self.checked(v, p, "peer", |s| match IpAddr::from_str(s) {
            Ok(a) if unusable_address(&a).is_none() && !a.is_multicast() => Ok(a),
            Ok(a) => Err(format!(
                "peer: {a} cannot be a BFD peer (not a unicast address)"
            )),
            Err(_) => Err(format!(
                "peer: {s:?} is not an IP address (no prefix, no port)"
            )),
        });
        Some(CheckKind::Bfd {
            peer: peer?,
            multiplier: multiplier?,
        })
    }

    fn bfd_peers(
        &mut self,
        list: &S<Vec<S<String>>>,
        bp: &str,
        family: Option<Family>,
        vips: &[IpAddr],
    ) -> Option<Vec<IpAddr>> {
        let key = join(bp, "peers");
        if list.get_ref().is_empty() {
            self.err(
                list.span(),
                key,
                "peers: list at least one router, or remove [instance.bfd]".to_owned(),
            );
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for v in list.get_ref() {
            let s = v.get_ref();
            let problem = match IpAddr::from_str(s) {
                Err(_) => Some(format!("{s:?} is not an IP address (no prefix, no port)")),
                Ok(a) => {
                    if let Some(why) = unusable_address(&a) {
                        Some(format!("{a} cannot be a BFD peer ({why})"))
                    } else if a.is_multicast() {
                        Some(format!("{a} is multicast; BFD peers are unicast addresses"))
                    } else if family.is_some_and(|f| f != Family::of(a)) {
                        Some(format!("{a} is not of the VIPs' address family"))
                    } else if vips.contains(&a) {
                        Some(format!(
                            "{a} is one of this instance's VIPs; peers are the other routers' own addresses"
                        ))
                    } else if out.contains(&a) {
                        Some(format!("{a} is listed twice"))
                    } else {
                        out.push(a);
                        None
                    }
                }
            };
            if let Some(m) = problem {
                self.err(v.span(), key.clone(), format!("peers: {m}"));
                ok = false;
            }
        }
        ok.then_some(out)
    }
}
