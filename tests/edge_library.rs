//! The edgelog library in other people's Compute apps, built for wasm32-wasip1 and run under
//! Viceroy against a real origin: the app of `docs/edge-library.md` made into a fresh crate from
//! the page's snippets, and the library's examples. The exact lines each endpoint gets are checked.
//! The crate as published: its metadata and files, its own README (whose snippets are the page's),
//! and the package `cargo package` makes building for wasm32-wasip1 on its own.

use edgelog_testkit::http::client;
use edgelog_testkit::paths::{
    doc_block, edge_example_wasm, library_app, repo_root, target_dir, LIBRARY_DOC,
};
use edgelog_testkit::viceroy::json_line;
use edgelog_testkit::{spawn_origin, spawn_viceroy, EdgeSetup, Viceroy};
use serde_json::{json, Value};
use std::time::Duration;

/// `GET <url><path>`.
async fn get(url: &str, path: &str) -> reqwest::Response {
    client()
        .get(format!("{url}{path}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Checks the fields that differ from run to run for their form, then replaces them with
/// placeholders so the rest of the line can be compared exactly.
fn settle(mut v: Value) -> Value {
    let id = v["request_id"].as_str().expect("request_id").to_string();
    assert!(!id.is_empty());
    assert_eq!(v["trace_id"], v["request_id"]);
    let ts = v["timestamp"].as_str().expect("timestamp");
    assert!(
        ts.len() == 32 && ts.ends_with("+00:00") && ts.as_bytes()[10] == b'T',
        "{ts}"
    );
    assert!(v["elapsed_us"].as_u64().expect("elapsed_us") > 0);
    assert!(v["request_header_bytes"].as_u64().expect("header bytes") > 40);
    for key in [
        "request_id",
        "trace_id",
        "timestamp",
        "elapsed_us",
        "request_header_bytes",
    ] {
        v[key] = json!("*");
    }
    v
}

/// The JSON line's keys for a GET from the test client to Viceroy on `port`.
fn expected_line(port: u16, path: &str) -> Value {
    json!({
        "event": "access", "timestamp": "*", "request_id": "*", "trace_id": "*",
        "client_ip": "127.0.0.1",
        "geo": {"country_code": "US", "city": "San Francisco", "latitude": 37.77869,
                "longitude": -122.39557, "conn_type": "wired"},
        "pop": "XXX", "cache_host": "localhost",
        "service_id": "0000000000000000000000", "service_version": "0",
        "method": "GET", "url": path, "path": path, "query": null,
        "protocol": "HTTP/1.1", "tls_protocol": null, "host": format!("127.0.0.1:{port}"),
        "user_agent": null, "referer": null, "accept_language": null,
        "request_header_bytes": "*", "request_body_bytes": 0, "elapsed_us": "*",
    })
}

fn with(mut base: Value, extra: Value) -> Value {
    let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) else {
        panic!("objects");
    };
    for (k, v) in e {
        b.insert(k.clone(), v.clone());
    }
    base
}

#[tokio::test]
async fn the_documented_app_builds_from_the_snippets_and_logs_every_request() {
    let dir = target_dir().join("library-app");
    let _ = std::fs::remove_dir_all(&dir);
    let wasm = tokio::task::spawn_blocking(move || library_app(&dir))
        .await
        .expect("build");
    let origin = spawn_origin().await;
    let edge = spawn_viceroy(&EdgeSetup::new(&origin.url()).app(wasm.clone())).await;

    let resp = get(&edge.url, "/hello").await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["x-origin"], "yes", "origin headers pass");
    assert_eq!(resp.text().await.expect("body"), "hello world\n");

    let lines = edge.wait_endpoint_lines("collector", 1).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let expected = with(
        expected_line(edge.port, "/hello"),
        json!({"status": 200, "content_type": "text/plain; charset=utf-8",
               "content_length": 12, "body_bytes_sent": 12, "outcome": "origin",
               "error": null, "app_version": "0.1.0"}),
    );
    assert_eq!(settle(json_line(&lines[0])), expected);
    assert!(
        lines[0].ends_with(r#","error":null,"app_version":"0.1.0"}"#),
        "the app's field follows the line's own keys: {}",
        lines[0]
    );
    drop(edge);

    // The origin down: the app's own 502, logged as a failed request with the error.
    let down = spawn_viceroy(&EdgeSetup {
        origin: None,
        ..EdgeSetup::new("unused").app(wasm)
    })
    .await;
    let resp = get(&down.url, "/x").await;
    assert_eq!(resp.status().as_u16(), 502);
    assert_eq!(resp.text().await.expect("body"), "origin unavailable\n");
    let lines = down.wait_endpoint_lines("collector", 1).await;
    let v = json_line(&lines[0]);
    assert_eq!(v["status"], 502);
    assert_eq!(v["outcome"], "error");
    assert_eq!(v["app_version"], "0.1.0");
    let error = v["error"].as_str().expect("error text");
    assert!(!error.is_empty(), "{v}");
    let expected = with(
        expected_line(down.port, "/x"),
        json!({"status": 502, "content_type": "text/plain; charset=utf-8",
               "content_length": null, "body_bytes_sent": 19, "outcome": "error",
               "error": error, "app_version": "0.1.0"}),
    );
    assert_eq!(settle(v), expected);
}

async fn example(name: &str, setup: EdgeSetup) -> Viceroy {
    let name = name.to_string();
    let wasm = tokio::task::spawn_blocking(move || edge_example_wasm(&name))
        .await
        .expect("build");
    spawn_viceroy(&setup.app(wasm)).await
}

#[tokio::test]
async fn a_fastly_main_app_finishes_records_and_opts_in_to_the_global_helpers() {
    let origin = spawn_origin().await;
    let setup = EdgeSetup::new(&origin.url())
        .store("logging")
        .set("endpoints", "collector,stdout")
        .set("format", "%m %U %>s %{tier}n %{cart}n %{edgelog.outcome}V");
    let edge = example("fastly_main", setup).await;
    let get = |path: &str, tier: Option<&str>| {
        let mut req = client().get(format!("{}{path}", edge.url));
        if let Some(t) = tier {
            req = req.header("x-tier", t);
        }
        req.send()
    };
    let resp = get("/hello", Some("gold")).await.expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().await.expect("body"), "hello world\n");
    let resp = get("/teapot", None).await.expect("request");
    assert_eq!(resp.status().as_u16(), 418);
    assert_eq!(resp.text().await.expect("body"), "short and stout\n");

    let lines = edge.wait_endpoint_lines("collector", 2).await;
    assert_eq!(
        lines,
        vec![
            // Nested JSON is its JSON text, escaped like any text in a format string.
            r#"GET /hello 200 gold {\"items\":2,\"total\":9.5} origin"#,
            "GET /teapot 418 free - edge",
        ]
    );
    // The Config Store's second endpoint, `stdout`, gets the same lines.
    edge.stdout
        .wait_for("stdout lines", Duration::from_secs(10), |l| {
            l.iter().any(|x| x == "GET /teapot 418 free - edge")
        })
        .await;
    // init_log: the app's own messages go to the endpoint it named.
    let app_log = edge.wait_endpoint_lines("app_log", 2).await;
    assert_eq!(app_log, vec!["handling /hello", "handling /teapot"]);

    // The opt-in panic hook writes a panic line to the first endpoint.
    let resp = get("/panic", None).await.expect("request");
    assert_eq!(resp.status().as_u16(), 500);
    let lines = edge.wait_endpoint_lines("collector", 3).await;
    let panic = json_line(&lines[2]);
    assert_eq!(panic["event"], "panic");
    assert_eq!(panic["message"], "example panic");
    assert!(panic["location"]
        .as_str()
        .expect("location")
        .contains("fastly_main.rs"));
}

#[tokio::test]
async fn an_unfinished_record_still_logs_the_request_as_failed() {
    // The origin down: `req.send("origin")?` returns early and the record is dropped.
    let setup = EdgeSetup {
        origin: None,
        ..EdgeSetup::new("unused")
            .store("logging")
            .set(
                "format",
                "%>s %{edgelog.outcome}V %{json.escape(edgelog.error)}V",
            )
            .set("error_endpoint", "errors")
    };
    let edge = example("fastly_main", setup).await;
    let resp = get(&edge.url, "/hello").await;
    assert_eq!(
        resp.status().as_u16(),
        500,
        "#[fastly::main] answers the error"
    );
    let lines = edge.wait_endpoint_lines("collector", 1).await;
    assert_eq!(lines, vec!["0 error no response was logged"]);
    let errors = edge.wait_endpoint_lines("errors", 1).await;
    assert_eq!(errors, lines, "failed requests reach the error endpoint");
}

#[tokio::test]
async fn beside_an_app_that_set_up_log_fastly_both_keep_their_lines() {
    let origin = spawn_origin().await;
    let edge = example(
        "beside_log_fastly",
        EdgeSetup {
            config: None,
            ..EdgeSetup::new(&origin.url())
        },
    )
    .await;
    let resp = get(&edge.url, "/hello").await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().await.expect("body"), "hello world\n");
    let lines = edge.wait_endpoint_lines("collector", 1).await;
    assert_eq!(lines, vec!["GET /hello 200 checkout"]);
    let app_log = edge.wait_endpoint_lines("app_log", 2).await;
    assert_eq!(app_log, vec!["app logger ready", "done"]);

    // No panic hook was asked for: the panic is Rust's own message on stderr, and no panic line
    // reaches the endpoint.
    let resp = get(&edge.url, "/panic").await;
    assert!(resp.status().is_server_error());
    edge.stderr
        .wait_for("the panic message", Duration::from_secs(10), |l| {
            l.iter().any(|x| x.contains("example panic"))
        })
        .await;
    assert!(
        edge.stderr
            .snapshot()
            .iter()
            .all(|l| !l.contains("edgelog: panic")),
        "edgelog installed a panic hook it was not asked for"
    );
    assert!(
        edge.endpoint_lines("collector")
            .iter()
            .all(|l| !l.contains("\"event\":\"panic\"")),
        "{:?}",
        edge.endpoint_lines("collector")
    );
}

#[test]
fn the_crate_is_ready_to_publish_and_to_read_on_docs_rs() {
    let root = edgelog_testkit::paths::repo_root();
    let out = std::process::Command::new(env!("CARGO"))
        .current_dir(&root)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .expect("cargo metadata");
    assert!(out.status.success());
    let meta: Value = serde_json::from_slice(&out.stdout).expect("metadata json");
    let pkg = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == "edgelog")
        .expect("the edgelog package");
    for key in [
        "description",
        "license",
        "repository",
        "readme",
        "documentation",
    ] {
        let v = pkg[key].as_str().unwrap_or_default();
        assert!(!v.is_empty(), "{key} is not set");
    }
    assert_eq!(pkg["license"], "MIT");
    assert_ne!(pkg["publish"], json!([]), "publishable");
    let keywords = pkg["keywords"].as_array().expect("keywords");
    assert!((1..=5).contains(&keywords.len()), "crates.io takes 1 to 5");
    let docs_rs = &pkg["metadata"]["docs"]["rs"];
    assert_eq!(docs_rs["default-target"], "wasm32-wasip1");
    assert_eq!(docs_rs["targets"], json!(["wasm32-wasip1"]));

    let out = std::process::Command::new(env!("CARGO"))
        .current_dir(&root)
        .args(["package", "-p", "edgelog", "--list", "--allow-dirty"])
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("cargo package --list");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = String::from_utf8_lossy(&out.stdout);
    let files: Vec<&str> = files.lines().collect();
    for f in [
        "LICENSE",
        "README.md",
        "src/lib.rs",
        "examples/fastly_main.rs",
    ] {
        assert!(files.contains(&f), "{f} not packaged: {files:?}");
    }
    assert!(!files.iter().any(|f| f.starts_with("fuzz/")), "{files:?}");
}

#[test]
fn the_documented_commands_for_checking_endpoint_names_exist() {
    let fastly = edgelog_testkit::paths::tool("fastly");
    let help = |args: &[&str]| {
        let out = std::process::Command::new(&fastly)
            .args(args)
            .arg("--help")
            .output()
            .expect("run fastly");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let list = help(&["logging", "https", "list"]);
    assert!(
        list.contains("--version=VERSION") && list.contains("'active'"),
        "{list}"
    );
    let tail = help(&["log-tail"]);
    assert!(tail.contains("Tail Compute logs"), "{tail}");
}

/// The crate's README (what crates.io shows) is its own page, and says what the library page
/// says: the same dependency line, the same app (built and run above from the page), the same
/// Config Store keys. So the README's snippets are tested as the page's are.
#[test]
fn the_crate_readme_shows_the_documented_app_and_settings() {
    let readme = "edge-app/README.md";
    for (in_readme, in_doc) in [
        ("## Add it", "## Use edgelog in your own Compute app"),
        ("A complete `src/main.rs`", "A complete `src/main.rs`"),
    ] {
        let ours = doc_block(readme, in_readme);
        assert!(ours.contains("edgelog"), "{readme}: {in_readme:?}: {ours}");
        assert_eq!(
            ours,
            doc_block(LIBRARY_DOC, in_doc),
            "{readme}: {in_readme:?}"
        );
    }
    let table = |file: &str| -> String {
        let text = std::fs::read_to_string(repo_root().join(file)).expect(file);
        let start = text
            .find("| key | default | meaning |")
            .unwrap_or_else(|| panic!("{file}: the settings table"));
        let rest = &text[start..];
        rest[..rest.find("\n\n").unwrap_or(rest.len())].to_string()
    };
    let settings = table(readme);
    assert!(settings.lines().count() > 5, "{settings}");
    assert_eq!(
        settings,
        table(LIBRARY_DOC),
        "{readme}: the Config Store's keys"
    );
}

/// What `cargo package -p edgelog` makes builds for wasm32-wasip1 on its own: unpacked outside
/// the workspace, with nothing of the repository but the toolchain file and the lock (so no crate
/// version changes and nothing is fetched), its library, its edge app and its examples compile.
#[test]
fn the_package_builds_for_wasm_from_the_package_alone() {
    let root = repo_root();
    let out = std::process::Command::new(env!("CARGO"))
        .current_dir(&root)
        .args([
            "package",
            "-p",
            "edgelog",
            "--allow-dirty",
            "--no-verify",
            "--offline",
        ])
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("cargo package");
    assert!(
        out.status.success(),
        "cargo package: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let version = {
        let manifest = std::fs::read_to_string(root.join("edge-app/Cargo.toml")).expect("manifest");
        let line = manifest
            .lines()
            .find(|l| l.starts_with("version = "))
            .expect("a version")
            .to_string();
        line.trim_start_matches("version = ")
            .trim_matches('"')
            .to_string()
    };
    let crate_file = target_dir().join(format!("package/edgelog-{version}.crate"));
    assert!(crate_file.is_file(), "{} missing", crate_file.display());
    let dir = tempfile::tempdir().expect("tmp");
    let status = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(&crate_file)
        .arg("-C")
        .arg(dir.path())
        .status()
        .expect("tar");
    assert!(status.success(), "unpack {}", crate_file.display());
    let unpacked = dir.path().join(format!("edgelog-{version}"));
    let readme = std::fs::read_to_string(unpacked.join("README.md")).expect("README.md packaged");
    assert_eq!(
        readme,
        std::fs::read_to_string(root.join("edge-app/README.md")).expect("edge-app/README.md"),
        "the crate's own README is the one packaged"
    );
    for file in ["rust-toolchain.toml", "Cargo.lock"] {
        std::fs::copy(root.join(file), unpacked.join(file)).expect("copy toolchain and lock");
    }
    let out = std::process::Command::new(env!("CARGO"))
        .current_dir(&unpacked)
        .args([
            "build",
            "--offline",
            "--release",
            "--target",
            "wasm32-wasip1",
        ])
        .args(["--lib", "--bins", "--examples"])
        .env("CARGO_TARGET_DIR", target_dir().join("packaged-edgelog"))
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .expect("cargo build");
    assert!(
        out.status.success(),
        "the package does not build on its own:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wasm = target_dir().join("packaged-edgelog/wasm32-wasip1/release/edge-app.wasm");
    assert!(wasm.is_file(), "{} missing", wasm.display());
}
