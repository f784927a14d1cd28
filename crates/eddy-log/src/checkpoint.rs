//! Small text checkpoint files, written atomically (tmp + fsync + rename +
//! fsync of the directory).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

pub(crate) const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";
pub(crate) const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset";
pub(crate) const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point";
/// First offset the cleaner has not cleaned (Kafka keeps these per data
/// directory in `cleaner-offset-checkpoint`; Eddy keeps one per partition).
pub(crate) const CLEANER_OFFSET_CHECKPOINT: &str = "cleaner-offset-checkpoint";
const VERSION: &str = "0";

/// Replace `dir/name` with `contents`, durably.
pub(crate) fn write_atomic(dir: &Path, name: &str, contents: &str) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Why a checkpoint file could not be used.
#[derive(Debug)]
pub(crate) enum CheckpointError {
    Io(io::Error),
    Malformed(String),
}

fn read_lines(path: &Path) -> Result<Option<Vec<String>>, CheckpointError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s.lines().map(|l| l.trim().to_string()).collect())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            Err(CheckpointError::Malformed("not UTF-8".into()))
        }
        Err(e) => Err(CheckpointError::Io(e)),
    }
}

fn malformed(path: &Path, what: &str) -> CheckpointError {
    CheckpointError::Malformed(format!("{}: {what}", path.display()))
}

/// Single-offset checkpoint: `0\n<offset>\n`. `None` if the file is missing.
pub(crate) fn read_offset(path: &Path) -> Result<Option<i64>, CheckpointError> {
    let Some(lines) = read_lines(path)? else {
        return Ok(None);
    };
    if lines.first().map(String::as_str) != Some(VERSION) {
        return Err(malformed(path, "unknown version"));
    }
    let off = lines
        .get(1)
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|&o| o >= 0)
        .ok_or_else(|| malformed(path, "bad offset line"))?;
    Ok(Some(off))
}

pub(crate) fn write_offset(dir: &Path, name: &str, offset: i64) -> io::Result<()> {
    write_atomic(dir, name, &format!("{VERSION}\n{offset}\n"))
}

/// Kafka's leader-epoch-checkpoint: version, count, then `epoch startOffset`
/// lines. `None` if missing.
pub(crate) fn read_leader_epochs(path: &Path) -> Result<Option<Vec<(i32, i64)>>, CheckpointError> {
    let Some(lines) = read_lines(path)? else {
        return Ok(None);
    };
    if lines.first().map(String::as_str) != Some(VERSION) {
        return Err(malformed(path, "unknown version"));
    }
    let count = lines
        .get(1)
        .and_then(|l| l.parse::<usize>().ok())
        .ok_or_else(|| malformed(path, "bad count line"))?;
    let entries: Vec<&String> = lines.iter().skip(2).filter(|l| !l.is_empty()).collect();
    if entries.len() != count {
        return Err(malformed(path, "count does not match the entries"));
    }
    let mut out: Vec<(i32, i64)> = Vec::with_capacity(count);
    for l in entries {
        let mut it = l.split_whitespace();
        let (Some(e), Some(o), None) = (it.next(), it.next(), it.next()) else {
            return Err(malformed(path, "bad entry line"));
        };
        let (Ok(e), Ok(o)) = (e.parse::<i32>(), o.parse::<i64>()) else {
            return Err(malformed(path, "bad entry line"));
        };
        if let Some(&(pe, po)) = out.last() {
            if e <= pe || o < po {
                return Err(malformed(path, "entries not increasing"));
            }
        }
        out.push((e, o));
    }
    Ok(Some(out))
}

pub(crate) fn write_leader_epochs(dir: &Path, entries: &[(i32, i64)]) -> io::Result<()> {
    let mut s = format!("{VERSION}\n{}\n", entries.len());
    for (e, o) in entries {
        s.push_str(&format!("{e} {o}\n"));
    }
    write_atomic(dir, LEADER_EPOCH_CHECKPOINT, &s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_epochs_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(RECOVERY_POINT_CHECKPOINT);
        assert!(read_offset(&p).unwrap().is_none());
        write_offset(d.path(), RECOVERY_POINT_CHECKPOINT, 42).unwrap();
        assert_eq!(read_offset(&p).unwrap(), Some(42));
        fs::write(&p, "0\nx\n").unwrap();
        assert!(matches!(
            read_offset(&p),
            Err(CheckpointError::Malformed(_))
        ));

        let e = vec![(0, 0), (3, 100), (7, 250)];
        write_leader_epochs(d.path(), &e).unwrap();
        let text = fs::read_to_string(d.path().join(LEADER_EPOCH_CHECKPOINT)).unwrap();
        assert_eq!(text, "0\n3\n0 0\n3 100\n7 250\n");
        assert_eq!(
            read_leader_epochs(&d.path().join(LEADER_EPOCH_CHECKPOINT)).unwrap(),
            Some(e)
        );
    }
}
