//! What ships: the static Linux binary `scripts/build-static` makes (no dynamic loader, and it
//! serves), and the systemd unit in `deploy/`, which `systemd-analyze verify` accepts.

use edgelog_testkit::collector::{post_lines, spawn_collector_process_at, static_collector_bin};
use edgelog_testkit::paths::repo_root;
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

    let cfg = dir.path().join("collector.yaml");
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
    let proc = spawn_collector_process_at(&bin, &cfg).await;
    let lines: Vec<String> = (0..50).map(|i| format!("{{\"static\":{i}}}")).collect();
    assert_eq!(post_lines(&proc.url, None, &lines).await, 204);
    let out = dir.path().join("out.log");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = std::fs::read_to_string(&out).unwrap_or_default();
        if got.lines().count() == 50 {
            assert_eq!(got.lines().collect::<Vec<_>>(), lines);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not delivered: {got}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(proc.terminate().await, Some(0));
}

/// `Key=value` settings of a unit file.
fn settings(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[tokio::test]
async fn the_systemd_unit_is_hardened_and_systemd_analyze_verify_accepts_it() {
    let unit = std::fs::read_to_string(repo_root().join("deploy/edgelog-collector.service"))
        .expect("unit");
    let s = settings(&unit);
    let get = |k: &str| {
        s.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{k} is not set"))
    };
    for (k, v) in [
        ("DynamicUser", "yes"),
        ("StateDirectory", "edgelog"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("Restart", "on-failure"),
        ("KillSignal", "SIGTERM"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
    ] {
        assert_eq!(get(k), v, "{k}");
    }
    // A graceful stop flushes for shutdown_timeout (30 s by default): systemd must wait longer.
    let stop = humantime::parse_duration(get("TimeoutStopSec")).expect("duration");
    assert!(stop > Duration::from_secs(30), "TimeoutStopSec {stop:?}");
    let exec = get("ExecStart");
    assert!(exec.starts_with("/usr/local/bin/edgelog-collector serve --config /etc/edgelog/"));

    // systemd checks that ExecStart's program exists: point it at a real file for the check.
    let dir = tempfile::tempdir().expect("tmp");
    let program = dir.path().join("edgelog-collector");
    std::fs::copy("/bin/true", &program).expect("program");
    let copy = dir.path().join("edgelog-collector.service");
    std::fs::write(
        &copy,
        unit.replace(
            "/usr/local/bin/edgelog-collector",
            &program.display().to_string(),
        ),
    )
    .expect("unit copy");
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .current_dir(dir.path())
        .output()
        .expect("systemd-analyze is installed (Debian's systemd)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.trim().is_empty(), "warnings: {said}");
}
