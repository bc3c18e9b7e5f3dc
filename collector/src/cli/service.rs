//! What the service manager is told, when it runs the collector under systemd's notify protocol
//! (`Type=notify`, `$NOTIFY_SOCKET` set): ready once the collector serves, and on a signal to
//! stop, how long the flush may take (`shutdown_timeout` and a margin), so the unit's stop
//! timeout follows the configuration instead of cutting the flush short. Without
//! `$NOTIFY_SOCKET` nothing is sent.

use sd_notify::NotifyState;
use std::time::Duration;

/// Added to `shutdown_timeout` for what comes after the flush (saving the ack position, exit).
pub const STOP_MARGIN: Duration = Duration::from_secs(5);

/// The collector serves.
pub fn ready() {
    if let Err(e) = sd_notify::notify(&[NotifyState::Ready]) {
        tracing::warn!(error = %e, "cannot tell the service manager the collector is ready");
    }
}

/// The collector stops, flushing for up to `shutdown_timeout`.
pub fn stopping(shutdown_timeout: Duration) {
    let usec = u32::try_from((shutdown_timeout + STOP_MARGIN).as_micros()).unwrap_or(u32::MAX);
    if let Err(e) =
        sd_notify::notify(&[NotifyState::Stopping, NotifyState::ExtendTimeoutUsec(usec)])
    {
        tracing::warn!(error = %e, "cannot tell the service manager the collector is stopping");
    }
}
