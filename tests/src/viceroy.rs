//! The edge app's real wasm running under Viceroy on a free port.

use crate::paths::{edge_wasm, tool};
use crate::procs::{command, start_on_free_port, KillOnDrop, Lines};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// How to start the edge app.
#[derive(Clone, Debug, Default)]
pub struct EdgeSetup {
    /// Backend `origin` URL; `None` points it at a closed port (origin down).
    pub origin: Option<String>,
    /// Config Store `edgelog` contents; `None` declares no store at all.
    pub config: Option<Vec<(String, String)>>,
    /// Use the wasm built with test-only routes (e.g. one that panics).
    pub test_routes: bool,
    /// Another app's wasm instead of the edge app (an example, the documented app).
    pub wasm: Option<PathBuf>,
    /// The Config Store's name; `edgelog` when `None`.
    pub store: Option<String>,
}

impl EdgeSetup {
    pub fn new(origin: &str) -> Self {
        EdgeSetup {
            origin: Some(origin.to_string()),
            config: Some(Vec::new()),
            test_routes: false,
            wasm: None,
            store: None,
        }
    }

    /// Runs `wasm` instead of the edge app.
    pub fn app(mut self, wasm: PathBuf) -> Self {
        self.wasm = Some(wasm);
        self
    }

    /// Names the Config Store.
    pub fn store(mut self, name: &str) -> Self {
        self.store = Some(name.to_string());
        self
    }

    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.config
            .get_or_insert_with(Vec::new)
            .push((key.to_string(), value.to_string()));
        self
    }

    /// The fastly.toml Viceroy is started with.
    pub fn manifest(&self) -> String {
        let origin = self
            .origin
            .clone()
            // Port 1 on loopback: nothing listens there, so every connection is refused.
            .unwrap_or_else(|| "http://127.0.0.1:1".to_string());
        let mut m = format!(
            "manifest_version = 3\nname = \"edgelog-test\"\nlanguage = \"rust\"\n\n\
             [local_server.backends.origin]\nurl = {}\n",
            toml_string(&origin)
        );
        if let Some(config) = &self.config {
            let store = self.store.as_deref().unwrap_or("edgelog");
            m.push_str(&format!(
                "\n[local_server.config_stores.{store}]\nformat = \"inline-toml\"\n\n\
                 [local_server.config_stores.{store}.contents]\n"
            ));
            for (k, v) in config {
                m.push_str(&format!("{k} = {}\n", toml_string(v)));
            }
        }
        m
    }
}

/// A JSON log line an endpoint got, parsed; panics showing the line when it is not JSON.
pub fn json_line(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// A TOML basic string (JSON string escapes are valid TOML).
fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// A running Viceroy; killed when dropped.
pub struct Viceroy {
    pub url: String,
    pub port: u16,
    pub stdout: Lines,
    pub stderr: Lines,
    _child: KillOnDrop,
    _dir: tempfile::TempDir,
}

impl Viceroy {
    /// Lines Viceroy printed for the named endpoint (`<endpoint> :: <line>`), without the prefix.
    pub fn endpoint_lines(&self, endpoint: &str) -> Vec<String> {
        let prefix = format!("{endpoint} :: ");
        self.stdout
            .snapshot()
            .iter()
            .filter_map(|l| l.strip_prefix(&prefix).map(str::to_string))
            .collect()
    }

    /// Waits until the endpoint has at least `n` lines and returns them.
    pub async fn wait_endpoint_lines(&self, endpoint: &str, n: usize) -> Vec<String> {
        let prefix = format!("{endpoint} :: ");
        self.stdout
            .wait_for(
                &format!("{n} lines on endpoint {endpoint}"),
                Duration::from_secs(20),
                |lines| lines.iter().filter(|l| l.starts_with(&prefix)).count() >= n,
            )
            .await;
        self.endpoint_lines(endpoint)
    }
}

fn viceroy_command(
    manifest: &std::path::Path,
    wasm: &std::path::Path,
    port: u16,
) -> tokio::process::Child {
    command(tool("viceroy"))
        .arg("serve")
        .arg("-C")
        .arg(manifest)
        .arg("--addr")
        .arg(format!("127.0.0.1:{port}"))
        .arg(wasm)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start viceroy")
}

/// Builds the wasm and writes the manifest for `setup` (in a directory kept by the caller).
async fn prepare(setup: &EdgeSetup) -> (PathBuf, tempfile::TempDir, PathBuf) {
    let wasm: PathBuf = match &setup.wasm {
        Some(wasm) => wasm.clone(),
        None => tokio::task::spawn_blocking({
            let routes = setup.test_routes;
            move || edge_wasm(routes)
        })
        .await
        .expect("build wasm"),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = dir.path().join("fastly.toml");
    std::fs::write(&manifest, setup.manifest()).expect("write manifest");
    (wasm, dir, manifest)
}

/// Starts the edge app under `viceroy serve` and waits until it accepts connections.
pub async fn spawn_viceroy(setup: &EdgeSetup) -> Viceroy {
    let (wasm, dir, manifest) = prepare(setup).await;
    let (mut child, port) =
        start_on_free_port("viceroy", |port| viceroy_command(&manifest, &wasm, port)).await;
    let stdout = Lines::collect(child.stdout.take().expect("stdout"));
    let stderr = Lines::collect(child.stderr.take().expect("stderr"));
    Viceroy {
        url: format!("http://127.0.0.1:{port}"),
        port,
        stdout,
        stderr,
        _child: KillOnDrop(child),
        _dir: dir,
    }
}

/// Builds a binary of this crate (the Fastly stand-in) once per test process.
pub fn testkit_bin(name: &str) -> PathBuf {
    use std::sync::{Mutex, OnceLock};
    static BUILT: OnceLock<Mutex<std::collections::HashMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut map = built.lock().expect("bins");
    if let Some(p) = map.get(name) {
        return p.clone();
    }
    let status = std::process::Command::new(env!("CARGO"))
        .current_dir(crate::paths::repo_root())
        .args(["build", "-p", "edgelog-testkit", "--bin", name])
        .env("CARGO_TARGET_DIR", crate::paths::target_dir())
        .status()
        .expect("cargo build");
    assert!(status.success(), "building {name} failed");
    let p = crate::paths::target_dir().join("debug").join(name);
    map.insert(name.to_string(), p.clone());
    p
}

/// Viceroy whose stdout is piped into the Fastly stand-in, as in the demo.
pub struct EdgeWithStandin {
    pub url: String,
    pub port: u16,
    pub viceroy_stderr: Lines,
    /// What the stand-in printed: Viceroy's other stdout lines, then its own report on stderr.
    pub standin_stdout: Lines,
    pub standin_stderr: Lines,
    _viceroy: KillOnDrop,
    _standin: KillOnDrop,
    _dir: tempfile::TempDir,
}

/// Starts Viceroy with the edge app and pipes its stdout into `fastly-standin <standin_args>`.
pub async fn spawn_viceroy_with_standin(
    setup: &EdgeSetup,
    standin: &std::path::Path,
    standin_args: &[String],
) -> EdgeWithStandin {
    let (wasm, dir, manifest) = prepare(setup).await;
    let (mut viceroy, port) =
        start_on_free_port("viceroy", |port| viceroy_command(&manifest, &wasm, port)).await;
    let pipe: Stdio = viceroy
        .stdout
        .take()
        .expect("stdout")
        .try_into()
        .expect("pipe viceroy's stdout");
    let viceroy_stderr = Lines::collect(viceroy.stderr.take().expect("stderr"));
    let mut standin_child = command(standin)
        .args(standin_args)
        .stdin(pipe)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start fastly-standin");
    let standin_stdout = Lines::collect(standin_child.stdout.take().expect("stdout"));
    let standin_stderr = Lines::collect(standin_child.stderr.take().expect("stderr"));
    EdgeWithStandin {
        url: format!("http://127.0.0.1:{port}"),
        port,
        viceroy_stderr,
        standin_stdout,
        standin_stderr,
        _viceroy: KillOnDrop(viceroy),
        _standin: KillOnDrop(standin_child),
        _dir: dir,
    }
}
