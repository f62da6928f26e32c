//! Persisted operator state: priority overrides and maintenance, per instance.
//!
//! Kept in `<state-dir>/overrides.json` so that a drained host stays drained across
//! restarts and reboots:
//!
//! ```text
//! {"version":1,"instances":{"web":{"priority":200,"maintenance":true}}}
//! ```
//!
//! Every change is written atomically (temporary file, `fsync`, `rename`, `fsync` of the
//! directory): after a crash the file holds either the old or the new state, never a mix.
//! A change to several instances at once (a sync group's members, [`OverrideStore::apply`])
//! is one such write, so a crash cannot leave half a group drained.
//! A missing file (or state directory) is an empty store; a corrupt file is reported as
//! [`OverrideError::Corrupt`] and the caller decides what to do.
//!
//! The temporary file is created with `O_CREAT | O_EXCL | O_NOFOLLOW`: whatever sits at its
//! path (a stale temporary file from a crash, or a symlink planted by someone who can write
//! to the state directory) is unlinked first, never opened, and if something reappears there
//! before the exclusive create, the write fails instead of following it.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::message::{MAX_OPERATOR_PRIORITY, MIN_OPERATOR_PRIORITY};

/// The file name inside the state directory.
pub const OVERRIDES_FILE: &str = "overrides.json";
const TEMP_FILE: &str = ".overrides.json.tmp";
const FILE_VERSION: u32 = 1;

/// The operator's settings for one instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceOverrides {
    /// Priority override (1..=254), replacing the configured priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// Maintenance (drain): hand over and stay backup.
    #[serde(default)]
    pub maintenance: bool,
}

impl InstanceOverrides {
    fn is_empty(&self) -> bool {
        self.priority.is_none() && !self.maintenance
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileForm {
    version: u32,
    #[serde(default)]
    instances: BTreeMap<String, InstanceOverrides>,
}

/// One change to one instance's overrides, for [`OverrideStore::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Set (1..=254) or clear the priority override.
    Priority(Option<u8>),
    /// Turn maintenance on or off.
    Maintenance(bool),
    /// Forget every override of the instance.
    Clear,
}

/// Why the override store could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum OverrideError {
    /// The file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file was read but its contents make no sense.
    #[error("corrupt override file {path}: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
}

/// The operator's overrides for every instance, backed by a file in the state directory.
#[derive(Debug, Clone)]
pub struct OverrideStore {
    dir: PathBuf,
    instances: BTreeMap<String, InstanceOverrides>,
}

impl OverrideStore {
    /// Loads `<dir>/overrides.json`; a missing file or directory gives an empty store.
    pub fn load(dir: &Path) -> Result<Self, OverrideError> {
        let path = dir.join(OVERRIDES_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(OverrideStore {
                    dir: dir.to_path_buf(),
                    instances: BTreeMap::new(),
                })
            }
            Err(source) => return Err(OverrideError::Read { path, source }),
        };
        let corrupt = |detail: String| OverrideError::Corrupt {
            path: path.clone(),
            detail,
        };
        let form: FileForm = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if form.version != FILE_VERSION {
            return Err(corrupt(format!(
                "unsupported version {} (expected {FILE_VERSION})",
                form.version
            )));
        }
        for (name, o) in &form.instances {
            if let Some(p) = o.priority {
                if !(MIN_OPERATOR_PRIORITY..=MAX_OPERATOR_PRIORITY).contains(&p) {
                    return Err(corrupt(format!(
                        "instance {name:?}: priority {p} out of range (1..254)"
                    )));
                }
            }
        }
        let mut instances = form.instances;
        instances.retain(|_, o| !o.is_empty());
        Ok(OverrideStore {
            dir: dir.to_path_buf(),
            instances,
        })
    }

    /// The path of the backing file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(OVERRIDES_FILE)
    }

    /// The overrides of `instance` (none if it has never been touched).
    pub fn get(&self, instance: &str) -> InstanceOverrides {
        self.instances.get(instance).copied().unwrap_or_default()
    }

    /// Every instance that has an override, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, InstanceOverrides)> {
        self.instances.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// Sets or clears the priority override of `instance` and saves.
    ///
    /// On error nothing changes, in memory or on disk.
    pub fn set_priority(&mut self, instance: &str, priority: Option<u8>) -> io::Result<()> {
        self.apply(&[(instance, Change::Priority(priority))])
    }

    /// Turns maintenance of `instance` on or off and saves.
    ///
    /// On error nothing changes, in memory or on disk.
    pub fn set_maintenance(&mut self, instance: &str, on: bool) -> io::Result<()> {
        self.apply(&[(instance, Change::Maintenance(on))])
    }

    /// Forgets every override of `instance` (e.g. after it left the configuration) and saves.
    pub fn remove(&mut self, instance: &str) -> io::Result<()> {
        self.apply(&[(instance, Change::Clear)])
    }

    /// Applies every change, in order, and saves them in one atomic write: after a crash
    /// the file holds all of them or none. Used for a sync group, whose members must not
    /// end up half drained.
    ///
    /// On error (a priority out of range anywhere in `changes`, or a failed write) nothing
    /// changes, in memory or on disk.
    pub fn apply(&mut self, changes: &[(&str, Change)]) -> io::Result<()> {
        let mut next = self.instances.clone();
        for (instance, change) in changes {
            let mut entry = next.get(*instance).copied().unwrap_or_default();
            match *change {
                Change::Priority(priority) => {
                    if let Some(p) = priority {
                        if !(MIN_OPERATOR_PRIORITY..=MAX_OPERATOR_PRIORITY).contains(&p) {
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidInput,
                                format!("{instance}: priority {p} out of range (1..254)"),
                            ));
                        }
                    }
                    entry.priority = priority;
                }
                Change::Maintenance(on) => entry.maintenance = on,
                Change::Clear => entry = InstanceOverrides::default(),
            }
            if entry.is_empty() {
                next.remove(*instance);
            } else {
                next.insert(instance.to_string(), entry);
            }
        }
        if next == self.instances && self.path().exists() {
            return Ok(());
        }
        self.write(&next)?;
        self.instances = next;
        Ok(())
    }

    fn write(&self, instances: &BTreeMap<String, InstanceOverrides>) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let form = FileForm {
            version: FILE_VERSION,
            instances: instances.clone(),
        };
        let mut bytes = serde_json::to_vec_pretty(&form).map_err(io::Error::other)?;
        bytes.push(b'\n');
        let tmp = self.dir.join(TEMP_FILE);
        let result = (|| {
            let mut f = create_temp(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, self.path())?;
            // Make the rename itself durable.
            File::open(&self.dir)?.sync_all()
        })();
        if result.is_err() && fs::symlink_metadata(&tmp).is_ok_and(|m| m.is_file()) {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

/// Creates the temporary file at `tmp`, mode 0600, never through a symlink: a leftover
/// at the path (a stale file from a crash, a planted symlink; unlinking a symlink does
/// not touch its target) is removed first, then the file is created with
/// `O_CREAT | O_EXCL | O_NOFOLLOW`, which fails rather than open anything that
/// reappeared there in between.
fn create_temp(tmp: &Path) -> io::Result<File> {
    match fs::symlink_metadata(tmp) {
        Ok(meta) if meta.is_dir() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} is a directory", tmp.display()),
            ))
        }
        Ok(_) => fs::remove_file(tmp)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    open_exclusive(tmp)
}

/// `open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600)`.
fn open_exclusive(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vipd-ov-unit-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("temp dir");
        d
    }

    // The exclusive create itself: a symlink (or anything) already at the path is an
    // error, never followed, whatever it points to.
    #[test]
    fn the_temporary_file_is_never_opened_through_a_symlink() {
        let d = temp_dir("nofollow");
        let victim = d.join("victim");
        fs::write(&victim, b"keep").expect("victim");
        let link = d.join(TEMP_FILE);
        std::os::unix::fs::symlink(&victim, &link).expect("symlink");
        let r = open_exclusive(&link);
        assert_eq!(
            r.as_ref().map_err(|e| e.kind()).err(),
            Some(io::ErrorKind::AlreadyExists),
            "{r:?}"
        );
        // A dangling symlink is not followed to create its target either.
        let dangling = d.join("dangling");
        std::os::unix::fs::symlink(d.join("created-through-link"), &dangling).expect("symlink");
        assert!(open_exclusive(&dangling).is_err());
        assert!(!d.join("created-through-link").exists());
        assert_eq!(fs::read(&victim).expect("victim"), b"keep");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn empty_entries_are_not_kept() {
        let o = InstanceOverrides::default();
        assert!(o.is_empty());
        assert!(!InstanceOverrides {
            priority: None,
            maintenance: true
        }
        .is_empty());
    }
}
