//! Unit tests of the state machine, one rule each, named by RFC section: one file per
//! section of RFC 5798 (timers, startup, backup, master, receive checks), and ours
//! (conditions, shutdown and maintenance, BFD). The helpers below are shared by all.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use super::*;
use crate::proto::{Advert, Centis, Version};

const ME: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11));
const PEER_HI: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 12));
const PEER_LO: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100));
const SEC: Centis = Centis(100);

fn cfg(priority: u8) -> RouterConfig {
    RouterConfig {
        vrid: 51,
        version: Version::V3,
        priority,
        advert_interval: SEC,
        preempt: true,
        preempt_delay: Duration::ZERO,
        primary_addr: ME,
        vips: vec![VIP],
        unicast_peers: vec![],
    }
}

fn adv(priority: u8, interval: Centis) -> Advert {
    Advert {
        version: Version::V3,
        vrid: 51,
        priority,
        interval,
        addrs: vec![VIP],
    }
}

/// `r` hears a valid advert from `from` at `priority` (1 s, TTL 255) and accepts it.
fn hear(r: &mut Router, at: Instant, from: IpAddr, priority: u8) {
    r.handle_advert(at, from, 255, &adv(priority, SEC))
        .expect("accepted");
}

/// `r` (a backup) once it has heard `master` at `priority` at `t0`.
fn following(mut r: Router, t0: Instant, master: IpAddr, priority: u8) -> Router {
    hear(&mut r, t0, master, priority);
    r
}

/// `r`'s master-down timer is due at `at` and makes it master.
fn assert_takes_over_at(r: &mut Router, at: Instant) {
    assert_eq!(r.poll_timeout(), Some(at));
    r.handle_timeout(at);
    assert_eq!(r.state(), State::Master);
}

/// A router at `priority` started at `t0`, its first actions not yet taken.
fn started(priority: u8, t0: Instant) -> Router {
    let mut r = Router::new(cfg(priority));
    r.start(t0);
    r
}

/// A master's answer out of turn: its advert at once, then its VIPs announced again.
fn advert_and_announce(priority: u8, reason: AnnounceReason) -> Vec<Action> {
    vec![
        Action::SendAdvert(adv(priority, SEC)),
        Action::Announce { reason },
    ]
}

/// `r` shuts down at `at`; the release's first actions are dropped.
fn start_release(r: &mut Router, at: Instant) {
    r.shutdown(at);
    let _ = drain(r);
}

fn drain(r: &mut Router) -> Vec<Action> {
    std::iter::from_fn(|| r.poll_action()).collect()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

fn changed(from: State, to: State, reason: Reason) -> Action {
    Action::StateChanged { from, to, reason }
}

fn takeover_actions(priority: u8, reason: Reason, from: State) -> Vec<Action> {
    vec![
        Action::SendAdvert(adv(priority, SEC)),
        Action::AddVips,
        Action::Announce {
            reason: AnnounceReason::Takeover,
        },
        changed(from, State::Master, reason),
    ]
}

/// A started backup at `priority`.
fn backup(priority: u8, t0: Instant) -> Router {
    let mut r = started(priority, t0);
    let _ = drain(&mut r);
    assert_eq!(r.state(), State::Backup);
    r
}

/// A master at `priority` (became master by timeout at t0 + MDI); returns the instant.
fn master(priority: u8, t0: Instant) -> (Router, Instant) {
    let mut r = backup(priority, t0);
    let t = r.poll_timeout().expect("master-down timer");
    r.handle_timeout(t);
    let _ = drain(&mut r);
    assert_eq!(r.state(), State::Master);
    (r, t)
}

mod backup;
mod bfd;
mod conditions;
mod grid;
mod master;
mod receive;
mod shutdown;
mod startup;
mod timers;

#[test]
fn no_state_changed_without_a_transition() {
    let t0 = Instant::now();
    let mut r = backup(100, t0);
    r.set_base_priority(t0, 100);
    r.set_override(t0, None);
    r.set_penalty(t0, 0);
    r.set_maintenance(t0, false);
    r.set_fault(t0, None);
    assert_eq!(r.poll_action(), None);
}

#[test]
fn display_strings() {
    assert_eq!(State::Master.to_string(), "master");
    assert_eq!(State::Init.to_string(), "init");
    assert_eq!(State::Backup.to_string(), "backup");
    assert_eq!(State::Fault.to_string(), "fault");
    assert_eq!(Reason::Startup.to_string(), "startup");
    assert_eq!(
        Reason::AddressOwner.to_string(),
        "address owner (priority 255)"
    );
    assert_eq!(Reason::FaultCleared.to_string(), "fault cleared");
    assert_eq!(Reason::Shutdown.to_string(), "shutdown");
    assert_eq!(Reason::Maintenance.to_string(), "maintenance");
    assert_eq!(
        Reason::MasterDown {
            master: Some(PEER_LO),
            silent_for: ms(3350)
        }
        .to_string(),
        "no advert from 192.0.2.10 for 3.35 s"
    );
}
