//! Fault injection for the namespace tests (debug builds only).

/// Fault injection for the namespace tests, compiled into debug builds only: with
/// `VIPD_TEST_PANIC_DRIVER=<instance>` the driver panics on a maintenance command; with
/// `VIPD_TEST_HANG_DRIVER=<instance>` it stops answering the supervisor's pings (it
/// blocks its thread) once maintenance is on. Release builds ignore both.
#[cfg(debug_assertions)]
pub(super) fn test_fault_injection(instance: &str, on_ping: bool) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;
    static HANG: AtomicBool = AtomicBool::new(false);
    let is = |var: &str| std::env::var(var).ok().as_deref() == Some(instance);
    if on_ping {
        if HANG.load(Ordering::Relaxed) && is("VIPD_TEST_HANG_DRIVER") {
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        return;
    }
    if is("VIPD_TEST_PANIC_DRIVER") {
        panic!("test-induced panic in {instance}");
    }
    if is("VIPD_TEST_HANG_DRIVER") {
        HANG.store(true, Ordering::Relaxed);
    }
}

#[cfg(not(debug_assertions))]
pub(super) fn test_fault_injection(_instance: &str, _on_ping: bool) {}
