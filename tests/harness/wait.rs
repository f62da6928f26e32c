//! Waiters on the LAN's addresses: who holds a VIP. Each is bounded in time and in count
//! (through [`wait_until`]) and returns how long it took, or `None` on timeout; the
//! `expect_*` forms panic instead, with the holders and a snapshot of the LAN.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::topology::Topology;
use super::wait_until;

/// How often the address waiters look (an `ip addr` per host per look).
const STEP: Duration = Duration::from_millis(10);

impl Topology {
    /// Waits until `host`, and no other host, holds `vip`; returns the time it took.
    pub fn wait_sole_holder(&self, vip: IpAddr, host: &str, timeout: Duration) -> Option<Duration> {
        let t0 = Instant::now();
        wait_until(timeout, STEP, || self.vip_holders(vip) == [host]).then(|| t0.elapsed())
    }

    /// [`Topology::wait_sole_holder`], panicking (with the holders and a snapshot) when the
    /// time runs out.
    #[track_caller]
    pub fn expect_sole_holder(&self, vip: IpAddr, host: &str, timeout: Duration) -> Duration {
        match self.wait_sole_holder(vip, host, timeout) {
            Some(took) => took,
            None => panic!(
                "expected {host} alone to hold {vip} within {timeout:?}; holders: {:?}\n{}",
                self.vip_holders(vip),
                self.snapshot()
            ),
        }
    }

    /// Waits until `host` holds `vip` (others may too: a crashed agent leaves its VIPs
    /// behind); returns the time it took.
    pub fn wait_holds(&self, host: &str, vip: IpAddr, timeout: Duration) -> Option<Duration> {
        let t0 = Instant::now();
        wait_until(timeout, STEP, || self.holds_vip(host, vip)).then(|| t0.elapsed())
    }

    /// [`Topology::wait_holds`], panicking with the holders and a snapshot on timeout.
    #[track_caller]
    pub fn expect_holds(&self, host: &str, vip: IpAddr, timeout: Duration) -> Duration {
        match self.wait_holds(host, vip, timeout) {
            Some(took) => took,
            None => panic!(
                "expected {host} to hold {vip} within {timeout:?}; holders: {:?}\n{}",
                self.vip_holders(vip),
                self.snapshot()
            ),
        }
    }
}
