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
//! A missing file (or state directory) is an empty store; a corrupt file is reported as
//! [`OverrideError::Corrupt`] and the caller decides what to do.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
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
        if let Some(p) = priority {
            if !(MIN_OPERATOR_PRIORITY..=MAX_OPERATOR_PRIORITY).contains(&p) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("priority {p} out of range (1..254)"),
                ));
            }
        }
        self.update(instance, |o| o.priority = priority)
    }

    /// Turns maintenance of `instance` on or off and saves.
    ///
    /// On error nothing changes, in memory or on disk.
    pub fn set_maintenance(&mut self, instance: &str, on: bool) -> io::Result<()> {
        self.update(instance, |o| o.maintenance = on)
    }

    /// Forgets every override of `instance` (e.g. after it left the configuration) and saves.
    pub fn remove(&mut self, instance: &str) -> io::Result<()> {
        self.update(instance, |o| *o = InstanceOverrides::default())
    }

    fn update(&mut self, instance: &str, f: impl FnOnce(&mut InstanceOverrides)) -> io::Result<()> {
        let mut next = self.instances.clone();
        let mut entry = next.get(instance).copied().unwrap_or_default();
        f(&mut entry);
        if entry.is_empty() {
            next.remove(instance);
        } else {
            next.insert(instance.to_string(), entry);
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
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, self.path())?;
            // Make the rename itself durable.
            File::open(&self.dir)?.sync_all()
        })();
        if result.is_err() && tmp.is_file() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
