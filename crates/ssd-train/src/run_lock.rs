//! One training run per results folder: an exclusive lock on `<results>/.ssd-train.lock`, held
//! for the whole run. The operating system releases it when the process ends, however it ends
//! (`kill -9` included), so nothing is left to clean up; the file keeps the holder's process id,
//! for the error a second run gets.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::TrainError;

/// The lock file's name inside a results folder.
pub(crate) const LOCK_FILE: &str = ".ssd-train.lock";

/// The lock of a results folder, held until dropped.
#[derive(Debug)]
pub(crate) struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes `results`' lock (creating the folder), or [`TrainError::ResultsInUse`] while another
    /// run holds it.
    pub(crate) fn acquire(results: &Path) -> Result<Self, TrainError> {
        std::fs::create_dir_all(results).map_err(TrainError::io(results))?;
        let path = results.join(LOCK_FILE);
        // Not truncated on open: until the lock is ours, the file holds the holder's id.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(TrainError::io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(TrainError::ResultsInUse {
                    results: results.to_owned(),
                    holder: holder(&mut file),
                    checkpoint: None,
                });
            }
            Err(TryLockError::Error(e)) => return Err(TrainError::io(&path)(e)),
        }
        let id = format!("{}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(id.as_bytes()))
            .map_err(TrainError::io(&path))?;
        Ok(Self { _file: file })
    }

    /// Fails with [`TrainError::ResultsInUse`] naming `checkpoint` while a run holds the lock of
    /// the results folder it was written in (`<results>/weights/<checkpoint>`): resuming it
    /// then would train beside the run that is still writing it. A folder without a lock file
    /// has no run.
    pub(crate) fn check_checkpoint(checkpoint: &Path) -> Result<(), TrainError> {
        let Some(results) = checkpoint.parent().and_then(Path::parent) else {
            return Ok(());
        };
        let path = results.join(LOCK_FILE);
        let Ok(mut file) = File::open(&path) else {
            return Ok(());
        };
        match file.try_lock_shared() {
            Ok(()) => Ok(()),
            Err(TryLockError::WouldBlock) => Err(TrainError::ResultsInUse {
                results: results.to_owned(),
                holder: holder(&mut file),
                checkpoint: Some(checkpoint.to_owned()),
            }),
            Err(TryLockError::Error(e)) => Err(TrainError::io(&path)(e)),
        }
    }
}

/// The process id the lock file holds, if it holds one.
fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}
