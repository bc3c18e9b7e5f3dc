//! The collector's TLS certificates rotate without a restart: on SIGHUP and when the files
//! change, new connections get the new certificate, a connection in progress finishes on the old
//! one, and a bad new certificate or key is refused with a logged error while the old one stays.
//! At start, a key that does not match its certificate or a client CA that is not PEM is an
//! error naming the key. (Client certificates are in `collector_ingest`.)

use edgelog_testkit::certs::{CertPair, TestCa};
use edgelog_testkit::collector::{metric, refused_at_start, spawn_collector_process};
use edgelog_testkit::config_yaml::ConfigYaml;
use edgelog_testkit::http::tls_client_builder;
use edgelog_testkit::procs::until;
use std::path::{Path, PathBuf};
use std::time::Duration;

struct Files {
    cert: PathBuf,
    key: PathBuf,
}

impl Files {
    fn write(&self, pair: &CertPair) {
        std::fs::write(&self.key, &pair.key_pem).expect("key");
        std::fs::write(&self.cert, &pair.cert_pem).expect("cert");
    }
}

/// A collector in its own process serving TLS with `files` (`extra` keys added to `tls`), with a
/// memory buffer and a file output (`{dir}/out.log`); the configuration is written in `dir`.
fn config(dir: &Path, files: &Files, extra: &str) -> PathBuf {
    ConfigYaml::new()
        .process()
        .set(&format!(
            "tls: {{cert: \"{}\", key: \"{}\"{extra}}}",
            files.cert.display(),
            files.key.display()
        ))
        .set("buffer: {type: memory}")
        .file_output("{dir}/out.log")
        .write(dir)
}

/// A client that trusts only `ca` and sends every request on a new connection.
fn client(ca: &TestCa, port: u16) -> reqwest::Client {
    tls_client_builder(ca, port)
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

async fn post(c: &reqwest::Client, port: u16, line: &str) -> Result<u16, String> {
    c.post(format!("https://localhost:{port}/logs"))
        .body(format!("{line}\n"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

fn hup(pid: u32) {
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "SIGHUP");
}

#[tokio::test]
async fn certificates_rotate_on_sighup_and_on_file_change_and_a_bad_one_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let files = Files {
        cert: dir.path().join("server.pem"),
        key: dir.path().join("server.key"),
    };
    let (ca1, ca2, ca3) = (
        TestCa::new("first"),
        TestCa::new("second"),
        TestCa::new("third"),
    );
    files.write(&ca1.server());
    let proc = spawn_collector_process(&config(dir.path(), &files, "")).await;
    let port = proc.port;
    assert_eq!(post(&client(&ca1, port), port, "one").await, Ok(204));
    assert!(post(&client(&ca2, port), port, "x").await.is_err());

    // A slow upload on the first certificate, still sending while the certificate changes.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let slow = {
        let c = client(&ca1, port);
        tokio::spawn(async move {
            c.post(format!("https://localhost:{port}/logs"))
                .body(reqwest::Body::wrap_stream(
                    tokio_stream::wrappers::ReceiverStream::new(rx),
                ))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .map_err(|e| format!("{e:?}"))
        })
    };
    tx.send(Ok(b"in progress, ".to_vec())).await.expect("chunk");
    tokio::time::sleep(Duration::from_millis(300)).await;

    files.write(&ca2.server());
    hup(proc.pid());
    proc.stderr
        .wait_for("a reload", Duration::from_secs(20), |l| {
            l.iter()
                .any(|l| l.contains("reloaded; new connections use them"))
        })
        .await;
    tx.send(Ok(b"finished on the old certificate\n".to_vec()))
        .await
        .expect("chunk");
    drop(tx);
    assert_eq!(slow.await.expect("slow upload"), Ok(204));
    assert_eq!(post(&client(&ca2, port), port, "two").await, Ok(204));
    assert!(
        post(&client(&ca1, port), port, "x").await.is_err(),
        "new connections get the new certificate"
    );

    // A key that does not belong to the certificate: refused, the second certificate stays.
    std::fs::write(&files.key, ca3.server().key_pem).expect("key");
    hup(proc.pid());
    let lines = proc
        .stderr
        .wait_for("a refused reload", Duration::from_secs(20), |l| {
            l.iter().any(|l| l.contains("reload refused"))
        })
        .await;
    let refused = lines
        .iter()
        .find(|l| l.contains("reload refused"))
        .expect("line");
    assert!(refused.contains("tls.key"), "{refused}");
    for _ in 0..3 {
        assert_eq!(post(&client(&ca2, port), port, "still").await, Ok(204));
    }

    // A change to the files alone is picked up, with no signal.
    files.write(&ca3.server());
    until(
        Duration::from_secs(20),
        "the changed files picked up",
        async || post(&client(&ca3, port), port, "three").await == Ok(204),
    )
    .await;
    assert!(metric(&proc.admin_url, "edgelog_tls_reloads_total{result=\"ok\"}").await >= 2);
    assert!(
        metric(
            &proc.admin_url,
            "edgelog_tls_reloads_total{result=\"failed\"}"
        )
        .await
            >= 1
    );
    let out = std::fs::read_to_string(dir.path().join("out.log")).unwrap_or_default();
    for line in [
        "one",
        "in progress, finished on the old certificate",
        "two",
        "still",
        "three",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "{line:?} not delivered:\n{out}"
        );
    }
}

#[tokio::test]
async fn a_key_of_another_certificate_or_a_client_ca_that_is_not_pem_stops_the_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let files = Files {
        cert: dir.path().join("server.pem"),
        key: dir.path().join("server.key"),
    };
    let ca = TestCa::new("ca");
    let pair = ca.server();
    std::fs::write(&files.cert, &pair.cert_pem).expect("cert");
    std::fs::write(&files.key, ca.server().key_pem).expect("key");
    let not_pem = dir.path().join("ca.der");
    std::fs::write(&not_pem, b"\x30\x82\x01\x0anot a pem file").expect("ca");
    let cases = [
        (String::new(), "tls.key: "),
        (
            format!(", client_ca: \"{}\"", not_pem.display()),
            "tls.client_ca: no PEM certificate in",
        ),
    ];
    for (i, (extra, says)) in cases.iter().enumerate() {
        if i == 1 {
            files_write_matching(&files, &pair);
        }
        let stderr = refused_at_start(&config(dir.path(), &files, extra)).await;
        assert!(stderr.contains(says), "{says}: {stderr}");
    }
}

fn files_write_matching(files: &Files, pair: &CertPair) {
    std::fs::write(&files.cert, &pair.cert_pem).expect("cert");
    std::fs::write(&files.key, &pair.key_pem).expect("key");
}
