//! Whether the disk buffer can take entries and save its position: the state `/readyz` reports.
//!
//! A full disk is a state the buffer leaves by itself: appends are refused (503 with
//! Retry-After) while it lasts, delivered segments are still freed (the ack position is saved in
//! place, so saving it needs no room), and the state ends with the next append that succeeds or as
//! soon as the file system has room again for the entry that did not fit, whether the buffer
//! freed that room or someone else did. So readiness comes back even when no request arrives.

use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

/// Room beyond the entry that did not fit before the disk counts as having room again.
pub const ROOM_MARGIN_BYTES: u64 = 64 * 1024;

#[derive(Debug, Default)]
pub struct Room {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The disk had no room for an entry of this many bytes, since then.
    full: Option<(u64, SystemTime)>,
    /// Saving the ack position failed with this error.
    ack_error: Option<String>,
}

impl Room {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An append of `bytes` found no room.
    pub fn no_room(&self, bytes: u64) {
        let mut s = self.lock();
        let since = s.full.map_or_else(SystemTime::now, |(_, t)| t);
        let needed = s.full.map_or(bytes, |(b, _)| b.max(bytes));
        s.full = Some((needed, since));
    }

    /// An append succeeded.
    pub fn appended(&self) {
        self.lock().full = None;
    }

    pub fn ack_saved(&self) {
        self.lock().ack_error = None;
    }

    pub fn ack_failed(&self, error: String) {
        self.lock().ack_error = Some(error);
    }

    /// Why the buffer cannot do its job, if it cannot; checks the file system holding `dir` for
    /// room, and ends the disk-full state when there is.
    pub fn problem(&self, dir: &Path) -> Option<String> {
        let mut s = self.lock();
        if let Some((needed, since)) = s.full {
            match free_bytes(dir) {
                Some(free) if free >= needed + ROOM_MARGIN_BYTES => s.full = None,
                _ => {
                    // Stable while the state lasts: readiness logs each new reason once.
                    return Some(format!(
                        "disk full since {}: {} has no room for new entries ({needed} bytes needed); delivered segments are freed as Kinesis takes them",
                        humantime::format_rfc3339_seconds(since),
                        dir.display(),
                    ));
                }
            }
        }
        s.ack_error
            .as_ref()
            .map(|e| format!("cannot save the ack position in {}: {e}", dir.display()))
    }
}

/// Bytes an unprivileged writer can still use on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid C string and `st` a valid out-pointer for statvfs.
    let rc = unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    // The field types differ between platforms.
    #[allow(clippy::unnecessary_cast)]
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Whether an I/O error means the file system has no room (or a quota or file size limit).
pub fn is_no_room(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || e.kind() == std::io::ErrorKind::QuotaExceeded
        || e.kind() == std::io::ErrorKind::FileTooLarge
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_full_ends_when_the_file_system_has_room() {
        let dir = tempfile::tempdir().expect("tmp");
        let r = Room::default();
        assert_eq!(r.problem(dir.path()), None);
        r.no_room(u64::MAX / 4);
        let p = r
            .problem(dir.path())
            .expect("still full: no disk has that much room");
        assert!(p.starts_with("disk full since "), "{p}");
        assert_eq!(r.problem(dir.path()).as_deref(), Some(p.as_str()), "stable");
        r.appended();
        assert_eq!(r.problem(dir.path()), None);
        r.no_room(1024);
        assert_eq!(r.problem(dir.path()), None, "a temp dir has 1 KiB free");
        r.ack_failed("EIO".into());
        assert!(r
            .problem(dir.path())
            .expect("ack")
            .contains("cannot save the ack position"));
        r.ack_saved();
        assert_eq!(r.problem(dir.path()), None);
    }

    #[test]
    fn no_room_errors_are_recognised() {
        for code in [libc::ENOSPC, libc::EDQUOT, libc::EFBIG] {
            assert!(
                is_no_room(&std::io::Error::from_raw_os_error(code)),
                "{code}"
            );
        }
        assert!(!is_no_room(&std::io::Error::from_raw_os_error(libc::EIO)));
    }
}
