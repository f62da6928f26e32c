//! One vipd at a time: a lock taken before any change to the kernel.
//!
//! Two locks, both released by the kernel when the process ends (also on SIGKILL):
//!
//! * an abstract Unix socket `@vipd`, bound in the network namespace: abstract socket
//!   names are per network namespace, and so are the addresses vipd adds. A second
//!   vipd in the same namespace (same config or not) would remove the first one's
//!   addresses when it cleans up after "a crashed earlier run";
//! * an exclusive `flock` on `vipd.lock` in the state directory, which holds the
//!   operator's overrides: two daemons writing it would lose changes.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};

/// The abstract socket name that marks a running vipd in a network namespace.
const NETNS_LOCK_NAME: &[u8] = b"vipd";

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another vipd runs in this network namespace.
    #[error(
        "another vipd is already running in this network namespace (it holds the abstract socket @vipd); nothing was changed"
    )]
    NamespaceBusy,
    /// Another vipd uses the same state directory.
    #[error("another vipd is already running with state directory {0} (it holds {0}/vipd.lock); nothing was changed")]
    StateDirBusy(PathBuf),
    /// The lock could not be set up at all.
    #[error("cannot take the single-instance lock ({what}): {source}")]
    Io {
        /// What failed.
        what: String,
        /// The OS error.
        source: io::Error,
    },
}

/// Held for the life of the daemon (or of `vipd cleanup`).
#[derive(Debug)]
pub struct InstanceLock {
    _netns: UnixDatagram,
    _state: Option<File>,
}

impl InstanceLock {
    /// Takes the network-namespace lock, and the state-directory lock when `state_dir`
    /// is given (created if missing).
    pub fn acquire(state_dir: Option<&Path>) -> Result<Self, LockError> {
        let netns = netns_lock()?;
        let state = match state_dir {
            Some(dir) => Some(state_lock(dir)?),
            None => None,
        };
        Ok(InstanceLock {
            _netns: netns,
            _state: state,
        })
    }
}

fn netns_lock() -> Result<UnixDatagram, LockError> {
    let addr = SocketAddr::from_abstract_name(NETNS_LOCK_NAME).map_err(|source| LockError::Io {
        what: "abstract socket name".into(),
        source,
    })?;
    match UnixDatagram::bind_addr(&addr) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(LockError::NamespaceBusy),
        Err(source) => Err(LockError::Io {
            what: "binding the abstract socket @vipd".into(),
            source,
        }),
    }
}

fn state_lock(dir: &Path) -> Result<File, LockError> {
    std::fs::create_dir_all(dir).map_err(|source| LockError::Io {
        what: format!("creating {}", dir.display()),
        source,
    })?;
    let path = dir.join("vipd.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|source| LockError::Io {
            what: format!("opening {}", path.display()),
            source,
        })?;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(LockError::StateDirBusy(dir.to_path_buf()));
        }
        return Err(LockError::Io {
            what: format!("locking {}", path.display()),
            source: e,
        });
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_of_the_same_state_dir_is_refused() {
        let dir = std::env::temp_dir().join(format!("vipd-lock-test-{}", std::process::id()));
        let first = state_lock(&dir).expect("first lock");
        match state_lock(&dir) {
            Err(LockError::StateDirBusy(d)) => assert_eq!(d, dir),
            other => panic!("second lock: {other:?}"),
        }
        drop(first);
        state_lock(&dir).expect("free again once the first holder is gone");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
