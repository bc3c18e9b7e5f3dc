//! HTTPS in front of a plain-HTTP peer (kinesalite): haproxy terminating TLS with a certificate
//! from a test CA, so a client's trust store can be tested against a real endpoint.

use crate::certs::CertPair;
use crate::procs::{command, start_on_free_port, KillOnDrop};
use std::path::PathBuf;
use std::process::Stdio;

/// haproxy on 127.0.0.1 forwarding TLS connections to a local port; stopped when dropped.
pub struct TlsFront {
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    pub port: u16,
    _dir: tempfile::TempDir,
    _child: KillOnDrop,
}

fn haproxy() -> PathBuf {
    ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("haproxy is not installed: run  apt-get install -y haproxy"))
}

/// Starts haproxy serving `cert` (issued for 127.0.0.1) and passing the decrypted bytes to
/// `127.0.0.1:<upstream_port>`.
pub async fn spawn_tls_front(upstream_port: u16, cert: &CertPair) -> TlsFront {
    let dir = tempfile::tempdir().expect("tmp");
    let pem = dir.path().join("server.pem");
    std::fs::write(&pem, format!("{}{}", cert.cert_pem, cert.key_pem)).expect("write the pem");
    let cfg_path = dir.path().join("haproxy.cfg");
    let (child, port) = start_on_free_port("haproxy", |port| {
        std::fs::write(
            &cfg_path,
            format!(
                "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
                 frontend tls\n  bind 127.0.0.1:{port} ssl crt {pem}\n  default_backend upstream\n\
                 backend upstream\n  server upstream 127.0.0.1:{upstream_port}\n",
                pem = pem.display()
            ),
        )
        .expect("write haproxy.cfg");
        command(haproxy())
            .arg("-db")
            .arg("-f")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start haproxy")
    })
    .await;
    TlsFront {
        url: format!("https://127.0.0.1:{port}"),
        port,
        _dir: dir,
        _child: KillOnDrop(child),
    }
}
