//! Prometheus and promtool, from Debian's `prometheus` package: promtool checks and unit-tests
//! the alert rules and checks scrape configurations; a real Prometheus server, started on a free
//! port with a given configuration, scrapes a collector and evaluates the rules.
//!
//! A missing package is installed with apt-get (as root, or through `sudo -n`); where that is not
//! possible the test fails with the command that installs it.

use crate::procs::{command, start_on_free_port, KillOnDrop};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

/// The command that installs what this module needs.
pub const INSTALL: &str = "apt-get install --no-install-recommends prometheus";

/// `promtool`, installed first when missing.
pub fn promtool() -> PathBuf {
    from_debian_package("promtool")
}

/// The Prometheus server, installed first when missing.
pub fn prometheus_bin() -> PathBuf {
    from_debian_package("prometheus")
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// `name` from Debian's `prometheus` package, which is installed once per test process when
/// `name` is not on PATH.
fn from_debian_package(name: &str) -> PathBuf {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    if let Some(p) = on_path(name) {
        return p;
    }
    let installed = INSTALLED.get_or_init(install_prometheus_package);
    match (installed, on_path(name)) {
        (_, Some(p)) => p,
        (Err(why), None) => panic!(
            "{name} is not installed and could not be installed ({why}): run scripts/setup, or `sudo {INSTALL}`"
        ),
        (Ok(()), None) => panic!("{name} is still missing after `{INSTALL}`"),
    }
}

fn install_prometheus_package() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let mut apt: Vec<&str> = if root {
        vec!["apt-get"]
    } else {
        let sudo_works = std::process::Command::new("sudo")
            .args(["-n", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !sudo_works {
            return Err("not root, and sudo asks for a password or is missing".into());
        }
        vec!["sudo", "-n", "apt-get"]
    };
    let program = apt.remove(0);
    let run = |args: &[&str]| {
        std::process::Command::new(program)
            .args(&apt)
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .map_err(|e| format!("{program}: {e}"))
    };
    let install = [
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        "prometheus",
    ];
    let first = run(&install)?;
    if first.status.success() {
        return Ok(());
    }
    run(&["update", "-qq"])?;
    let second = run(&install)?;
    if second.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&second.stderr).trim().to_string())
    }
}

/// What a promtool run printed, both streams, and whether it succeeded.
#[derive(Debug)]
pub struct ToolRun {
    pub ok: bool,
    pub output: String,
}

/// Runs `promtool ARGS` in `dir`.
pub fn run_promtool(dir: &Path, args: &[&str]) -> ToolRun {
    let out = std::process::Command::new(promtool())
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run promtool");
    ToolRun {
        ok: out.status.success(),
        output: format!(
            "$ promtool {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// A Prometheus server on 127.0.0.1, its data in a temporary directory; stopped when dropped.
pub struct Prometheus {
    pub url: String,
    http: reqwest::Client,
    _child: KillOnDrop,
    _data: tempfile::TempDir,
}

/// Starts Prometheus with the configuration file `config` (rule files named in it are read
/// relative to it).
pub async fn spawn_prometheus(config: &Path) -> Prometheus {
    let data = tempfile::tempdir().expect("tempdir");
    let bin = prometheus_bin();
    let (child, port) = start_on_free_port("prometheus", |port| {
        command(&bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.path().display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start prometheus")
    })
    .await;
    Prometheus {
        url: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
        _child: KillOnDrop(child),
        _data: data,
    }
}

impl Prometheus {
    /// `GET /api/v1/<path>`'s `data`, or an error naming what went wrong.
    pub async fn api(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<serde_json::Value, String> {
        let resp = self
            .http
            .get(format!("{}/api/v1/{path}", self.url))
            .query(query)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        let bytes = resp.bytes().await.map_err(|e| format!("{path}: {e}"))?;
        let body: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| format!("{path}: {e}"))?;
        if body["status"] != "success" {
            return Err(format!("{path}: {body}"));
        }
        Ok(body["data"].clone())
    }

    /// The instant vector of `q`, as the API gives it (`metric` and `value` per element).
    pub async fn query(&self, q: &str) -> Result<Vec<serde_json::Value>, String> {
        let data = self.api("query", &[("query", q)]).await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }
}
