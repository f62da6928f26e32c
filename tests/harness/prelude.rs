//! The small names nearly every namespace test uses: `use harness::prelude::*;`. A test
//! file's own item of the same name wins over these (glob imports yield to local items).

use std::net::IpAddr;
use std::time::Duration;

use super::vipd::VipdInstance;

/// The VIP the two-router tests move around, in the LAN's 192.0.2.0/24.
pub const VIP: &str = "192.0.2.100";

/// [`VIP`] as an address.
pub fn vip() -> IpAddr {
    VIP.parse().expect("constant VIP parses")
}

/// `n` milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `n` seconds.
pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A duration in (fractional) milliseconds, for `measure:` lines.
pub fn msf(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The instance most tests run: `web`, VRID 51, `priority`, VIP [`VIP`]/24, 100 ms adverts.
pub fn web(priority: u8) -> VipdInstance {
    VipdInstance::new("web", 51, priority, &[&format!("{VIP}/24")])
}
