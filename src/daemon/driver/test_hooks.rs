//! Fault injection for the namespace tests (debug builds only).

/// Fault injection for the namespace tests, compiled into debug builds only: with
/// `VIPD_TEST_PANIC_DRIVER=<instance>` the driver panics on a maintenance command; with
/// `VIPD_TEST_HANG_DRIVER=<instance>` it stops answering the supervisor's pings once
/// maintenance is on: this returns `true` on the next ping, and the driver's task then
/// waits forever, as a driver stuck on an await would. (A driver that blocked the
/// runtime's one thread would stop the supervisor too: the watchdog would go unfed all
/// the same, but nothing could log why.) Release builds ignore both.
#[cfg(debug_assertions)]
pub(super) fn test_fault_injection(instance: &str, on_ping: bool) -> bool {
    use std::sync::atomic::{AtomicBool, Ordering};
    static HANG: AtomicBool = AtomicBool::new(false);
    let is = |var: &str| std::env::var(var).ok().as_deref() == Some(instance);
    if on_ping {
        return HANG.load(Ordering::Relaxed) && is("VIPD_TEST_HANG_DRIVER");
    }
    if is("VIPD_TEST_PANIC_DRIVER") {
        panic!("test-induced panic in {instance}");
    }
    if is("VIPD_TEST_HANG_DRIVER") {
        HANG.store(true, Ordering::Relaxed);
    }
    false
}

#[cfg(not(debug_assertions))]
pub(super) fn test_fault_injection(_instance: &str, _on_ping: bool) -> bool {
    false
}
