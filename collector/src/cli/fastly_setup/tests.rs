//! The Fastly commands from the configuration: tests.

use super::*;

fn config(extra: &str) -> Config {
    Config::from_yaml(
        &format!(
            "fastly: {{service_ids: [SVC1]}}\nbuffer: {{type: memory}}\noutput: {{stdout: {{}}}}\n{extra}"
        ),
        &|_| None,
    )
    .expect("valid")
}

const AUTH: &str =
    "ingest: {auth: {header: X-Edgelog-Token, token: t0k3n}, max_body_bytes: 5000000}\n";

fn options() -> Options {
    Options {
        service_id: "SVC1".into(),
        url: "https://logs.example.com".into(),
        endpoint: "collector".into(),
        compression: "gzip".into(),
        period: DEFAULT_PERIOD_SECONDS,
        format: "json".into(),
        origin: None,
        tls_ca_cert: None,
        tls_client_cert: None,
        tls_client_key: None,
        tls_hostname: None,
    }
}

fn err(extra: &str, o: Options) -> String {
    plan(&config(extra), &o).expect_err("refused").to_string()
}

fn words(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .flat_map(|s| s.args.iter())
        .filter_map(|a| match a {
            Arg::Plain(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_endpoint_matches_the_configuration() {
    let steps = plan(&config(AUTH), &options()).expect("plan");
    let w = words(&steps);
    for want in [
        "--url=https://logs.example.com/logs",
        "--json-format=2",
        "--message-type=blank",
        "--method=POST",
        "--header-name=X-Edgelog-Token",
        "--request-max-bytes=5000000",
        "--compression-codec=gzip",
        "--period=5",
        "--tls-hostname=logs.example.com",
    ] {
        assert!(w.iter().any(|x| x == want), "{want} missing: {w:?}");
    }
    assert!(!w.iter().any(|x| x.contains("t0k3n")));
    assert!(
        !w.iter().any(|x| x.starts_with("--address")),
        "no origin, no backend"
    );
    let subcommands: Vec<String> = steps.iter().map(|s| s.subcommand().join(" ")).collect();
    assert_eq!(
        subcommands,
        [
            "logging https create",
            "config-store create",
            "config-store-entry create",
            "config-store-entry create",
            "resource-link create",
            "service-version activate"
        ]
    );
    let text = script(&steps, "SVC1");
    assert!(!text.contains("t0k3n"));
    assert!(text.contains("--header-value=\"$EDGELOG_INGEST_TOKEN\""));
}

#[test]
fn a_path_port_and_compression_are_kept() {
    let mut o = options();
    o.url = "https://logs.example.com:8443/in/fastly".into();
    o.compression = "none".into();
    o.origin = Some("origin.example.org:8443".into());
    let w = words(&plan(&config(AUTH), &o).expect("plan"));
    assert!(w.contains(&"--url=https://logs.example.com:8443/in/fastly".to_string()));
    assert!(w.contains(&"--tls-hostname=logs.example.com".to_string()));
    assert!(!w.iter().any(|x| x.starts_with("--compression-codec")));
    assert!(w.contains(&"--address=origin.example.org".to_string()));
    assert!(w.contains(&"--port=8443".to_string()));
}

#[test]
fn every_mistake_names_what_to_change() {
    let dir = tempfile::tempdir().expect("tmp");
    let not_pem = dir.path().join("cert.txt");
    std::fs::write(&not_pem, "hello").expect("write");
    let ca = dir.path().join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let tls = format!(
        "{AUTH}tls: {{cert: {c}, key: {c}, client_ca: {c}}}\n",
        c = ca.display()
    );
    let cases: Vec<(String, Options, &str)> = vec![
        (
            AUTH.into(),
            Options {
                url: "http://logs.example.com".into(),
                ..options()
            },
            "--url: \"http://logs.example.com\": Fastly sends logs only over https://",
        ),
        (
            AUTH.into(),
            Options {
                url: "https:///logs".into(),
                ..options()
            },
            "--url: \"https:///logs\": no host",
        ),
        (
            AUTH.into(),
            Options {
                service_id: "OTHER".into(),
                ..options()
            },
            "--service-id OTHER: fastly.service_ids does not list it",
        ),
        (
            AUTH.into(),
            Options {
                compression: "brotli".into(),
                ..options()
            },
            "--compression \"brotli\": one of gzip, zstd, snappy, none",
        ),
        (
            AUTH.into(),
            Options {
                period: 0,
                ..options()
            },
            "--period 0: must be 1 or more seconds",
        ),
        (String::new(), options(), "ingest.auth is not set"),
        (
            tls.clone(),
            options(),
            "tls.client_ca is set, so the collector asks for a client certificate",
        ),
        (
            tls,
            Options {
                tls_client_cert: Some(ca.clone()),
                ..options()
            },
            "--tls-client-cert and --tls-client-key go together",
        ),
        (
            AUTH.into(),
            Options {
                tls_ca_cert: Some(not_pem.clone()),
                ..options()
            },
            "--tls-ca-cert ",
        ),
        (
            AUTH.into(),
            Options {
                tls_ca_cert: Some(dir.path().join("missing.pem")),
                ..options()
            },
            "--tls-ca-cert: cannot read ",
        ),
    ];
    for (extra, o, want) in cases {
        let e = err(&extra, o);
        assert!(e.starts_with(want), "{e}\nwanted: {want}");
    }
}

#[test]
fn the_store_id_is_read_from_an_object_or_an_array() {
    assert_eq!(
        store_id_in(br#"{"id":"abc","name":"edgelog"}"#).as_deref(),
        Some("abc")
    );
    assert_eq!(store_id_in(br#"[{"id":"x1"}]"#).as_deref(), Some("x1"));
    assert_eq!(store_id_in(b"not json"), None);
    assert_eq!(store_id_in(br#"{"name":"edgelog"}"#), None);
}
