//! The few system calls of `track` that neither std, tokio nor nix wrap: dropping
//! capabilities between `fork` and `exec`, and a pidfd to learn that a child exited
//! without reaping it. Every `unsafe` of `track` is here.
//!
//! Why not a capabilities crate: [`drop_capabilities`] runs in the forked child before
//! `exec` (`pre_exec`), where only async-signal-safe calls are allowed: no allocation,
//! no locks, no reading `/proc`. Three raw system calls on stack buffers are that.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// `_LINUX_CAPABILITY_VERSION_3` from `<linux/capability.h>`: two 32-bit words per set.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Capability numbers are below 64 (CAP_LAST_CAP is 40 on Linux 6.x); the kernel answers
/// EINVAL for the ones it does not know.
const CAP_SLOTS: libc::c_ulong = 64;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Makes the program about to be executed by this (forked, single-threaded) process
/// start without capabilities: empties the bounding set (possible only while this
/// process has CAP_SETPCAP, as a root daemon does), the ambient set and the inheritable
/// set. The process's own effective and permitted sets are left alone: `execve`
/// recomputes them from the sets cleared here.
///
/// Fails with EPERM when the real or effective user is root and the bounding set could
/// not be emptied: `execve` would give a root program every capability left in the
/// bounding set (the daemon's), so the program is not started at all. A non-root
/// program gets nothing from the bounding set unless its file carries capabilities.
///
/// Only async-signal-safe system calls: meant for `Command::pre_exec`.
pub(crate) fn drop_capabilities() -> io::Result<()> {
    let mut bounding_kept = false;
    for cap in 0..CAP_SLOTS {
        // SAFETY: prctl with integer arguments only; no memory is passed.
        let present = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap, 0 as libc::c_ulong) };
        if present != 1 {
            // 0: not in the set; -1 (EINVAL): no such capability on this kernel.
            continue;
        }
        // SAFETY: as above.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0 as libc::c_ulong) } != 0 {
            bounding_kept = true;
        }
    }
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        // EINVAL: a kernel before 4.3 has no ambient set, so nothing to clear.
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(e);
        }
    }
    let (header, mut data) = capget()?;
    for d in &mut data {
        d.inheritable = 0;
    }
    // Lowering the inheritable set is always allowed; it also clears any ambient bit.
    capset(header, &data)?;
    // SAFETY: getuid/geteuid cannot fail and take no arguments.
    let root = unsafe { libc::getuid() == 0 || libc::geteuid() == 0 };
    if bounding_kept && root {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    Ok(())
}

/// This thread's capability sets (`capget`, version 3: two data structs). No
/// allocation, so it may run between fork and exec.
fn capget() -> io::Result<(CapHeader, [CapData; 2])> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: `header` and `data` are valid, correctly laid out (version 3 = two data
    // structs) and live for the call.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((header, data))
}

/// Sets this thread's capability sets to `data` (as read by [`capget`]).
fn capset(mut header: CapHeader, data: &[CapData; 2]) -> io::Result<()> {
    // SAFETY: as in `capget`.
    if unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A pidfd for `pid` (Linux 5.3+): readable once the process has exited, while it is
/// still a zombie, so its pid and process group id cannot be reused until it is reaped.
pub(crate) fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = libc::c_int::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Registers a pidfd with the current tokio reactor (read interest only).
pub(crate) fn register_pidfd(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: `OwnedFd` owns its descriptor, keeps it open until dropped, and
    // `as_raw_fd` always returns that same descriptor.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into())
}

/// Makes `cmd` run [`drop_capabilities`] in the forked child, before `exec`; a failure
/// there fails the spawn with that error.
pub(crate) fn drop_capabilities_before_exec(cmd: &mut tokio::process::Command) {
    // SAFETY: `drop_capabilities` makes async-signal-safe system calls only (prctl,
    // capget, capset, getuid, geteuid): no allocation, no locks.
    unsafe {
        cmd.pre_exec(drop_capabilities);
    }
}

/// Test helpers that change the calling thread's capability sets (capabilities are
/// per thread: other tests, on other threads, are not affected).
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Puts `caps` (numbers below 32) into this thread's inheritable and ambient sets,
    /// as systemd's `AmbientCapabilities=` does for the packaged unit.
    pub(crate) fn raise_ambient(caps: &[u32]) -> io::Result<()> {
        let (header, mut data) = capget()?;
        for &c in caps {
            data[0].inheritable |= 1 << c;
        }
        capset(header, &data)?;
        for &c in caps {
            // SAFETY: prctl with integer arguments only.
            let rc = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    libc::c_ulong::from(c),
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// Removes `cap` (below 32) from this thread's effective set (it stays permitted).
    pub(crate) fn lower_effective(cap: u32) -> io::Result<()> {
        let (header, mut data) = capget()?;
        data[0].effective &= !(1 << cap);
        capset(header, &data)
    }

    /// Puts `cap` (below 32) back into this thread's effective set.
    pub(crate) fn raise_effective(cap: u32) -> io::Result<()> {
        let (header, mut data) = capget()?;
        data[0].effective |= 1 << cap;
        capset(header, &data)
    }
}
