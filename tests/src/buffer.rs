//! The disk buffer's files as a test sees them from outside: its segments (`<n>.seg`) and its
//! ack files (`ack`, `ack.<output>`), and a segment damaged the way a crash leaves it.

use std::path::{Path, PathBuf};

/// Segment files in `dir` with their sizes, in order.
pub fn segment_sizes(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut segs: Vec<(PathBuf, u64)> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
                .filter_map(|e| Some((e.path(), e.metadata().ok()?.len())))
                .collect()
        })
        .unwrap_or_default();
    segs.sort();
    segs
}

/// How many segment files `dir` holds, and how many of them are empty.
pub fn segment_count(dir: &Path) -> (usize, usize) {
    let segs = segment_sizes(dir);
    (segs.len(), segs.iter().filter(|(_, l)| *l == 0).count())
}

/// Segment files in `dir` holding something, in order.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    segment_sizes(dir)
        .into_iter()
        .filter(|(_, l)| *l > 0)
        .map(|(p, _)| p)
        .collect()
}

/// The ack files of the buffer in `dir` (the common one and each output's).
pub fn ack_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("buffer dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n == "ack" || n.starts_with("ack."))
        })
        .collect()
}

/// Appends a torn entry (a header promising more bytes than follow) to the newest segment in
/// `dir`, as a crash in the middle of a write leaves it.
pub fn tear_newest_segment(dir: &Path) {
    let segs = segment_sizes(dir);
    let (newest, _) = segs.last().expect("a segment");
    let mut torn = Vec::new();
    torn.extend_from_slice(&0xED6E_1060u32.to_le_bytes());
    torn.extend_from_slice(&1000u32.to_le_bytes());
    torn.extend_from_slice(&0xDEAD_BEEFu32.to_le_bytes());
    torn.extend_from_slice(&0u64.to_le_bytes());
    torn.extend_from_slice(b"{\"n\":-1,\"partial");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(newest)
        .expect("open segment");
    std::io::Write::write_all(&mut f, &torn).expect("append torn entry");
}
