//! Opening the files a user names (models, surveys, tables, cards, tensors) so that no path
//! can hang the program or exhaust its memory: only regular files are read (a FIFO would
//! block forever, `/dev/zero` never ends), and every whole-file read is capped by the bytes
//! actually read, not by the size the file reports.

use std::fs::{File, FileType};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The most bytes a survey file, a card or another small text input may have.
pub const MAX_TEXT_BYTES: u64 = 16 << 20;
/// The most bytes a CSV table (targets, responses) may have.
pub const MAX_TABLE_BYTES: u64 = 1 << 30;

/// Words for a kind of file, for error messages ("a named pipe (FIFO)").
pub fn kind_of(t: &FileType) -> &'static str {
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a named pipe (FIFO)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

/// The error for a path that is not a regular file (callers name the path).
fn not_regular(t: &FileType) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("it is {}; expected a regular file", kind_of(t)),
    )
}

/// Checks without opening (so without blocking) that `path` names a regular file, following
/// symlinks.
pub fn ensure_regular(path: &Path) -> std::io::Result<()> {
    let m = std::fs::metadata(path)?;
    if m.file_type().is_file() {
        Ok(())
    } else {
        Err(not_regular(&m.file_type()))
    }
}

/// Opens a path for reading without blocking on a FIFO (`O_NONBLOCK`); the caller checks what
/// it opened.
pub fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

/// Opens a regular file for reading. The open itself cannot block (`O_NONBLOCK`, which does
/// nothing to a regular file's reads), and anything else found there is refused.
pub fn open_regular(path: &Path) -> std::io::Result<File> {
    let f = open_nonblocking(path)?;
    let t = f.metadata()?.file_type();
    if !t.is_file() {
        return Err(not_regular(&t));
    }
    Ok(f)
}

/// Reads a whole regular file of at most `max` bytes.
pub fn read_capped(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let f = open_regular(path)?;
    let mut out = Vec::new();
    f.take(max + 1).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("it is larger than the {max} bytes this input may have"),
        ));
    }
    Ok(out)
}

/// Reads a whole regular UTF-8 text file of at most `max` bytes.
pub fn read_text(path: &Path, max: u64) -> std::io::Result<String> {
    String::from_utf8(read_capped(path, max)?).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "it is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_fifos_and_devices_and_caps_reads() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let ok = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            let e = read_capped(&fifo, 10).unwrap_err();
            assert!(e.to_string().contains("named pipe"), "{e}");
            assert!(ensure_regular(&fifo).is_err());
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&fifo, &link).unwrap();
            assert!(read_text(&link, 10).is_err());
        }
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; 11]).unwrap();
        assert!(read_capped(&big, 10).is_err());
        assert_eq!(read_capped(&big, 11).unwrap().len(), 11);
        std::fs::write(&big, [0xff, 0xfe]).unwrap();
        assert!(read_text(&big, 10)
            .unwrap_err()
            .to_string()
            .contains("UTF-8"));
    }
}
