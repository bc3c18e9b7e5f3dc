//! Child processes that die with the test and whose output the test can read line by line.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Child;
use tokio::sync::Notify;

/// Lines a child printed on one stream, collected as they arrive.
#[derive(Clone, Default)]
pub struct Lines {
    inner: Arc<(Mutex<Vec<String>>, Notify)>,
}

impl Lines {
    /// Collects the lines of `stream` in the background.
    pub fn collect(stream: impl AsyncRead + Unpin + Send + 'static) -> Lines {
        let lines = Lines::default();
        let sink = lines.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if buf.last() == Some(&b'\n') {
                            buf.pop();
                        }
                        let line = String::from_utf8_lossy(&buf).into_owned();
                        sink.inner.0.lock().expect("lines lock").push(line);
                        sink.inner.1.notify_waiters();
                    }
                }
            }
        });
        lines
    }

    pub fn snapshot(&self) -> Vec<String> {
        self.inner.0.lock().expect("lines lock").clone()
    }

    /// Waits until `pred` holds for the lines so far, or panics after `timeout` showing them.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.1.notified();
            let lines = self.snapshot();
            if pred(&lines) {
                return lines;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let lines = self.snapshot();
                if pred(&lines) {
                    return lines;
                }
                panic!(
                    "timed out waiting for {what}; lines so far:\n{}",
                    lines.join("\n")
                );
            }
        }
    }
}

/// Makes a child die with this process even if this process is killed outright (SIGKILL),
/// so neither tests nor the demo can leave an emulator or a collector behind.
pub fn die_with_parent(cmd: &mut tokio::process::Command) -> &mut tokio::process::Command {
    // SAFETY: prctl is async-signal-safe and touches only the child being set up.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        })
    }
}

/// A command whose process dies with this one (see [`die_with_parent`]).
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(program);
    die_with_parent(&mut c);
    c
}

/// Kills the child when dropped, so no test leaves a process behind.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

impl KillOnDrop {
    /// SIGKILL, and waits until the process is gone (its port is free again).
    pub async fn kill(mut self) {
        let _ = self.0.start_kill();
        let _ = self.0.wait().await;
    }
}

/// Starts a server that takes its port on the command line (`spawn(port)`), on a free port:
/// waits until the port accepts connections and the process is still running after a moment
/// (another process may have taken the port between choosing and binding it, in which case the
/// server exits); tries again on another port, up to five times.
pub async fn start_on_free_port(
    what: &str,
    mut spawn: impl FnMut(u16) -> tokio::process::Child,
) -> (tokio::process::Child, u16) {
    for _ in 0..5 {
        let port = crate::paths::free_port();
        let mut child = spawn(port);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut up = false;
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if up {
            tokio::time::sleep(Duration::from_millis(150)).await;
            if let Ok(None) = child.try_wait() {
                return (child, port);
            }
        }
        let _ = child.start_kill();
    }
    panic!("{what} could not start on a free port");
}

/// Polls `check` every 100 ms until it holds, or panics naming `what` after `timeout`; returns
/// how long it took (a figure for the report, never for an assertion).
pub async fn until(
    timeout: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> bool,
) -> Duration {
    let start = tokio::time::Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < timeout,
            "timed out: {what} (not within {timeout:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start.elapsed()
}

/// Waits until something accepts TCP connections on `port`, or panics.
pub async fn wait_for_port(port: u16, timeout: Duration, what: &str) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{what} did not start listening on port {port}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Serves `app` on a free loopback port in a task of this runtime; returns its address and the
/// task (abort it, or drop the runtime, to stop serving).
pub async fn serve_on_loopback(
    app: axum::Router,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}

/// A task of this runtime that is stopped when this is dropped (a server a test started).
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The processes (`pid name`) still in process group `pgid`, read from /proc.
pub fn in_process_group(pgid: u32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its last ')'.
            let (head, rest) = stat.rsplit_once(')')?;
            let mut fields = rest.split_whitespace();
            let state = fields.next()?;
            let pgrp: u32 = fields.nth(1)?.parse().ok()?;
            (pgrp == pgid && state != "Z").then(|| head.replacen(" (", " ", 1))
        })
        .collect()
}
