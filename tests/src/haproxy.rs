//! HAProxy (Debian's `haproxy` package) in front of collectors: installed with apt-get when it is
//! missing (or the test fails with the command that installs it), its configuration checked with
//! `haproxy -c`, then run in the foreground on a free port until the test ends.
//!
//! The configuration is the example of docs/scaling.md: [`scaling_example`] reads it and
//! [`for_loopback`] applies the documented rule that fits it to one machine.

use crate::procs::{command, start_on_free_port, KillOnDrop, Lines};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

/// The command that installs HAProxy.
pub const INSTALL: &str = "apt-get install -y haproxy";

/// The haproxy binary: on the PATH, or installed now with apt-get (as root); panics with the
/// command to run otherwise.
pub fn haproxy_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let find = || {
            std::env::var_os("PATH")
                .into_iter()
                .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
                .chain([PathBuf::from("/usr/sbin")])
                .map(|d| d.join("haproxy"))
                .find(|p| p.is_file())
        };
        if let Some(p) = find() {
            return p;
        }
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        assert!(root, "haproxy is not installed: run `sudo {INSTALL}`");
        let status = std::process::Command::new("sh")
            .args(["-c", &format!("apt-get update -q && {INSTALL}")])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .expect("run apt-get");
        assert!(status.success(), "`{INSTALL}` failed");
        find().unwrap_or_else(|| panic!("`{INSTALL}` left no haproxy binary"))
    })
    .clone()
}

/// A running haproxy.
pub struct Haproxy {
    /// The port its frontend binds.
    pub port: u16,
    /// What it logged (its request log goes to stdout in the example).
    pub stdout: Lines,
    pub stderr: Lines,
    /// The configuration it runs, after the substitutions.
    pub config: String,
    _child: KillOnDrop,
}

/// Checks the configuration `make(port)` gives with `haproxy -c`, then runs haproxy on it in the
/// foreground on a free port; `dir` holds the configuration file.
pub async fn spawn_haproxy(dir: &Path, make: impl Fn(u16) -> String) -> Haproxy {
    let bin = haproxy_bin();
    let file = dir.join("haproxy.cfg");
    let check = {
        std::fs::write(&file, make(1)).expect("write haproxy.cfg");
        std::process::Command::new(&bin)
            .args(["-c", "-f"])
            .arg(&file)
            .output()
            .expect("run haproxy -c")
    };
    assert!(
        check.status.success(),
        "haproxy -c refuses the configuration:\n{}{}\n{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr),
        make(1)
    );
    let (mut child, port) = start_on_free_port("haproxy", |port| {
        std::fs::write(&file, make(port)).expect("write haproxy.cfg");
        command(&bin)
            .args(["-db", "-f"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start haproxy")
    })
    .await;
    let stdout = Lines::collect(child.stdout.take().expect("stdout"));
    let stderr = Lines::collect(child.stderr.take().expect("stderr"));
    Haproxy {
        port,
        stdout,
        stderr,
        config: make(port),
        _child: KillOnDrop(child),
    }
}

/// The HAProxy configuration of docs/scaling.md, as written there.
pub fn scaling_example() -> String {
    crate::paths::doc_block("docs/scaling.md", "<!-- haproxy.cfg -->")
}

/// Addresses of the example's servers, in order (`server c1 10.0.0.11:8080`...).
pub fn example_servers(config: &str) -> Vec<String> {
    config
        .lines()
        .filter_map(|l| l.trim().strip_prefix("server "))
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(str::to_string)
        .collect()
}

/// The rule of docs/scaling.md that fits the example to one machine, and nothing else: the
/// frontend's `bind :443` becomes `bind 127.0.0.1:<port>`, each server's address becomes the
/// address of the collector at the same place in `collectors`, and `/etc/haproxy/` becomes `dir`.
pub fn for_loopback(example: &str, port: u16, collectors: &[String], dir: &Path) -> String {
    let servers = example_servers(example);
    assert_eq!(
        servers.len(),
        collectors.len(),
        "the example has {} servers",
        servers.len()
    );
    assert!(
        example.contains("bind :443 "),
        "the example binds :443: {example}"
    );
    let mut text = example.replace("bind :443 ", &format!("bind 127.0.0.1:{port} "));
    for (from, to) in servers.iter().zip(collectors) {
        text = text.replace(&format!(" {from}"), &format!(" {to}"));
    }
    text.replace("/etc/haproxy/", &format!("{}/", dir.display()))
}
