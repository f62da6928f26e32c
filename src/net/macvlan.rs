//! Virtual MAC mode (RFC 5798 §7.3): one macvlan per instance that carries the virtual
//! router MAC `00:00:5e:00:01:XX` (IPv4) or `00:00:5e:00:02:XX` (IPv6), XX = VRID.
//!
//! The link is created on the instance's interface in **bridge** mode, and vipd keeps
//! receiving adverts on the parent interface. The mode matters: for a multicast frame
//! whose *source* MAC is that of a local macvlan in private, VEPA or passthru mode, the
//! kernel (`macvlan_handle_frame`) hands the frame to that macvlan only, as a reflected
//! frame, and the parent never sees it. The peer master's adverts carry exactly that
//! source MAC (the same virtual MAC), so with a private macvlan a backup that listens on
//! the parent would hear nothing and become a second master. Bridge mode is exempt from
//! that diversion. (keepalived uses private mode but listens on the macvlan itself; FRR's
//! documentation creates its macvlans in bridge mode, as here.)
//!
//! Ownership: vipd sets the link's alias (`IFLA_IFALIAS`) to a text starting with
//! [`VMAC_ALIAS_PREFIX`], and removes a link only when it is a macvlan, carries that
//! alias and a VRRP virtual MAC (and, for an instance, sits on its interface with its
//! VRID's MAC). A link the operator made (for FRR, say) with the same name is never
//! removed: creating vipd's fails with [`NetError::LinkNotOurs`].
//!
//! Per-interface settings are made over netlink at creation (`IFLA_AF_SPEC`), which
//! works also where `/proc/sys` is read-only (systemd `ProtectKernelTunables=`):
//! `arp_ignore=1` (answer ARP only for the VIPs on the macvlan, never for the parent's
//! addresses), `arp_announce=2`, `rp_filter=2` (loose: replies to clients may leave
//! through the parent), `promote_secondaries=1`, and IPv6 `addr_gen_mode=none` so that
//! no link-local address (and no frame from the virtual MAC) appears on a backup. The
//! parent's settings are the operator's: [`parent_arp_problems`] says what is wrong.
//!
//! An IPv6 instance's link is up only while it is master ([`Netlink::set_vmac_up`]): its
//! addresses then go without a word (no MLD report from the virtual MAC on a backup).

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{
    AfSpecInet, AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InetDevConf, InfoKind, LinkAttribute,
    LinkInfo as NlLinkInfo, LinkMessage, MacVlanMode,
};
use rtnetlink::{LinkMacVlan, LinkUnspec};

use super::netlink::{errno, nl_error, IFNAME_MAX};
use super::{LinkInfo, NetError, Netlink};

/// Every alias vipd gives its macvlans starts with this.
pub const VMAC_ALIAS_PREFIX: &str = "vipd virtual MAC";

/// The virtual router MAC of RFC 5798 §7.3: `00:00:5e:00:01:{vrid}` for IPv4,
/// `00:00:5e:00:02:{vrid}` for IPv6.
pub fn virtual_mac(vrid: u8, v6: bool) -> [u8; 6] {
    [0x00, 0x00, 0x5e, 0x00, if v6 { 0x02 } else { 0x01 }, vrid]
}

/// Whether `mac` is a VRRP virtual router MAC (either family).
pub fn is_virtual_mac(mac: &[u8; 6]) -> bool {
    mac[..4] == [0x00, 0x00, 0x5e, 0x00] && matches!(mac[4], 0x01 | 0x02)
}

/// The name vipd gives the macvlan of VRID `vrid` on the interface with index
/// `parent`: `vrrp4-IFINDEX-VRID` / `vrrp6-IFINDEX-VRID` (FRR's documented convention),
/// unique per interface, family and VRID. With an interface index above 99999 the
/// name would exceed 15 bytes; then it is `vr4-IFINDEX-VRID` with both numbers in hex.
pub fn vmac_name(parent: u32, vrid: u8, v6: bool) -> String {
    let fam = if v6 { 6 } else { 4 };
    let name = format!("vrrp{fam}-{parent}-{vrid}");
    if name.len() <= IFNAME_MAX {
        name
    } else {
        format!("vr{fam}-{parent:x}-{vrid:x}")
    }
}

fn vmac_alias(parent_name: &str, vrid: u8, v6: bool) -> String {
    format!(
        "{VMAC_ALIAS_PREFIX} of VRID {vrid} IPv{} on {parent_name}",
        if v6 { 6 } else { 4 }
    )
}

/// One instance's virtual MAC link, as wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmacSpec {
    /// The instance's interface (the macvlan's parent): index.
    pub parent: u32,
    /// The parent's name (for the alias and messages).
    pub parent_name: String,
    /// VRID.
    pub vrid: u8,
    /// IPv6 instance.
    pub v6: bool,
}

impl VmacSpec {
    /// The link's name ([`vmac_name`]).
    pub fn name(&self) -> String {
        vmac_name(self.parent, self.vrid, self.v6)
    }

    /// The link's MAC ([`virtual_mac`]).
    pub fn mac(&self) -> [u8; 6] {
        virtual_mac(self.vrid, self.v6)
    }
}

/// What vipd needs to know of an existing link to decide whether it is its own.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LinkFacts {
    index: u32,
    name: String,
    macvlan: bool,
    parent: Option<u32>,
    mac: [u8; 6],
    alias: Option<String>,
}

impl LinkFacts {
    fn from_message(m: &LinkMessage) -> Self {
        let mut f = LinkFacts {
            index: m.header.index,
            name: String::new(),
            macvlan: false,
            parent: None,
            mac: [0; 6],
            alias: None,
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => f.name = n.clone(),
                LinkAttribute::Link(p) => f.parent = Some(*p),
                LinkAttribute::Address(b) => {
                    if let Ok(mac) = <[u8; 6]>::try_from(b.as_slice()) {
                        f.mac = mac;
                    }
                }
                LinkAttribute::IfAlias(s) => f.alias = Some(s.clone()),
                LinkAttribute::LinkInfo(infos) => {
                    f.macvlan |= infos
                        .iter()
                        .any(|i| matches!(i, NlLinkInfo::Kind(InfoKind::MacVlan)));
                }
                _ => {}
            }
        }
        f
    }

    /// Carries vipd's mark: a macvlan with vipd's alias and a VRRP virtual MAC.
    fn is_vipds(&self) -> bool {
        self.macvlan
            && is_virtual_mac(&self.mac)
            && self
                .alias
                .as_deref()
                .is_some_and(|a| a.starts_with(VMAC_ALIAS_PREFIX))
    }

    /// vipd's link for exactly this instance.
    fn is_for(&self, spec: &VmacSpec) -> bool {
        self.is_vipds() && self.parent == Some(spec.parent) && self.mac == spec.mac()
    }
}

/// A macvlan that carries vipd's mark, as listed by [`Netlink::owned_vmacs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedVmac {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
}

/// The per-interface IPv4 settings of a new macvlan (see the module docs).
fn vmac_devconf() -> InetDevConf {
    let mut c = InetDevConf::default();
    c.arp_ignore = 1;
    c.arp_announce = 2;
    c.rp_filter = 2;
    c.promote_secondaries = 1;
    c
}

impl Netlink {
    async fn link_facts(&self, name: &str) -> Result<Option<LinkFacts>, NetError> {
        let mut links = self.handle.link().get().match_name(name).execute();
        match links.try_next().await {
            Ok(Some(m)) => Ok(Some(LinkFacts::from_message(&m))),
            Ok(None) => Ok(None),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(nl_error(format!("get link {name}"), e)),
        }
    }

    /// Makes sure the instance's macvlan exists and is vipd's, and sets it up (IPv4) or
    /// down (IPv6: it comes up when the instance is master); returns it.
    ///
    /// A link of that name that vipd made for this instance (a crashed run's, if start-up
    /// cleaning missed it) is reused. One that is not vipd's is left alone and reported
    /// as [`NetError::LinkNotOurs`].
    pub async fn ensure_vmac(&self, spec: &VmacSpec) -> Result<LinkInfo, NetError> {
        let name = spec.name();
        if !self.vmac_present(spec).await? {
            self.create_vmac(spec, &name).await?;
        }
        let link = self.link(&name).await?;
        // Up or down, and IPv4/IPv6 settings, every time: cheap, and it repairs a reused
        // link.
        self.configure_vmac(spec, link.index, &name).await?;
        self.link(&name).await
    }

    /// Whether the instance's macvlan is there (`false`: it can be created); a link of
    /// that name that is not vipd's one for this instance is [`NetError::LinkNotOurs`].
    /// Reload pre-flights with it, so a rebuild that could not get its link keeps the
    /// running instance.
    pub async fn vmac_present(&self, spec: &VmacSpec) -> Result<bool, NetError> {
        let name = spec.name();
        match self.link_facts(&name).await? {
            None => Ok(false),
            Some(f) if f.is_for(spec) => Ok(true),
            Some(f) => Err(NetError::LinkNotOurs {
                name,
                why: if f.is_vipds() {
                    "it is vipd's but for another interface or VRID".to_owned()
                } else {
                    format!("it lacks vipd's alias \"{VMAC_ALIAS_PREFIX} ...\" (or is not a macvlan with a VRRP MAC)")
                },
            }),
        }
    }

    async fn create_vmac(&self, spec: &VmacSpec, name: &str) -> Result<(), NetError> {
        let msg = LinkMacVlan::new(name, spec.parent, MacVlanMode::Bridge)
            .address(spec.mac().to_vec())
            .build();
        match self.handle.link().add(msg).execute().await {
            Ok(()) => {
                tracing::info!(
                    "created {name} (macvlan, bridge mode, MAC {}) on {} for VRID {}",
                    fmt_mac(&spec.mac()),
                    spec.parent_name,
                    spec.vrid
                );
                Ok(())
            }
            Err(e) if errno(&e) == Some(libc::EEXIST) => Err(NetError::LinkNotOurs {
                name: name.to_owned(),
                why: "a link of that name appeared while vipd created its own".to_owned(),
            }),
            Err(e) if errno(&e) == Some(libc::EADDRINUSE) => Err(NetError::LinkNotOurs {
                name: name.to_owned(),
                why: format!(
                    "another macvlan on {} already has MAC {} (made by the operator, e.g. for FRR?)",
                    spec.parent_name,
                    fmt_mac(&spec.mac())
                ),
            }),
            Err(e) => Err(nl_error(
                format!(
                    "create macvlan {name} on {} (interface index {})",
                    spec.parent_name, spec.parent
                ),
                e,
            )),
        }
    }

    async fn configure_vmac(
        &self,
        spec: &VmacSpec,
        index: u32,
        name: &str,
    ) -> Result<(), NetError> {
        // Alias first: from here on the link is recognisably vipd's.
        let alias = LinkUnspec::new_with_index(index)
            .alias(vmac_alias(&spec.parent_name, spec.vrid, spec.v6))
            .build();
        self.handle
            .link()
            .set(alias)
            .execute()
            .await
            .map_err(|e| nl_error(format!("set the alias of {name}"), e))?;
        // IPv6 off the link before it comes up: no link-local address, so a backup
        // never sends a frame (DAD, MLD) from the shared virtual MAC.
        let af = LinkUnspec::new_with_index(index)
            .append_extra_attribute(LinkAttribute::AfSpecUnspec(vec![
                AfSpecUnspec::Inet(vec![AfSpecInet::DevConfRequest(vmac_devconf())]),
                AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)]),
            ]))
            .build();
        self.handle.link().set(af).execute().await.map_err(|e| {
            nl_error(
                format!("set arp_ignore / arp_announce / rp_filter / addr_gen_mode on {name}"),
                e,
            )
        })?;
        // IPv4: up for good. IPv6: down until the instance is master
        // ([`Netlink::set_vmac_up`]).
        self.set_vmac_up(index, name, !spec.v6).await
    }

    /// Sets the macvlan `index` (`name`, for messages) up or down.
    ///
    /// An IPv6 instance's link is up only while it is master. Taking it down is how a
    /// new backup drops its addresses in silence: the kernel deletes the IPv6 addresses
    /// of a link that goes down, and the MLD reports that leave their solicited-node
    /// groups are dropped with the link down, whereas deleting the addresses on a link
    /// that is up sends those reports (from the virtual MAC, for a second or so), which
    /// moves the MAC to the backup's switch port.
    pub async fn set_vmac_up(&self, index: u32, name: &str, up: bool) -> Result<(), NetError> {
        let b = LinkUnspec::new_with_index(index);
        let msg = if up { b.up() } else { b.down() }.build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| nl_error(format!("set {name} {}", if up { "up" } else { "down" }), e))
    }

    /// Removes the instance's macvlan if it is vipd's one for this instance; a link that
    /// is not there is success, one that is not vipd's is left alone
    /// ([`NetError::LinkNotOurs`]).
    pub async fn remove_vmac(&self, spec: &VmacSpec) -> Result<(), NetError> {
        let name = spec.name();
        match self.link_facts(&name).await? {
            None => Ok(()),
            Some(f) if f.is_for(spec) => self.del_link(f.index, &name).await,
            Some(_) => Err(NetError::LinkNotOurs {
                name,
                why: "it is not the macvlan vipd made for this instance".to_owned(),
            }),
        }
    }

    async fn del_link(&self, index: u32, name: &str) -> Result<(), NetError> {
        match self.handle.link().del(index).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
            Err(e) => Err(nl_error(format!("delete link {name}"), e)),
        }
    }

    /// Every macvlan in this network namespace that carries vipd's mark (alias, kind,
    /// VRRP MAC): what an earlier run (crashed or killed) may have left.
    pub async fn owned_vmacs(&self) -> Result<Vec<OwnedVmac>, NetError> {
        let links: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| nl_error("list links".to_owned(), e))?;
        Ok(links
            .iter()
            .map(LinkFacts::from_message)
            .filter(LinkFacts::is_vipds)
            .map(|f| OwnedVmac {
                index: f.index,
                name: f.name,
            })
            .collect())
    }

    /// Deletes a macvlan listed by [`Netlink::owned_vmacs`].
    pub async fn del_owned_vmac(&self, v: &OwnedVmac) -> Result<(), NetError> {
        self.del_link(v.index, &v.name).await
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The settings of the parent interface `parent` that would let it answer for (or
/// announce) the VIPs with its own MAC, each as the `sysctl.d` line that fixes it.
/// Empty when all is well (or when `/proc/sys` cannot be read). The effective value of
/// both settings is the larger of `all` and the interface's own.
///
/// - `arp_ignore` must be at least 1: with 0 the parent answers ARP for any local
///   address, the VIPs on the macvlan included, with its own MAC.
/// - `arp_announce` must be 2: otherwise the parent's own ARP requests (for a client,
///   when the VIP answers it) carry the VIP as sender address with the parent's MAC,
///   and the client's neighbour entry for the VIP moves off the virtual MAC.
pub fn parent_arp_problems(parent: &str) -> Vec<String> {
    let read = |scope: &str, key: &str| -> Option<u32> {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{scope}/{key}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let mut out = Vec::new();
    for (key, want) in [("arp_ignore", 1u32), ("arp_announce", 2u32)] {
        let (Some(all), Some(dev)) = (read("all", key), read(parent, key)) else {
            continue;
        };
        if all.max(dev) < want {
            // sysctl.d spells a dot in an interface name as '/'.
            out.push(format!(
                "net.ipv4.conf.{}.{key} = {want}",
                parent.replace('.', "/")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_route::link::{InfoData, InfoMacVlan};

    #[test]
    fn rfc5798_section_7_3_virtual_macs() {
        assert_eq!(virtual_mac(51, false), [0, 0, 0x5e, 0, 1, 51]);
        assert_eq!(virtual_mac(255, true), [0, 0, 0x5e, 0, 2, 255]);
        assert!(is_virtual_mac(&virtual_mac(1, false)));
        assert!(is_virtual_mac(&virtual_mac(1, true)));
        assert!(!is_virtual_mac(&[0, 0, 0x5e, 0, 3, 1]));
        assert!(!is_virtual_mac(&[2, 0, 0x5e, 0, 1, 1]));
        assert_eq!(fmt_mac(&virtual_mac(10, false)), "00:00:5e:00:01:0a");
    }

    #[test]
    fn names_are_unique_per_interface_family_and_vrid_and_fit_ifnamsiz() {
        assert_eq!(vmac_name(2, 5, false), "vrrp4-2-5");
        assert_eq!(vmac_name(2, 5, true), "vrrp6-2-5");
        assert_ne!(vmac_name(2, 5, false), vmac_name(3, 5, false));
        assert_eq!(vmac_name(99999, 255, false), "vrrp4-99999-255");
        let long = vmac_name(u32::MAX, 255, true);
        assert_eq!(long, "vr6-ffffffff-ff");
        assert!(long.len() <= IFNAME_MAX);
        for idx in [1, 9, 10, 99_999, 100_000, 1 << 20, u32::MAX] {
            for vrid in [1u8, 99, 100, 255] {
                for v6 in [false, true] {
                    assert!(vmac_name(idx, vrid, v6).len() <= IFNAME_MAX);
                }
            }
        }
    }

    fn facts(alias: Option<&str>, macvlan: bool, mac: [u8; 6], parent: u32) -> LinkFacts {
        LinkFacts {
            index: 9,
            name: "vrrp4-2-5".into(),
            macvlan,
            parent: Some(parent),
            mac,
            alias: alias.map(str::to_owned),
        }
    }

    #[test]
    fn only_a_marked_macvlan_with_a_vrrp_mac_is_vipds() {
        let spec = VmacSpec {
            parent: 2,
            parent_name: "eth0".into(),
            vrid: 5,
            v6: false,
        };
        let alias = vmac_alias("eth0", 5, false);
        assert!(facts(Some(&alias), true, spec.mac(), 2).is_for(&spec));
        // The operator's (FRR's) macvlan: same name, same MAC, no alias.
        assert!(!facts(None, true, spec.mac(), 2).is_vipds());
        assert!(!facts(Some("frr vrrp"), true, spec.mac(), 2).is_vipds());
        // Not a macvlan, or not a VRRP MAC.
        assert!(!facts(Some(&alias), false, spec.mac(), 2).is_vipds());
        assert!(!facts(Some(&alias), true, [2, 0, 0, 0, 0, 1], 2).is_vipds());
        // vipd's, but another interface or VRID.
        assert!(!facts(Some(&alias), true, spec.mac(), 3).is_for(&spec));
        assert!(!facts(Some(&alias), true, virtual_mac(6, false), 2).is_for(&spec));
    }

    #[test]
    fn link_facts_read_kind_parent_mac_and_alias() {
        let mut m = LinkMessage::default();
        m.header.index = 7;
        m.attributes.push(LinkAttribute::IfName("vrrp4-2-5".into()));
        m.attributes.push(LinkAttribute::Link(2));
        m.attributes
            .push(LinkAttribute::Address(virtual_mac(5, false).to_vec()));
        m.attributes
            .push(LinkAttribute::IfAlias(vmac_alias("eth0", 5, false)));
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            NlLinkInfo::Kind(InfoKind::MacVlan),
            NlLinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(
                MacVlanMode::Bridge,
            )])),
        ]));
        let f = LinkFacts::from_message(&m);
        assert_eq!(f.index, 7);
        assert_eq!(f.parent, Some(2));
        assert!(f.is_vipds());
    }

    #[test]
    fn devconf_sets_what_the_docs_say() {
        let c = vmac_devconf();
        assert_eq!(
            (
                c.arp_ignore,
                c.arp_announce,
                c.rp_filter,
                c.promote_secondaries
            ),
            (1, 2, 2, 1)
        );
    }
}
