//! The collector as it ships outside a container: the static Linux binary `scripts/build-static`
//! makes (no dynamic loader, and it serves); the systemd unit in `deploy/` (accepted by
//! `systemd-analyze verify` with the real binary, rated by `systemd-analyze security`, listening
//! on 443 with one capability, its secrets and TLS files through `LoadCredential=`); what the
//! binary tells systemd (ready, and on SIGTERM how long its flush may take); SIGHUP never ending
//! it; and the production configuration `deploy/collector.yaml` checked by `collector
//! check-config` as written, `--probe` included.

use edgelog_testkit::certs::TestCa;
use edgelog_testkit::collector::{
    collector_bin, output_file_lines, post_lines, spawn_collector_process_at,
    spawn_collector_process_with, static_collector_bin,
};
use edgelog_testkit::config_yaml::ConfigYaml;
use edgelog_testkit::delivery::{stream, yaml};
use edgelog_testkit::paths::repo_root;
use edgelog_testkit::procs::until;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

/// The program header types of an ELF64 little-endian file.
fn program_header_types(elf: &[u8]) -> Vec<u32> {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not 64-bit");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let mut off = [0u8; 8];
    off.copy_from_slice(&elf[0x20..0x28]);
    let phoff = u64::from_le_bytes(off) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count)
        .map(|i| {
            let at = phoff + i * size;
            u32::from_le_bytes([elf[at], elf[at + 1], elf[at + 2], elf[at + 3]])
        })
        .collect()
}

const PT_INTERP: u32 = 3;

#[tokio::test]
async fn the_static_binary_needs_no_loader_and_serves() {
    let dir = tempfile::tempdir().expect("tmp");
    let bin = tokio::task::spawn_blocking(static_collector_bin)
        .await
        .expect("scripts/build-static");
    let elf = std::fs::read(&bin).expect("binary");
    let types = program_header_types(&elf);
    assert!(!types.is_empty());
    assert!(
        !types.contains(&PT_INTERP),
        "the binary asks for a dynamic loader: {types:?}"
    );
    let ldd = std::process::Command::new("ldd").arg(&bin).output();
    if let Ok(o) = ldd {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            text.contains("statically linked") || text.contains("not a dynamic executable"),
            "{text}"
        );
    }

    let cfg = ConfigYaml::new()
        .set("listen: \"127.0.0.1:0\"")
        .set("buffer: {type: disk, dir: \"{dir}/buffer\"}")
        .file_output("{dir}/out.log")
        .write(dir.path());
    let proc = spawn_collector_process_at(&bin, &cfg).await;
    let lines: Vec<String> = (0..50).map(|i| format!("{{\"static\":{i}}}")).collect();
    assert_eq!(post_lines(&proc.url, None, &lines).await, 204);
    let got = output_file_lines(&dir.path().join("out.log"), 50).await;
    let got: Vec<String> = got
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    assert_eq!(got, lines, "not delivered");
    assert_eq!(proc.terminate().await, Some(0));
}

fn unit() -> String {
    std::fs::read_to_string(repo_root().join("deploy/edgelog-collector.service")).expect("unit")
}

/// Every value a unit sets for `key`, in order.
fn values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

fn one(unit: &str, key: &str) -> String {
    let v = values(unit, key);
    assert_eq!(v.len(), 1, "{key}: {v:?}");
    v[0].clone()
}

/// The unit with `ExecStart`'s program replaced by `program` (systemd checks that it exists), in
/// a directory of its own.
fn unit_copy(program: &Path) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tmp");
    let copy = dir.path().join("edgelog-collector.service");
    std::fs::write(
        &copy,
        unit().replace(
            "/usr/local/bin/edgelog-collector",
            &program.display().to_string(),
        ),
    )
    .expect("unit copy");
    (dir, copy)
}

fn systemd_analyze(args: &[&str], unit: &Path) -> (bool, String) {
    let out = std::process::Command::new("systemd-analyze")
        .args(args)
        .arg(unit)
        .output()
        .expect("systemd-analyze is installed (Debian's systemd; scripts/setup installs it)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn the_unit_keeps_one_capability_takes_credentials_and_verifies_with_the_real_binary() {
    let u = unit();
    for (k, v) in [
        ("Type", "notify"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "edgelog"),
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("KillSignal", "SIGTERM"),
        ("Restart", "on-failure"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
    ] {
        assert_eq!(one(&u, k), v, "{k}");
    }
    // A graceful stop flushes for shutdown_timeout (30 s by default): systemd waits at least
    // longer than that (and as long as the collector asks, over the notify protocol).
    let stop = humantime::parse_duration(&one(&u, "TimeoutStopSec")).expect("duration");
    assert!(stop > Duration::from_secs(30), "TimeoutStopSec {stop:?}");
    let creds = values(&u, "LoadCredential");
    for name in ["ingest-token", "tls.crt", "tls.key"] {
        assert!(
            creds.iter().any(|c| c.starts_with(&format!("{name}:/"))),
            "LoadCredential for {name}: {creds:?}"
        );
    }
    assert!(one(&u, "ExecStart").ends_with("serve --config /etc/edgelog/collector.yaml"));
    // The production configuration sits where the unit reads it, in the state directory.
    let prod = std::fs::read_to_string(repo_root().join("deploy/collector.yaml")).expect("yaml");
    assert!(prod.contains("dir: /var/lib/edgelog/buffer"), "{prod}");

    let (_dir, copy) = unit_copy(&collector_bin());
    let (ok, said) = systemd_analyze(&["verify"], &copy);
    assert!(ok, "{said}");
    assert!(said.trim().is_empty(), "warnings: {said}");
}

#[test]
fn systemd_analyze_security_rates_the_unit_at_most_2() {
    let (_dir, copy) = unit_copy(&collector_bin());
    let (_, said) = systemd_analyze(&["security", "--offline=true"], &copy);
    let level = said
        .lines()
        .find_map(|l| l.split("Overall exposure level for ").nth(1))
        .and_then(|rest| rest.split(':').nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{said}"));
    println!("systemd-analyze security: exposure {level}");
    assert!(level <= 2.0, "exposure {level}:\n{said}");
}

/// What a collector run under systemd's notify protocol sends: READY=1 once serving; on SIGTERM,
/// STOPPING=1 and a stop timeout of `shutdown_timeout` + 5 s, so `TimeoutStopSec` follows it.
#[tokio::test]
async fn the_collector_tells_systemd_it_is_ready_and_how_long_it_may_take_to_stop() {
    let dir = tempfile::tempdir().expect("tmp");
    let socket_path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).expect("notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let cfg = dir.path().join("collector.yaml");
    std::fs::write(
        &cfg,
        format!(
            "listen: \"127.0.0.1:0\"\nfastly: {{service_ids: [\"*\"]}}\nshutdown_timeout: 90s\n\
             buffer: {{type: memory}}\ndead_letter: {{path: \"{d}/dead.ndjson\"}}\n\
             output: {{file: {{path: \"{d}/out.log\"}}}}\n",
            d = dir.path().display()
        ),
    )
    .expect("config");
    let notify = socket_path.display().to_string();
    let proc =
        spawn_collector_process_with(&collector_bin(), &cfg, &[("NOTIFY_SOCKET", &notify)]).await;
    let mut buf = [0u8; 512];
    // One datagram per notification, one `KEY=value` per line.
    let read = |buf: &mut [u8]| -> Vec<String> {
        let n = socket.recv(buf).expect("a notification within 60 s");
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(read(&mut buf), ["READY=1"]);
    assert_eq!(post_lines(&proc.url, None, &["one".to_string()]).await, 204);
    let pid = proc.pid();
    let term = tokio::task::spawn_blocking(move || {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    });
    term.await.expect("kill");
    assert_eq!(
        read(&mut buf),
        ["STOPPING=1", "EXTEND_TIMEOUT_USEC=95000000"]
    );
    assert_eq!(proc.terminate().await, Some(0));
}

/// `systemctl reload` sends SIGHUP: without a tls block it is logged and ignored, under load,
/// nothing lost.
#[tokio::test]
async fn sighup_without_tls_is_ignored_under_load_and_nothing_is_lost() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("collector.yaml");
    let out = dir.path().join("out.log");
    std::fs::write(
        &cfg,
        format!(
            "listen: \"127.0.0.1:0\"\nfastly: {{service_ids: [\"*\"]}}\n\
             buffer: {{type: disk, dir: \"{d}/buffer\"}}\ndead_letter: {{path: \"{d}/dead.ndjson\"}}\n\
             output: {{file: {{path: \"{d}/out.log\"}}}}\n",
            d = dir.path().display()
        ),
    )
    .expect("config");
    let proc = spawn_collector_process_with(&collector_bin(), &cfg, &[]).await;
    let url = proc.url.clone();
    let loader = tokio::spawn(async move {
        let mut sent = Vec::new();
        for batch in 0..200 {
            let lines: Vec<String> = (0..20).map(|i| format!("hup-{batch}-{i}")).collect();
            assert_eq!(post_lines(&url, None, &lines).await, 204, "batch {batch}");
            sent.extend(lines);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sent
    });
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let _ = std::process::Command::new("kill")
            .args(["-HUP", &proc.pid().to_string()])
            .status();
    }
    let sent = loader.await.expect("loader");
    until(
        Duration::from_secs(30),
        "every line in the output",
        async || {
            std::fs::read_to_string(&out)
                .unwrap_or_default()
                .lines()
                .count()
                == sent.len()
        },
    )
    .await;
    let got: Vec<String> = std::fs::read_to_string(&out)
        .expect("out")
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(got, sent, "every line, once, in order");
    let said = proc.stderr.snapshot().join("\n");
    assert_eq!(
        said.matches("SIGHUP: nothing to reload").count(),
        5,
        "{said}"
    );
    assert_eq!(
        proc.terminate().await,
        Some(0),
        "still running, then stopped"
    );
}

/// The production configuration as written, with what systemd and the environment file give it:
/// `check-config` reads it, its TLS files and its ingest token from the credentials directory.
fn production_env(creds: &Path) -> Vec<(String, String)> {
    let ca = TestCa::new("edgelog test CA");
    let server = ca.server();
    std::fs::write(creds.join("tls.crt"), &server.cert_pem).expect("cert");
    std::fs::write(creds.join("tls.key"), &server.key_pem).expect("key");
    std::fs::write(creds.join("ingest-token"), "t0ken-from-a-credential\n").expect("token");
    vec![
        ("CREDENTIALS_DIRECTORY".into(), creds.display().to_string()),
        ("EDGELOG_SERVICE_ID".into(), "SU1Z0isxPaozGVKXdv0eY".into()),
        ("EDGELOG_STREAM".into(), "logs".into()),
        ("AWS_REGION".into(), "us-east-1".into()),
        (
            "EDGELOG_ROLE_ARN".into(),
            "arn:aws:iam::111122223333:role/edgelog-writer".into(),
        ),
        ("EDGELOG_EXTERNAL_ID".into(), "edgelog-7c1f3b".into()),
    ]
}

fn check_config(config: &Path, env: &[(String, String)], extra: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(collector_bin())
        .arg("check-config")
        .args(extra)
        .arg("--config")
        .arg(config)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("collector check-config");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_production_configuration_passes_check_config_as_written() {
    let creds = tempfile::tempdir().expect("tmp");
    let env = production_env(creds.path());
    let prod = repo_root().join("deploy/collector.yaml");
    let (ok, stdout, stderr) = check_config(&prod, &env, &[]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("listen: 0.0.0.0:443"), "{stdout}");
    assert!(stdout.contains("/var/lib/edgelog/buffer"), "{stdout}");
    assert!(
        !stdout.contains("t0ken-from-a-credential") && !stderr.contains("t0ken-from-a-credential"),
        "the token is never printed:\n{stdout}{stderr}"
    );
    // The TLS files are read as a start would: a key that is not PEM is named.
    std::fs::write(creds.path().join("tls.key"), "not a key").expect("spoil");
    let (ok, _, stderr) = check_config(&prod, &env, &[]);
    assert!(!ok);
    assert!(stderr.contains("tls.key"), "{stderr}");
    // The token file missing is named too.
    std::fs::remove_file(creds.path().join("ingest-token")).expect("rm");
    let (ok, _, stderr) = check_config(&prod, &env, &[]);
    assert!(!ok);
    assert!(
        stderr.contains("ingest.auth.token") && stderr.contains("ingest-token"),
        "{stderr}"
    );
}

/// `check-config --probe` checks the Kinesis stream answers ListShards, without sending a line;
/// a missing stream is named.
#[tokio::test]
async fn check_config_probe_finds_the_stream_or_names_what_is_wrong() {
    let (k, kc) = stream("probed", 2).await;
    let dir = tempfile::tempdir().expect("tmp");
    let write = |stream: &str| {
        let path = dir.path().join(format!("{stream}.yaml"));
        let text = yaml(&k.endpoint, stream, "", "listen: \"127.0.0.1:0\"\n")
            .replace("{dir}", &dir.path().display().to_string());
        std::fs::write(&path, text).expect("config");
        path
    };
    let env: Vec<(String, String)> = Vec::new();
    let (ok, _, stderr) = check_config(&write("probed"), &env, &["--probe"]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("probe: aws_kinesis: stream \"probed\" answers ListShards"),
        "{stderr}"
    );
    assert!(kc.read_all("probed").await.is_empty(), "no line sent");
    let (ok, _, stderr) = check_config(&write("missing"), &env, &["--probe"]);
    assert!(!ok);
    assert!(
        stderr.contains("output.aws_kinesis.stream_name: stream \"missing\" does not exist"),
        "{stderr}"
    );
}
