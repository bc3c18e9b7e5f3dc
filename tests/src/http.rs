//! HTTP clients the tests share.

use crate::certs::TestCa;
use std::time::Duration;

/// A client whose requests give up after 30 s, so a server that stops answering fails the test
/// instead of hanging it.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// A client builder that trusts only `ca` and reaches `https://localhost:<port>` on 127.0.0.1
/// (the name the test server certificates carry). Add an identity for mutual TLS, or turn
/// connection reuse off, before building it.
pub fn tls_client_builder(ca: &TestCa, port: u16) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem().as_bytes()).expect("root")])
        .resolve("localhost", ([127, 0, 0, 1], port).into())
}
