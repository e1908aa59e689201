//! Writing files so that a reader never sees a half-written one: write a temporary file in the
//! same directory, flush it to disk, then rename it over the target. Only a regular file (or
//! nothing) is ever replaced: a symlink, a device, a FIFO or a directory at the target is
//! refused, so the program never swaps out something it did not create.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A temporary name in `dir`, short whatever the target's name (a 255-byte file name must
/// still get one) and unique within this process and among processes.
pub fn temp_sibling(dir: &Path, tag: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".ct-{tag}-{}-{n}", std::process::id()))
}

/// The directory a path lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Refuses a target that exists and is not a regular file (a symlink is refused even when it
/// points at one: replacing it would replace the link, writing through it would write
/// elsewhere).
pub fn check_replaceable(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => Ok(()),
        Ok(m) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "it is {}, not a regular file; refusing to replace it (choose a new file name)",
                crate::input_file::kind_of(&m.file_type())
            ),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes `bytes` to `path` atomically (temporary sibling file + fsync + rename). An existing
/// target that is not a regular file is refused and left as it is.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with(path, |w| w.write_all(bytes))
}

/// Writes what `fill` writes to `path` atomically, as [`write`] does, without holding it all
/// in memory (a model file of gigabytes). On any error, from `fill` or the file system, the
/// temporary file is removed and the target is left as it was.
pub fn write_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    check_replaceable(path)?;
    let tmp = temp_sibling(parent_dir(path), "tmp");
    let result = (|| {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        fill(&mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        check_replaceable(path)?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    #[test]
    fn writes_and_replaces_without_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.txt");
        super::write(&p, b"one").unwrap();
        super::write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(super::write(&dir.path().join("missing/x"), b"x").is_err());
    }

    #[test]
    fn refuses_symlinks_directories_and_fifos_and_takes_long_names() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.txt");
        std::fs::write(&target, b"mine").unwrap();
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = super::write(&link, b"x").unwrap_err();
        assert!(e.to_string().contains("a symbolic link"), "{e}");
        assert_eq!(std::fs::read(&target).unwrap(), b"mine");
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert!(super::write(&sub, b"x").is_err());
        assert!(sub.is_dir());
        let long = dir.path().join("n".repeat(250));
        super::write(&long, b"long").unwrap();
        assert_eq!(std::fs::read(&long).unwrap(), b"long");
        // Nothing but what the test made is left.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
    }
}
