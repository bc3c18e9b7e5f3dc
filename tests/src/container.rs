//! The collector's container image, built once per test run with `scripts/build-image`, and
//! podman: containers of it run on the host network (their log read line by line, stopped with
//! `podman stop`), named volumes, and the files and settings the image holds.
//!
//! Invariant: every container and volume a test makes is removed when its handle is dropped,
//! panics included.

use crate::collector::{static_collector_bin, wait_listening};
use crate::paths::{repo_root, target_dir};
use crate::procs::{command, KillOnDrop, Lines};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// The tag the tests build the image under.
pub const TEST_IMAGE: &str = "localhost/edgelog-collector:test";

/// Where the image reads its configuration and keeps its buffer (deploy/Containerfile).
pub const CONFIG_PATH: &str = "/etc/edgelog/collector.yaml";
pub const STATE_DIR: &str = "/var/lib/edgelog";

/// podman on PATH, or a panic with the command that installs it.
pub fn podman() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("podman"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("podman is not installed: run  apt-get install -y podman runc"))
}

/// The image `scripts/build-image` built, and what the script printed.
#[derive(Clone, Debug)]
pub struct BuiltImage {
    pub name: String,
    /// The script's standard output (the image's name and size).
    pub printed: String,
}

/// Runs `scripts/build-image` once per test run, as a user would: the static binary first
/// ([`static_collector_bin`], shared with the other tests that need it), then the script, which
/// builds it again (cargo finds it up to date) and the image, while holding a lock so test
/// processes running at once do not build the same tag together.
pub async fn built_image() -> BuiltImage {
    tokio::task::spawn_blocking(|| {
        static IMAGE: OnceLock<BuiltImage> = OnceLock::new();
        IMAGE
            .get_or_init(|| {
                static_collector_bin();
                let dir = target_dir().join("edgelog-static");
                let lock = std::fs::File::create(dir.join(".image-lock"))
                    .expect("create the image build lock");
                lock.lock().expect("lock the image build");
                build_image(TEST_IMAGE, &[])
            })
            .clone()
    })
    .await
    .expect("build the image")
}

/// Runs `scripts/build-image <tag>` with these environment variables (blocking).
pub fn build_image(tag: &str, env: &[(&str, &str)]) -> BuiltImage {
    let out = std::process::Command::new("bash")
        .arg(repo_root().join("scripts/build-image"))
        .arg(tag)
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("RUSTUP_TOOLCHAIN")
        .envs(env.iter().copied())
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/build-image");
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "scripts/build-image failed: {printed}"
    );
    BuiltImage {
        name: tag.to_string(),
        printed,
    }
}

/// An image a test built under its own tag, removed when dropped.
pub struct OwnImage(pub BuiltImage);

impl OwnImage {
    /// [`build_image`] under a tag of this process; the static binary is built first as for
    /// [`built_image`].
    pub async fn build(name: &str, env: &[(&str, &str)]) -> OwnImage {
        let tag = format!("localhost/{}", unique_name(name));
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let image = tokio::task::spawn_blocking(move || {
            static_collector_bin();
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            build_image(&tag, &env)
        })
        .await
        .expect("build the image");
        OwnImage(image)
    }
}

impl Drop for OwnImage {
    fn drop(&mut self) {
        let _ = std::process::Command::new(podman())
            .args(["rmi", "-f", &self.0.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A finished podman command: its exit code and what it printed.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `podman <args>` to the end.
pub async fn podman_output(args: &[&str]) -> Output {
    let out = command(podman())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run podman");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `podman <args>`, which must succeed; returns its standard output.
pub async fn podman_ok(args: &[&str]) -> String {
    let out = podman_output(args).await;
    assert_eq!(out.code, Some(0), "podman {args:?}: {}", out.stderr);
    out.stdout
}

/// `podman image inspect --format <format> <image>`, trimmed.
pub async fn inspect_image(image: &str, format: &str) -> String {
    podman_ok(&["image", "inspect", "--format", format, image])
        .await
        .trim()
        .to_string()
}

/// One file or directory of the image's file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    /// Without the leading `./`; a directory's ends in `/`.
    pub path: String,
    /// `uid/gid`.
    pub owner: String,
}

/// Everything in the image's file system (`podman export` of a container created from it, not
/// started).
pub async fn image_entries(image: &str) -> Vec<ImageEntry> {
    let id = podman_ok(&["create", image]).await.trim().to_string();
    let dir = tempfile::tempdir().expect("tmp");
    let tar = dir.path().join("image.tar");
    let exported = podman_output(&["export", "-o", &tar.display().to_string(), &id]).await;
    podman_output(&["rm", "-f", "-v", &id]).await;
    assert_eq!(exported.code, Some(0), "podman export: {}", exported.stderr);
    let list = std::process::Command::new("tar")
        .args(["-tv", "--numeric-owner", "-f"])
        .arg(&tar)
        .output()
        .expect("tar is installed");
    // `drwxr-xr-x 0/0 0 2026-01-01 10:00 path`
    String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let path = fields.get(5..)?.join(" ");
            Some(ImageEntry {
                path: path.trim_start_matches("./").to_string(),
                owner: fields.get(1)?.to_string(),
            })
        })
        .filter(|e| !e.path.is_empty())
        .collect()
}

/// One file of the image (copied out of a container created from it, not started).
pub async fn image_file(image: &str, path: &str) -> Vec<u8> {
    let id = podman_ok(&["create", image]).await.trim().to_string();
    let dir = tempfile::tempdir().expect("tmp");
    let dest = dir.path().join("file");
    let copied = podman_output(&["cp", &format!("{id}:{path}"), &dest.display().to_string()]).await;
    podman_output(&["rm", "-f", "-v", &id]).await;
    assert_eq!(copied.code, Some(0), "podman cp {path}: {}", copied.stderr);
    std::fs::read(&dest).expect("the copied file")
}

/// The flags `podman run` needs here besides the ones a user types: none where the plain
/// command runs a container. Where the default runtime or resource limits are refused (podman's
/// default descriptor limit above this machine's hard limit), runc from Debian with the cgroupfs
/// manager, the descriptor limit this process has and a process limit no higher than the
/// kernel's `pid_max` (runc is refused one above it here). Found once, by running the image's
/// `--version`.
async fn run_flags(image: &str) -> Vec<String> {
    static FLAGS: tokio::sync::OnceCell<Vec<String>> = tokio::sync::OnceCell::const_new();
    FLAGS
        .get_or_init(|| async {
            let plain = podman_output(&["run", "--rm", image, "--version"]).await;
            if plain.code == Some(0) {
                return Vec::new();
            }
            let limit = |resource| {
                let mut l = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                // SAFETY: getrlimit writes only into `l`.
                let r = unsafe { libc::getrlimit(resource, &mut l) };
                assert_eq!(r, 0, "getrlimit");
                l.rlim_max
            };
            let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(u64::MAX);
            let nofile = limit(libc::RLIMIT_NOFILE);
            let nproc = limit(libc::RLIMIT_NPROC).min(pid_max);
            let flags: Vec<String> = [
                "--runtime".to_string(),
                "runc".to_string(),
                "--cgroup-manager=cgroupfs".to_string(),
                format!("--ulimit=nofile={nofile}:{nofile}"),
                format!("--ulimit=nproc={nproc}:{nproc}"),
            ]
            .into();
            let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
            args.splice(0..0, ["run", "--rm"]);
            args.extend([image, "--version"]);
            let fallback = podman_output(&args).await;
            assert_eq!(
                fallback.code,
                Some(0),
                "podman cannot run a container, plain ({}) or with runc and this machine's limits ({})",
                plain.stderr.trim(),
                fallback.stderr.trim()
            );
            flags
        })
        .await
        .clone()
}

/// A podman volume, removed when dropped.
pub struct Volume {
    pub name: String,
}

impl Volume {
    pub async fn create() -> Volume {
        let name = unique_name("edgelog-test-volume");
        podman_ok(&["volume", "create", &name]).await;
        Volume { name }
    }

    /// Where the volume's files are on this machine.
    pub async fn host_path(&self) -> PathBuf {
        PathBuf::from(
            podman_ok(&[
                "volume",
                "inspect",
                "--format",
                "{{.Mountpoint}}",
                &self.name,
            ])
            .await
            .trim(),
        )
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = std::process::Command::new(podman())
            .args(["volume", "rm", "-f", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn unique_name(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `podman run` of an image, on the host network, removed when it exits (`--rm`): options are
/// added as a user would type them.
pub struct Run {
    image: String,
    name: String,
    options: Vec<String>,
    args: Vec<String>,
}

impl Run {
    pub fn new(image: &str) -> Run {
        Run {
            image: image.to_string(),
            name: unique_name("edgelog-test"),
            options: vec!["--network".into(), "host".into()],
            args: Vec::new(),
        }
    }

    /// `-v <spec>`.
    pub fn volume(mut self, spec: &str) -> Run {
        self.options.extend(["-v".into(), spec.into()]);
        self
    }

    /// The configuration file mounted read-only where the image reads it.
    pub fn config(self, file: &Path) -> Run {
        let spec = format!("{}:{CONFIG_PATH}:ro", file.display());
        self.volume(&spec)
    }

    /// Any other option (`--read-only`, `--env-file=...`, `-e=K=V`).
    pub fn option(mut self, option: &str) -> Run {
        self.options.push(option.into());
        self
    }

    /// The command given after the image (replacing the image's default, `serve --config ...`).
    pub fn args(mut self, args: &[&str]) -> Run {
        self.args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    async fn command(&self) -> tokio::process::Command {
        let flags = run_flags(&self.image).await;
        let mut cmd = command(podman());
        cmd.arg("run")
            .args(&flags)
            .args(["--rm", "--name", &self.name])
            .args(&self.options)
            .arg(&self.image)
            .args(&self.args)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs the container to the end.
    pub async fn output(self) -> Output {
        let guard = Removal(self.name.clone());
        let out = self.command().await.output().await.expect("podman run");
        drop(guard);
        Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Starts the collector's container (its configuration listening on 127.0.0.1, port 0 and
    /// the admin listener likewise, unless `admin_off`) and waits until it listens.
    pub async fn start(self, admin_off: bool) -> Container {
        let mut child = self
            .command()
            .await
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start podman run");
        let removal = Removal(self.name.clone());
        let stdout = Lines::collect(child.stdout.take().expect("stdout"));
        let stderr = Lines::collect(child.stderr.take().expect("stderr"));
        let (port, admin) = wait_listening(&mut child, &stderr, admin_off).await;
        Container {
            name: self.name,
            url: format!("http://127.0.0.1:{port}"),
            admin_url: admin
                .map(|a| format!("http://127.0.0.1:{a}"))
                .unwrap_or_default(),
            stdout,
            stderr,
            child: KillOnDrop(child),
            _removal: removal,
        }
    }
}

/// Removes the container named when dropped (it may be gone already).
struct Removal(String);

impl Drop for Removal {
    fn drop(&mut self) {
        let _ = std::process::Command::new(podman())
            .args(["rm", "-f", "-v", "--time", "0", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A running collector container, attached: its log is read as it comes.
pub struct Container {
    pub name: String,
    pub url: String,
    /// The admin listener; empty when it is off.
    pub admin_url: String,
    pub stdout: Lines,
    pub stderr: Lines,
    child: KillOnDrop,
    _removal: Removal,
}

impl Container {
    /// `podman stop --time <grace>`: SIGTERM, then SIGKILL after `grace`. Returns the
    /// container's exit code.
    pub async fn stop(mut self, grace: Duration) -> Option<i32> {
        let time = grace.as_secs().to_string();
        podman_ok(&["stop", "--time", &time, &self.name]).await;
        self.child.0.wait().await.ok().and_then(|s| s.code())
    }

    /// `podman kill` (SIGKILL: nothing is flushed or saved), and waits for the container to go.
    pub async fn kill(mut self) {
        podman_ok(&["kill", &self.name]).await;
        let _ = self.child.0.wait().await;
    }

    /// `podman exec <container> <args>`.
    pub async fn exec(&self, args: &[&str]) -> Output {
        let mut all = vec!["exec", self.name.as_str()];
        all.extend_from_slice(args);
        podman_output(&all).await
    }
}
