//! The collector, started in-process on a free port through its `run` entry point, or as the
//! real binary in its own process (for kill -9 and signal tests).

use crate::fastly::Batch;
use crate::paths::{repo_root, target_dir};
use crate::procs::{command, KillOnDrop, Lines};
use collector::config::Config;
use collector::{Handles, RunError};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A collector running in this process.
pub struct RunningCollector {
    pub url: String,
    pub port: u16,
    /// The admin listener (status page, `/status`, `/metrics`, tail).
    pub admin_url: String,
    pub handles: Handles,
    /// Holds the buffer, dead-letter and output files (`{dir}` in the YAML).
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), RunError>>>,
}

impl RunningCollector {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn stop(mut self) -> Result<(), RunError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.task.take() {
            Some(t) => t.await.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }
}

impl Drop for RunningCollector {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// The admin listener on a free port, unless the configuration says otherwise: several
/// collectors run at once in the tests.
const ADMIN_ON_A_FREE_PORT: &str = "admin: {listen: \"127.0.0.1:0\"}\n";

/// `yaml` with the admin listener on a free port if it does not set one.
pub fn with_admin_on_a_free_port(yaml: &str) -> String {
    if yaml.lines().any(|l| l.starts_with("admin:")) {
        yaml.to_string()
    } else {
        format!("{}\n{ADMIN_ON_A_FREE_PORT}", yaml.trim_end())
    }
}

/// Parses a YAML configuration, replacing `{dir}` with `dir` (the admin listener on a free port
/// unless it says otherwise).
pub fn config_in(yaml: &str, dir: &std::path::Path) -> Config {
    let text = with_admin_on_a_free_port(&yaml.replace("{dir}", &dir.display().to_string()));
    Config::from_yaml(&text, &|k| std::env::var(k).ok())
        .unwrap_or_else(|e| panic!("config: {e}\n{text}"))
}

/// Starts the collector in-process on 127.0.0.1 and a free port.
pub async fn spawn_collector(yaml: &str) -> RunningCollector {
    let dir = tempfile::tempdir().expect("tempdir");
    spawn_collector_in(yaml, dir).await
}

/// Like [`spawn_collector`], in a given directory (to restart on the same buffer).
pub async fn spawn_collector_in(yaml: &str, dir: tempfile::TempDir) -> RunningCollector {
    let config = config_in(yaml, dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (handles_tx, handles_rx) = oneshot::channel();
    let task = tokio::spawn(collector::run_with(
        config,
        listener,
        async move {
            let _ = stop_rx.await;
        },
        move |h| {
            let _ = handles_tx.send(h);
        },
    ));
    let handles = match handles_rx.await {
        Ok(h) => h,
        Err(_) => match task.await {
            Ok(Err(e)) => panic!("collector failed to start: {e}"),
            other => panic!("collector failed to start: {other:?}"),
        },
    };
    RunningCollector {
        url: format!("http://127.0.0.1:{port}"),
        port,
        admin_url: handles
            .admin
            .map(|a| format!("http://{a}"))
            .unwrap_or_default(),
        handles,
        dir,
        stop: Some(stop_tx),
        task: Some(task),
    }
}

/// Starts the collector in-process with `yaml` (in a new directory) and returns the error that
/// stops its start; panics if it starts.
pub async fn start_error(yaml: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_in(yaml, dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let run = collector::run(config, listener, std::future::pending());
    match tokio::time::timeout(Duration::from_secs(60), run).await {
        Ok(Err(e)) => e.to_string(),
        Ok(Ok(())) => panic!("the collector started and stopped"),
        Err(_) => panic!("the collector started"),
    }
}

/// Builds the collector binary once per test process and returns its path.
pub fn collector_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let status = std::process::Command::new(env!("CARGO"))
            .current_dir(repo_root())
            .args(["build", "-p", "collector", "--bin", "collector"])
            .env("CARGO_TARGET_DIR", target_dir())
            .status()
            .expect("run cargo build for the collector");
        assert!(status.success(), "building the collector failed");
        target_dir().join("debug").join("collector")
    })
    .clone()
}

/// The static Linux binary `scripts/build-static` makes, built once per test run: every test
/// process asks for it, the first builds it (about ten minutes from scratch) into
/// `<target>/edgelog-static/edgelog-collector` while holding a lock on that directory, and the
/// others wait for the lock, then find cargo's build up to date.
pub fn static_collector_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = target_dir().join("edgelog-static");
        std::fs::create_dir_all(&dir).expect("create the static binary's directory");
        let lock = std::fs::File::create(dir.join(".lock")).expect("create the build lock");
        lock.lock().expect("lock the static build");
        let bin = dir.join("edgelog-collector");
        let status = std::process::Command::new("bash")
            .arg(repo_root().join("scripts/build-static"))
            .arg(&bin)
            .env("CARGO_TARGET_DIR", target_dir())
            // The project's own rust-toolchain.toml decides.
            .env_remove("RUSTUP_TOOLCHAIN")
            .status()
            .expect("run scripts/build-static");
        assert!(status.success(), "scripts/build-static failed");
        bin
    })
    .clone()
}

/// The collector binary in its own process.
pub struct CollectorProcess {
    pub url: String,
    pub port: u16,
    /// The admin listener (status page, `/status`, `/metrics`, tail); empty when it is off.
    pub admin_url: String,
    pub stderr: Lines,
    pub stdout: Lines,
    child: KillOnDrop,
}

impl CollectorProcess {
    pub fn pid(&self) -> u32 {
        self.child.0.id().unwrap_or(0)
    }

    /// SIGKILL: no chance to flush or save anything.
    pub async fn kill9(self) {
        self.child.kill().await;
    }

    /// Waits for the process to exit by itself (after a drain); its exit code. Panics showing its
    /// log if it is still running after `timeout`.
    pub async fn exited(mut self, timeout: Duration) -> Option<i32> {
        match tokio::time::timeout(timeout, self.child.0.wait()).await {
            Ok(status) => status.ok().and_then(|s| s.code()),
            Err(_) => panic!(
                "the collector did not exit within {timeout:?}:\n{}",
                self.stderr.snapshot().join("\n")
            ),
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.0.try_wait(), Ok(None))
    }

    /// SIGTERM, then waits for the process to exit; returns its exit status code.
    pub async fn terminate(mut self) -> Option<i32> {
        let pid = self.pid();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        self.child.0.wait().await.ok().and_then(|s| s.code())
    }
}

/// Starts `collector serve --config <file>`. The file's `listen` should use port 0: the address
/// the collector bound is read from its start-up log, so no other process can take the port
/// between choosing and binding it. A file that sets neither gets `listen` on port 0, and one
/// that does not set `admin` gets the admin listener on a free port (the lines are added to the
/// file): several collectors run at once in the tests.
pub async fn spawn_collector_process(config_path: &std::path::Path) -> CollectorProcess {
    spawn_collector_process_at(&collector_bin(), config_path).await
}

/// Like [`spawn_collector_process`] with a given collector binary (the demo's release build).
pub async fn spawn_collector_process_at(
    bin: &std::path::Path,
    config_path: &std::path::Path,
) -> CollectorProcess {
    spawn_collector_process_with(bin, config_path, &[]).await
}

/// Like [`spawn_collector_process_at`] with extra environment variables (`EDGELOG_LOG`
/// included: the default is `collector=debug,info`).
pub async fn spawn_collector_process_with(
    bin: &std::path::Path,
    config_path: &std::path::Path,
    env: &[(&str, &str)],
) -> CollectorProcess {
    let text = std::fs::read_to_string(config_path).expect("read the collector's configuration");
    let mut with_ports = with_admin_on_a_free_port(&text);
    if !with_ports.lines().any(|l| l.starts_with("listen:")) {
        with_ports = format!("{}\nlisten: \"127.0.0.1:0\"\n", with_ports.trim_end());
    }
    if with_ports != text {
        std::fs::write(config_path, with_ports).expect("write the collector's configuration");
    }
    let mut child = command(bin)
        .arg("serve")
        .arg("--config")
        .arg(config_path)
        .env("EDGELOG_LOG", "collector=debug,info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start collector");
    let stdout = Lines::collect(child.stdout.take().expect("stdout"));
    let stderr = Lines::collect(child.stderr.take().expect("stderr"));
    let admin_off = !std::fs::read_to_string(config_path)
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("admin:") && !l.contains("off"));
    let (port, admin) = wait_listening(&mut child, &stderr, admin_off).await;
    CollectorProcess {
        url: format!("http://127.0.0.1:{port}"),
        port,
        admin_url: admin
            .map(|a| format!("http://127.0.0.1:{a}"))
            .unwrap_or_default(),
        stderr,
        stdout,
        child: KillOnDrop(child),
    }
}

/// Waits until the collector `child` has logged the port it listens on and, unless `admin_off`,
/// its admin listener's (both on 127.0.0.1); panics showing its log if it exits first or takes
/// over 60 s.
pub(crate) async fn wait_listening(
    child: &mut tokio::process::Child,
    stderr: &Lines,
    admin_off: bool,
) -> (u16, Option<u16>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let lines = stderr.snapshot();
        let port = lines
            .iter()
            .find_map(|l| listening_port(l, "collector listening"));
        let admin = lines
            .iter()
            .find_map(|l| listening_port(l, "admin listening"));
        if let (Some(port), true) = (port, admin.is_some() || admin_off) {
            return (port, admin);
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "collector exited ({status}) before listening:\n{}",
                stderr.snapshot().join("\n")
            );
        }
        if tokio::time::Instant::now() > deadline {
            panic!("collector did not start:\n{}", stderr.snapshot().join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `collector` command other than `serve` (`drain`, `status`...) running in its own process,
/// its output collected line by line.
pub struct CollectorCommand {
    pub stdout: Lines,
    pub stderr: Lines,
    child: KillOnDrop,
}

impl CollectorCommand {
    /// Starts `bin args...`.
    pub fn start(bin: &std::path::Path, args: &[String]) -> CollectorCommand {
        let mut child = command(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {} {args:?}: {e}", bin.display()));
        CollectorCommand {
            stdout: Lines::collect(child.stdout.take().expect("stdout")),
            stderr: Lines::collect(child.stderr.take().expect("stderr")),
            child: KillOnDrop(child),
        }
    }

    /// Waits for the command to exit; its exit code. Panics showing its output after `timeout`.
    pub async fn exit_code(&mut self, timeout: Duration) -> Option<i32> {
        match tokio::time::timeout(timeout, self.child.0.wait()).await {
            Ok(status) => status.ok().and_then(|s| s.code()),
            Err(_) => panic!(
                "the command did not exit within {timeout:?}:\n{}\n{}",
                self.stdout.snapshot().join("\n"),
                self.stderr.snapshot().join("\n")
            ),
        }
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.0.try_wait(), Ok(None))
    }
}

/// The lines left that `collector drain`'s progress lines (`left: aws_kinesis 120 lines`) give,
/// in order.
pub fn drain_progress(stdout: &[String]) -> Vec<u64> {
    stdout
        .iter()
        .filter_map(|l| l.strip_prefix("left: "))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|w| w.parse::<u64>().ok())
                .sum()
        })
        .collect()
}

/// Runs `collector serve --config <file>` and expects it to exit at start with a failure;
/// returns what it printed on stderr.
pub async fn refused_at_start(config_path: &std::path::Path) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(collector_bin())
            .args(["serve", "--config"])
            .arg(config_path)
            .output(),
    )
    .await
    .expect("the collector exits at start")
    .expect("run collector");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "should not start: {stderr}");
    stderr
}

/// The port in the collector's `message` log line ("collector listening", "admin listening";
/// text or JSON).
fn listening_port(line: &str, message: &str) -> Option<u16> {
    if !line.contains(message) {
        return None;
    }
    let at = line.find("127.0.0.1:")? + "127.0.0.1:".len();
    line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

/// Posts lines in batches of `per_batch` (optionally with the token header); each must get 204.
pub async fn post_in_batches(url: &str, token: Option<&str>, lines: &[String], per_batch: usize) {
    for chunk in lines.chunks(per_batch) {
        assert_eq!(post_lines(url, token, chunk).await, 204);
    }
}

/// The request that posts a batch built the way Fastly builds it (its body and headers), with
/// the token header when there is one.
pub fn batch_request(
    c: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    batch: &Batch,
) -> reqwest::RequestBuilder {
    let mut req = c.post(format!("{url}/logs")).body(batch.body.clone());
    if let Some(t) = token {
        req = req.header("x-edgelog-token", t);
    }
    for (k, v) in &batch.headers {
        req = req.header(k, v);
    }
    req
}

/// Posts a batch built the way Fastly builds it; the answer.
pub async fn post_batch(
    c: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    batch: &Batch,
) -> reqwest::Response {
    batch_request(c, url, token, batch)
        .send()
        .await
        .expect("post")
}

/// Posts lines as one newline-delimited batch (optionally with the token header); returns the
/// status code.
pub async fn post_lines(url: &str, token: Option<&str>, lines: &[String]) -> u16 {
    let mut body = lines.join("\n");
    body.push('\n');
    let mut req = reqwest::Client::new()
        .post(format!("{url}/logs"))
        .body(body);
    if let Some(t) = token {
        req = req.header("x-edgelog-token", t);
    }
    req.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
}

/// A counter or gauge from a collector's `/metrics` (0 when absent or out of reach).
pub async fn metric(url: &str, name: &str) -> u64 {
    let Ok(r) = reqwest::get(format!("{url}/metrics")).await else {
        return 0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A collector's `/metrics` text (on its admin listener).
pub async fn metrics_text(admin_url: &str) -> String {
    reqwest::get(format!("{admin_url}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body")
}

/// A collector's `GET /readyz`: its status code and body; 0 and the error when it is out of
/// reach.
pub async fn readyz(url: &str) -> (u16, String) {
    get_status_and_text(&format!("{url}/readyz")).await
}

/// `GET /delivery`: its status and body (status 0 and the error when it cannot be reached).
pub async fn delivery(url: &str) -> (u16, String) {
    get_status_and_text(&format!("{url}/delivery")).await
}

async fn get_status_and_text(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// The lines of a collector's file output once it holds at least `n` of them, or what it holds
/// after 30 s.
pub async fn output_file_lines(path: &std::path::Path, n: usize) -> Vec<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let data = std::fs::read(path).unwrap_or_default();
        let lines: Vec<Vec<u8>> = data
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        if lines.len() >= n || tokio::time::Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A collector's `GET /status`, parsed (on its admin listener).
pub async fn status(admin_url: &str) -> serde_json::Value {
    let body = reqwest::get(format!("{admin_url}/status"))
        .await
        .expect("status")
        .bytes()
        .await
        .expect("body");
    serde_json::from_slice(&body).expect("status is JSON")
}

/// Posts a body that claims gzip and is not: the collector refuses it; returns the status code.
pub async fn post_corrupt_gzip(url: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{url}/logs"))
        .header("content-encoding", "gzip")
        .body("not gzip")
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}
