//! Files the commands write (results, exported models): never over one of the command's
//! inputs, never over anything but a regular file, over an existing file only when asked, and
//! whole or not at all.
//!
//! [`check_output`] says whether a path may be written; [`write_atomically`] writes it under a
//! temporary name in the same folder (`.<name>.<pid>.tmp`), flushed, then renamed into place, so
//! a process killed at any moment leaves the previous file or the new one. Temporaries of that
//! naming left by a killed process are removed the next time the same output is written.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::DataError;

/// Checks that `path` may be written: missing, or a regular file that `overwrite` allows to
/// replace and that is none of `inputs` (files, or folders whose files are all inputs; compared
/// by identity, so another name or a hard link is caught). `inputs` is only read when `path`
/// exists. A symbolic link is refused even when it points to a regular file: replacing it would
/// replace the link, not what it points to.
pub fn check_output<I, P>(path: &Path, overwrite: bool, inputs: I) -> Result<(), DataError>
where
    I: IntoIterator<Item = P>,
    P: AsRef<Path>,
{
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(DataError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let file_type = metadata.file_type();
    if !file_type.is_file() {
        return Err(DataError::OutputNotAFile {
            path: path.to_owned(),
            kind: kind_of(&file_type),
        });
    }
    let folder = folder_of(path);
    for input in inputs {
        let input = input.as_ref();
        let Ok(meta) = std::fs::metadata(input) else {
            continue;
        };
        let same = if meta.is_dir() {
            std::fs::metadata(&folder).is_ok_and(|f| same_file(&f, &meta))
        } else {
            same_file(&metadata, &meta)
        };
        if same {
            return Err(DataError::OutputIsInput {
                path: path.to_owned(),
                input: input.to_owned(),
            });
        }
    }
    if overwrite {
        Ok(())
    } else {
        Err(DataError::OutputExists {
            path: path.to_owned(),
        })
    }
}

/// Writes `bytes` to `path` whole or not at all (see the module's doc); its folder must exist.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    let tmp = temporary_path(path)?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| DataError::Io { path, source }
    };
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .map_err(io(&tmp))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(io(path)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The temporary name `path` is written under before it is renamed into place
/// (`.<name>.<pid>.tmp` in its folder, which must exist), for writers that are not one
/// [`write_atomically`] call (a video encoder, a file appended to as frames are done). Earlier
/// temporaries of killed processes are removed first.
pub fn temporary_path(path: &Path) -> Result<PathBuf, DataError> {
    let folder = folder_of(path);
    if !folder.is_dir() {
        return Err(DataError::NoOutputFolder {
            path: path.to_owned(),
            folder,
        });
    }
    let name = path
        .file_name()
        .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
    remove_stale_temporaries(&folder, &name);
    Ok(folder.join(format!(".{name}.{}.tmp", std::process::id())))
}

/// A file written whole or not at all: it is written under [`temporary_path`] and renamed into
/// place by [`commit`](Self::commit); dropped uncommitted, the temporary is removed.
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
}

impl AtomicFile {
    /// Starts writing `path` (its folder must exist).
    pub fn create(path: &Path) -> Result<Self, DataError> {
        let tmp = temporary_path(path)?;
        let file = std::fs::File::create(&tmp).map_err(|source| DataError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            path: path.to_owned(),
            tmp,
            file: Some(std::io::BufWriter::new(file)),
        })
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `bytes`.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), DataError> {
        let io = |source| DataError::Io {
            path: self.path.clone(),
            source,
        };
        match &mut self.file {
            Some(f) => f.write_all(bytes).map_err(io),
            None => Err(io(std::io::Error::other("already committed"))),
        }
    }

    /// Flushes the file to disk and renames it into place.
    pub fn commit(mut self) -> Result<(), DataError> {
        let io = |source| DataError::Io {
            path: self.path.clone(),
            source,
        };
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        let file = file.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&self.tmp, &self.path).map_err(io)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Removes `.<name>.<pid>.tmp` files in `folder` whose process is gone (known from `/proc`
/// where there is one, else when over a day old). Best effort: what cannot be removed stays.
fn remove_stale_temporaries(folder: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    let prefix = format!(".{name}.");
    let proc_known = Path::new("/proc/self").exists();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|rest| rest.strip_suffix(".tmp"))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let stale = if pid == std::process::id() {
            false
        } else if proc_known {
            !Path::new(&format!("/proc/{pid}")).exists()
        } else {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 24 * 3600)
        };
        if stale && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn kind_of(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_char_device() || t.is_block_device() {
            return "device";
        }
        if t.is_fifo() {
            return "named pipe";
        }
        if t.is_socket() {
            return "socket";
        }
    }
    if t.is_symlink() {
        "symbolic link"
    } else if t.is_dir() {
        "folder"
    } else {
        "special file"
    }
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

#[cfg(not(unix))]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    // Without inode numbers: the same size, times and type is taken for the same file.
    a.len() == b.len()
        && a.file_type() == b.file_type()
        && a.modified().ok() == b.modified().ok()
        && a.created().ok() == b.created().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ssd-output-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch");
        dir
    }

    #[test]
    fn missing_outputs_pass_and_existing_ones_need_overwrite() {
        let dir = scratch("exists");
        let out = dir.join("out.json");
        check_output(&out, false, [&dir]).expect("missing");
        write_atomically(&out, b"1").expect("written");
        assert!(matches!(
            check_output(&out, false, None::<&Path>),
            Err(DataError::OutputExists { .. })
        ));
        check_output(&out, true, None::<&Path>).expect("overwrite");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[cfg(unix)]
    #[test]
    fn links_folders_devices_and_inputs_are_never_written_over() {
        let dir = scratch("kinds");
        let input = dir.join("instances.json");
        std::fs::write(&input, b"{}").expect("input");
        let link = dir.join("link.json");
        std::os::unix::fs::symlink("/proc/self/fd/1", &link).expect("symlink");
        let to_file = dir.join("to_file.json");
        std::os::unix::fs::symlink(&input, &to_file).expect("symlink");
        for (path, kind) in [
            (link, "symbolic link"),
            (to_file, "symbolic link"),
            (dir.clone(), "folder"),
            (PathBuf::from("/dev/null"), "device"),
        ] {
            match check_output(&path, true, None::<&Path>) {
                Err(DataError::OutputNotAFile { kind: k, .. }) => assert_eq!(k, kind),
                other => panic!("{}: {other:?}", path.display()),
            }
        }
        // The same file by another name, and a hard link to it.
        let other_name = dir.join(".").join("instances.json");
        let hard = dir.join("hard.json");
        std::fs::hard_link(&input, &hard).expect("hard link");
        for path in [&other_name, &hard] {
            let err = check_output(path, true, [&input]).expect_err("an input");
            assert!(matches!(err, DataError::OutputIsInput { .. }), "{err}");
        }
        // A file inside an input folder (a checkpoint folder) is an input.
        let model = dir.join("model.bpk");
        std::fs::write(&model, b"weights").expect("model");
        let err = check_output(&model, true, [&dir]).expect_err("in the input folder");
        assert!(
            err.to_string().contains("an input of this command"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed() {
        let dir = scratch("stale");
        let out = dir.join("model.onnx");
        // A process id that is not running: over the largest Linux allows.
        let stale = dir.join(".model.onnx.4194999.tmp");
        let other = dir.join(".other.onnx.4194999.tmp");
        for p in [&stale, &other] {
            std::fs::write(p, b"partial").expect("temporary");
        }
        write_atomically(&out, b"model").expect("written");
        assert_eq!(std::fs::read(&out).expect("read"), b"model");
        if Path::new("/proc/self").exists() {
            assert!(!stale.exists(), "the stale temporary is removed");
        }
        assert!(other.exists(), "another output's temporary is left alone");
        let _ = std::fs::remove_dir_all(dir);
    }
}
