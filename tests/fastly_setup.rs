//! `scripts/fastly-setup`, run as `docs/operations.md` shows it: every `fastly` command and flag it prints
//! is one the installed Fastly CLI's own `--help` lists (with that command's required flags
//! given), the printed script is valid bash, and `--run` runs exactly what the script would, in
//! order, the Config Store id carried from the command that creates it to those that use it.

use edgelog_testkit::certs::TestCa;
use edgelog_testkit::paths::{doc_block, npm_bin_dir, repo_root, target_dir};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

const TOKEN: &str = "tok-9f2a71c4";
const SERVICE: &str = "SU1Z0isxPaozGVKXdv0eY";

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    /// A configuration with a token, a body limit, and mutual TLS; the PEM files beside it.
    fn new() -> Setup {
        Setup::with_tls(true)
    }

    fn with_tls(mutual: bool) -> Setup {
        let dir = tempfile::tempdir().expect("tmp");
        let ca = TestCa::new("edgelog test CA");
        let server = ca.server();
        let client = ca.client("fastly");
        let write =
            |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write");
        write("ca.pem", &ca.pem());
        write("server.pem", &server.cert_pem);
        write("server.key", &server.key_pem);
        write("fastly.pem", &client.cert_pem);
        write("fastly.key", &client.key_pem);
        write(
            "collector.yaml",
            &format!(
                "fastly: {{service_ids: [{SERVICE}]}}\n\
                 tls: {{cert: server.pem, key: server.key{client_ca}}}\n\
                 ingest: {{auth: {{header: X-Edgelog-Token, token: {TOKEN}}}, max_body_bytes: 31457280}}\n\
                 buffer: {{type: memory}}\noutput: {{stdout: {{}}}}\n",
                client_ca = if mutual { ", client_ca: ca.pem" } else { "" }
            ),
        );
        Setup { dir }
    }

    /// `scripts/fastly-setup` with the usual arguments and `extra`.
    fn run(&self, extra: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let mut args = vec![
            "--config",
            "collector.yaml",
            "--service-id",
            SERVICE,
            "--url",
            "https://logs.example.com",
            "--origin",
            "www.example.org",
            "--tls-ca-cert",
            "ca.pem",
            "--tls-client-cert",
            "fastly.pem",
            "--tls-client-key",
            "fastly.key",
        ];
        args.extend(extra);
        self.run_with(&args, env)
    }

    /// `scripts/fastly-setup ARGS`, run from the configuration's directory.
    fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        Command::new(repo_root().join("scripts/fastly-setup"))
            .current_dir(self.dir.path())
            .args(args)
            .env("CARGO_TARGET_DIR", target_dir())
            .envs(env.iter().copied())
            .output()
            .expect("run scripts/fastly-setup")
    }

    fn script(&self) -> String {
        let out = self.run(&[], &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// A stand-in `fastly` that records every call and answers `config-store create --json`;
    /// it fails the subcommand named in `FAKE_FASTLY_FAIL`.
    fn fake_fastly(&self) -> PathBuf {
        let path = self.dir.path().join("bin/fastly");
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(
            &path,
            "#!/usr/bin/env bash\n\
             printf '%s\\x1f' \"$@\" >> \"$FAKE_FASTLY_LOG\"; printf '\\x1e' >> \"$FAKE_FASTLY_LOG\"\n\
             [ \"$1 $2\" = \"${FAKE_FASTLY_FAIL:-}\" ] && { echo 'ERROR: refused' >&2; exit 1; }\n\
             if [ \"$1 $2\" = 'config-store create' ]; then\n\
             \x20 printf '{\\n  \"created_at\": \"2026-11-22T01:00:00Z\",\\n  \"id\": \"cs7Hq2xK\",\\n  \"name\": \"edgelog\"\\n}\\n'\n\
             fi\n",
        )
        .expect("write the stand-in");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        path
    }
}

impl Setup {
    /// Runs `script` with bash (errexit, pipefail) in the configuration's directory, the
    /// stand-in `fastly` first on PATH; panics with its stderr if it fails.
    fn bash_with_fake(&self, fake: &Path, script: &str, env: &[(&str, &str)]) {
        let path = format!(
            "{}:{}",
            fake.parent().expect("dir").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", script])
            .current_dir(self.dir.path())
            .env("PATH", path)
            .env("CARGO_TARGET_DIR", target_dir())
            .envs(env.iter().copied())
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The calls a log holds: each call's arguments.
fn calls(log: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.split('\x1e')
        .filter(|c| !c.is_empty())
        .map(|c| {
            c.split('\x1f')
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect()
}

/// Each `fastly` command of the script: its subcommand words and its flags (`--name` to value).
fn commands(script: &str) -> Vec<(String, HashMap<String, String>)> {
    let joined = script.replace(" \\\n  ", " ");
    joined
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once("fastly ").map(|(_, rest)| rest))
        .map(|rest| {
            let rest = rest
                .split(" | ")
                .next()
                .unwrap_or(rest)
                .trim_end_matches(')');
            let words = shell_words(rest);
            let sub = words
                .iter()
                .take_while(|w| !w.starts_with('-'))
                .cloned()
                .collect::<Vec<_>>()
                .join(" ");
            let flags = words
                .iter()
                .filter(|w| w.starts_with("--"))
                .map(|w| match w.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.trim_matches('"').to_string()),
                    None => (w.to_string(), String::new()),
                })
                .collect();
            (sub, flags)
        })
        .collect()
}

/// Splits a command line at spaces outside quotes (the quotes stay).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = vec![String::new()];
    let mut quote = None;
    for c in line.chars() {
        match (c, quote) {
            (' ', None) => words.push(String::new()),
            ('"' | '\'', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            _ => {}
        }
        if c != ' ' || quote.is_some() {
            words.last_mut().expect("a word").push(c);
        }
    }
    words.retain(|w| !w.is_empty());
    words
}

/// The flags `fastly <sub> --help` lists, and those under REQUIRED FLAGS.
fn help_flags(sub: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let out = Command::new(npm_bin_dir().join("fastly"))
        .args(sub.split(' '))
        .arg("--help")
        .output()
        .expect("run the Fastly CLI (scripts/setup installs it)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("USAGE"), "fastly {sub} --help:\n{text}");
    let flags_in = |t: &str| -> BTreeSet<String> {
        t.split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| w.starts_with("--") && w.len() > 2)
            .map(|w| w.split('=').next().unwrap_or(w).to_string())
            .collect()
    };
    let required = text
        .split("REQUIRED FLAGS")
        .nth(1)
        .and_then(|t| t.split("\n\n").next())
        .map(flags_in)
        .unwrap_or_default();
    (flags_in(&text), required)
}

#[test]
fn every_command_and_flag_is_one_the_installed_fastly_cli_knows() {
    let setup = Setup::new();
    let script = setup.script();
    assert!(!script.contains(TOKEN), "the token is never printed");
    let check = Command::new("bash")
        .args(["-n", "-c", &script])
        .output()
        .expect("bash -n");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let cmds = commands(&script);
    let subs: Vec<&str> = cmds.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        subs,
        [
            "logging https create",
            "config-store create",
            "config-store-entry create",
            "config-store-entry create",
            "resource-link create",
            "backend create",
            "service-version activate"
        ]
    );
    for (sub, flags) in &cmds {
        let (known, required) = help_flags(sub);
        for f in flags.keys() {
            assert!(
                known.contains(f),
                "fastly {sub}: {f} is not in its --help ({known:?})"
            );
        }
        for r in &required {
            assert!(
                flags.contains_key(r),
                "fastly {sub}: required {r} not given"
            );
        }
    }

    // The documented way to change the endpoint's TLS settings later.
    let (update, _) = help_flags("logging https update");
    for f in [
        "--name",
        "--tls-ca-cert",
        "--tls-client-cert",
        "--tls-client-key",
        "--tls-hostname",
    ] {
        assert!(update.contains(f), "fastly logging https update: no {f}");
    }

    // The endpoint as the collector reads it.
    let endpoint = &cmds[0].1;
    for (k, v) in [
        ("--service-id", SERVICE),
        ("--url", "https://logs.example.com/logs"),
        ("--method", "POST"),
        ("--json-format", "2"),
        ("--message-type", "blank"),
        ("--compression-codec", "gzip"),
        ("--header-name", "X-Edgelog-Token"),
        ("--header-value", "$EDGELOG_INGEST_TOKEN"),
        ("--request-max-bytes", "31457280"),
        ("--period", "5"),
        ("--tls-hostname", "logs.example.com"),
        ("--tls-ca-cert", "$(cat ca.pem)"),
        ("--tls-client-cert", "$(cat fastly.pem)"),
        ("--tls-client-key", "$(cat fastly.key)"),
    ] {
        assert_eq!(endpoint.get(k).map(String::as_str), Some(v), "{k}");
    }
    assert_eq!(cmds[2].1["--key"], "endpoints");
    assert_eq!(cmds[2].1["--value"], "collector");
    assert_eq!(cmds[3].1["--key"], "format");
    assert_eq!(cmds[5].1["--address"], "www.example.org");
    assert_eq!(cmds[5].1["--name"], "origin");
}

#[test]
fn run_runs_what_the_script_would_in_order() {
    let setup = Setup::new();
    let fake = setup.fake_fastly();
    let by_run = setup.dir.path().join("run.log");
    let out = setup.run(
        &["--run", "--fastly", &fake.display().to_string()],
        &[("FAKE_FASTLY_LOG", &by_run.display().to_string())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let by_script = setup.dir.path().join("script.log");
    setup.bash_with_fake(
        &fake,
        &setup.script(),
        &[
            ("EDGELOG_INGEST_TOKEN", TOKEN),
            ("FAKE_FASTLY_LOG", &by_script.display().to_string()),
        ],
    );

    let run = calls(&by_run);
    assert_eq!(
        run,
        calls(&by_script),
        "--run and the script made the same calls"
    );
    assert_eq!(run.len(), 7);
    let has = |i: usize, arg: &str| run[i].iter().any(|a| a == arg);
    assert!(has(0, &format!("--header-value={TOKEN}")));
    let ca = std::fs::read_to_string(setup.dir.path().join("ca.pem")).expect("ca");
    assert!(
        has(0, &format!("--tls-ca-cert={}", ca.trim_end())),
        "the PEM text itself"
    );
    assert!(has(2, "--store-id=cs7Hq2xK") && has(3, "--store-id=cs7Hq2xK"));
    assert!(has(4, "--resource-id=cs7Hq2xK"));
    assert_eq!(run[6][..2], ["service-version", "activate"]);
}

#[test]
fn a_failing_command_stops_the_rest() {
    let setup = Setup::new();
    let fake = setup.fake_fastly();
    let log = setup.dir.path().join("run.log");
    let out = setup.run(
        &["--run", "--fastly", &fake.display().to_string()],
        &[
            ("FAKE_FASTLY_LOG", &log.display().to_string()),
            ("FAKE_FASTLY_FAIL", "backend create"),
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("fastly backend create: exited with"),
        "{stderr}"
    );
    let made = calls(&log);
    assert_eq!(made.len(), 6, "nothing after the failed command");
    assert_eq!(made[5][..2], ["backend", "create"]);

    // A mistake in the options is named before anything runs.
    let out = setup.run_with(
        &[
            "--config",
            "collector.yaml",
            "--service-id",
            "OTHER",
            "--url",
            "https://logs.example.com",
            "--tls-client-cert",
            "fastly.pem",
            "--tls-client-key",
            "fastly.key",
            "--run",
            "--fastly",
            "/nonexistent",
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("--service-id OTHER: fastly.service_ids does not list it"),
        "{stderr}"
    );
}

#[test]
fn the_documented_snippet_runs_as_written() {
    let setup = Setup::with_tls(false);
    std::os::unix::fs::symlink(
        repo_root().join("scripts"),
        setup.dir.path().join("scripts"),
    )
    .expect("link scripts/");
    let fake = setup.fake_fastly();
    let log = setup.dir.path().join("calls.log");
    let snippet = doc_block("docs/operations.md", "### 3. Fastly")
        .replace(
            "EDGELOG_INGEST_TOKEN=...",
            &format!("EDGELOG_INGEST_TOKEN={TOKEN}"),
        )
        .replace("FASTLY_API_TOKEN=...", "FASTLY_API_TOKEN=unused");
    setup.bash_with_fake(
        &fake,
        &snippet,
        &[("FAKE_FASTLY_LOG", &log.display().to_string())],
    );
    let made = calls(&log);
    assert_eq!(made.len(), 14, "the script's 7 calls, then --run's 7");
    assert_eq!(made[..7], made[7..]);
    let has = |i: usize, arg: &str| made[i].iter().any(|a| a == arg);
    assert!(has(0, "--url=https://logs.example.com/logs"));
    assert!(has(0, &format!("--header-value={TOKEN}")));
    assert!(has(5, "--address=www.example.com"));
}
