//! The ack file: the position of the first entry not yet fully delivered.

use super::writer::Pos;
use std::fs::File;
use std::path::Path;

pub(super) fn read_ack(dir: &Path) -> Pos {
    let Ok(text) = std::fs::read_to_string(dir.join("ack")) else {
        return Pos::default();
    };
    let mut parts = text.split_whitespace().map(str::parse::<u64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(seg)), Some(Ok(offset))) => Pos { seg, offset },
        _ => {
            tracing::warn!(dir = %dir.display(), "unreadable ack file; sending the whole buffer again");
            Pos::default()
        }
    }
}

/// Saves the ack position: a new file renamed over the old one, so a crash leaves one or the
/// other whole. With `sync`, the file is synced before the rename and the directory after it,
/// so that after a power loss the position is this one or a later one. A save without `sync`
/// that a power loss undoes leaves an older position (or none): lines are sent again, never
/// skipped.
pub(super) fn write_ack(dir: &Path, pos: Pos, sync: bool) -> std::io::Result<()> {
    let tmp = dir.join("ack.tmp");
    {
        let mut f = File::create(&tmp)?;
        std::io::Write::write_all(&mut f, format!("{} {}\n", pos.seg, pos.offset).as_bytes())?;
        if sync {
            f.sync_all()?;
        }
    }
    std::fs::rename(tmp, dir.join("ack"))?;
    if sync {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}
