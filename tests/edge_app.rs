//! The edge app's real wasm under Viceroy, with real HTTP requests against a real local origin:
//! the exact lines each endpoint gets, in each format and with each setting, and the origin's
//! response passing through unchanged.

use edgelog_testkit::http::client;
use edgelog_testkit::paths::{repo_root, tool};
use edgelog_testkit::viceroy::json_line;
use edgelog_testkit::{spawn_origin, spawn_viceroy, EdgeSetup, Origin, Viceroy};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

async fn start(setup: impl FnOnce(EdgeSetup) -> EdgeSetup) -> (Origin, Viceroy) {
    let origin = spawn_origin().await;
    let edge = spawn_viceroy(&setup(EdgeSetup::new(&origin.url()))).await;
    (origin, edge)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[tokio::test]
async fn json_line_per_request_and_response_passes_through_unchanged() {
    let (origin, edge) = start(|s| s).await;
    let before = now_secs();
    let hits_before = origin.hits();
    let resp = client()
        .get(format!("{}/headers?q=1", edge.url))
        .header("user-agent", "edgelog-test/1.0")
        .header("referer", "https://ref.test/page")
        .header("accept-language", "de-CH")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 418);
    let cookies: Vec<_> = resp.headers().get_all("set-cookie").iter().collect();
    assert_eq!(cookies, vec!["a=1; Path=/", "b=2; Path=/"]);
    assert_eq!(
        resp.headers()["x-custom"],
        "value with \"quotes\" and spaces"
    );
    assert_eq!(resp.headers()["cache-control"], "max-age=60");
    assert_eq!(resp.text().await.expect("body"), "teapot\n");
    assert_eq!(origin.hits(), hits_before + 1);

    let lines = edge.wait_endpoint_lines("collector", 1).await;
    assert_eq!(lines.len(), 1, "one line per request: {lines:?}");
    let v = json_line(&lines[0]);
    assert_eq!(v["event"], "access");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["url"], "/headers?q=1");
    assert_eq!(v["path"], "/headers");
    assert_eq!(v["query"], "q=1");
    assert_eq!(v["status"], 418);
    assert_eq!(v["body_bytes_sent"], 7);
    assert_eq!(v["content_length"], 7);
    assert_eq!(v["content_type"], "text/plain; charset=utf-8");
    assert_eq!(v["outcome"], "origin");
    assert_eq!(v["error"], Value::Null);
    assert_eq!(v["client_ip"], "127.0.0.1");
    assert_eq!(v["user_agent"], "edgelog-test/1.0");
    assert_eq!(v["referer"], "https://ref.test/page");
    assert_eq!(v["accept_language"], "de-CH");
    assert_eq!(v["host"], format!("127.0.0.1:{}", edge.port));
    assert_eq!(v["protocol"], "HTTP/1.1");
    assert_eq!(v["pop"], "XXX");
    assert_eq!(v["cache_host"], "localhost");
    assert_eq!(v["service_id"], "0000000000000000000000");
    assert_eq!(v["service_version"], "0");
    assert_eq!(v["geo"]["country_code"], "US");
    assert_eq!(v["geo"]["conn_type"], "wired");
    let id = v["request_id"].as_str().expect("request_id");
    assert_eq!(id.len(), 32);
    assert_eq!(v["trace_id"], v["request_id"]);
    assert!(v["elapsed_us"].as_u64().expect("elapsed") > 0);
    assert!(v["request_header_bytes"].as_u64().expect("hdr bytes") > 50);
    let ts = v["timestamp"].as_str().expect("timestamp");
    assert!(ts.ends_with("+00:00") && ts.len() == 32, "{ts}");
    let year: i64 = ts[..4].parse().expect("year");
    assert!((1970 + before / 31_557_600 - 1..=1970 + before / 31_557_600 + 1).contains(&year));
}

#[tokio::test]
async fn clf_and_custom_format_strings_give_the_exact_line() {
    let (_origin, edge) = start(|s| s.set("format", "clf")).await;
    client()
        .get(format!("{}/hello?a=1", edge.url))
        .send()
        .await
        .expect("request");
    let line = &edge.wait_endpoint_lines("collector", 1).await[0];
    // 127.0.0.1 - - [21/Nov/2026:08:03:18 +0000] "GET /hello?a=1 HTTP/1.1" 200 12
    let (head, rest) = line.split_once(" [").expect("time opens");
    assert_eq!(head, "127.0.0.1 - -");
    let (stamp, tail) = rest.split_once("] ").expect("time closes");
    assert_eq!(stamp.len(), 26, "{stamp}");
    assert!(stamp.ends_with(" +0000"));
    assert_eq!(tail, "\"GET /hello?a=1 HTTP/1.1\" 200 12");

    let custom = r#"%h %m %U%q %H %>s %b "%{User-Agent}i" %{client.geo.country_code}V %{server.datacenter}V %{x}e %k"#;
    let (_origin, edge) = start(|s| s.set("format", custom)).await;
    client()
        .get(format!("{}/hello?a=1", edge.url))
        .header("user-agent", "say \"hi\"")
        .send()
        .await
        .expect("request");
    let line = &edge.wait_endpoint_lines("collector", 1).await[0];
    assert_eq!(
        line,
        r#"127.0.0.1 GET /hello?a=1 HTTP/1.1 200 12 "say \"hi\"" US XXX - 0"#
    );
}

#[tokio::test]
async fn every_endpoint_gets_the_same_line_and_stdio_works() {
    let (_origin, edge) = start(|s| s.set("endpoints", "collector, stdout, stderr, audit")).await;
    client()
        .get(format!("{}/hello", edge.url))
        .send()
        .await
        .expect("request");
    let collector = edge.wait_endpoint_lines("collector", 1).await;
    let audit = edge.wait_endpoint_lines("audit", 1).await;
    assert_eq!(collector, audit);
    let line = collector[0].clone();
    let raw_stdout = edge
        .stdout
        .wait_for("the line on stdout", Duration::from_secs(10), |l| {
            l.contains(&line)
        })
        .await;
    assert_eq!(raw_stdout.iter().filter(|x| **x == line).count(), 1);
    edge.stderr
        .wait_for("the line on stderr", Duration::from_secs(10), |l| {
            l.contains(&line)
        })
        .await;
}

#[tokio::test]
async fn sampling_drops_lines_but_errors_always_reach_the_error_endpoint() {
    let (_origin, edge) =
        start(|s| s.set("sample_rate", "0").set("error_endpoint", "errors")).await;
    let c = client();
    for path in ["/hello", "/status/404", "/status/503", "/hello"] {
        c.get(format!("{}{path}", edge.url))
            .send()
            .await
            .expect("request");
    }
    let errors = edge.wait_endpoint_lines("errors", 1).await;
    // Give any wrongly sampled line time to show up before asserting there is none.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(edge.endpoint_lines("errors").len(), 1);
    assert_eq!(json_line(&errors[0])["status"], 503);
    assert!(edge.endpoint_lines("collector").is_empty(), "sampled out");

    let (_origin, edge) = start(|s| s.set("error_endpoint", "errors")).await;
    c.get(format!("{}/status/500", edge.url))
        .send()
        .await
        .expect("request");
    c.get(format!("{}/hello", edge.url))
        .send()
        .await
        .expect("request");
    let collector = edge.wait_endpoint_lines("collector", 2).await;
    let errors = edge.wait_endpoint_lines("errors", 1).await;
    assert_eq!(
        errors[0], collector[0],
        "the same line, written once per endpoint"
    );
    assert_eq!(json_line(&collector[1])["status"], 200);
}

#[tokio::test]
async fn sampled_out_requests_with_no_error_endpoint_are_served_unchanged_and_log_nothing() {
    let (_origin, edge) = start(|s| s.set("sample_rate", "0")).await;
    let c = client();
    let resp = c
        .get(format!("{}/hello", edge.url))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["x-origin"], "yes");
    assert_eq!(resp.text().await.expect("body"), "hello world\n");
    let resp = c
        .get(format!("{}/chunked/5", edge.url))
        .send()
        .await
        .expect("request");
    assert!(resp.content_length().is_none(), "still chunked");
    let chunked = resp.bytes().await.expect("body");
    let resp = c
        .get(format!("{}/status/503", edge.url))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 503);
    // Give any wrongly written line time to show up before asserting there is none.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!chunked.is_empty());
    assert!(edge.endpoint_lines("collector").is_empty());
}

#[tokio::test]
async fn privacy_settings_redact_every_url_field_and_anonymize_the_client() {
    let (_origin, edge) = start(|s| {
        s.set("anonymize_ip", "true")
            .set("redact_query", "token,email")
            .set("endpoints", "collector,clf")
    })
    .await;
    let resp = client()
        .get(format!("{}/echo?token=s3cr3t&x=1&email=a%40b", edge.url))
        .header("referer", "https://ref.test/?email=me&keep=1")
        .send()
        .await
        .expect("request");
    assert_eq!(
        resp.status().as_u16(),
        200,
        "the origin still gets the real URL"
    );
    let v = json_line(&edge.wait_endpoint_lines("collector", 1).await[0]);
    assert_eq!(v["client_ip"], "127.0.0.0");
    assert_eq!(v["url"], "/echo?token=REDACTED&x=1&email=REDACTED");
    assert_eq!(v["query"], "token=REDACTED&x=1&email=REDACTED");
    assert_eq!(v["referer"], "https://ref.test/?email=REDACTED&keep=1");
    assert!(!v.to_string().contains("s3cr3t"));
}

#[tokio::test]
async fn a_bad_format_string_is_reported_once_and_json_is_used() {
    let (_origin, edge) = start(|s| s.set("format", "%h %Q %>s")).await;
    let resp = client()
        .get(format!("{}/hello", edge.url))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    let v = json_line(&edge.wait_endpoint_lines("collector", 1).await[0]);
    assert_eq!(v["status"], 200);
    let stderr = edge
        .stderr
        .wait_for("the format error", Duration::from_secs(10), |l| {
            l.iter().any(|x| x.contains("placeholder %Q at position 4"))
        })
        .await;
    assert_eq!(
        stderr
            .iter()
            .filter(|x| x.contains("placeholder %Q"))
            .count(),
        1,
        "{stderr:?}"
    );
}

#[tokio::test]
async fn an_unreachable_origin_gives_502_and_an_error_line() {
    let edge = spawn_viceroy(&EdgeSetup {
        origin: None,
        ..EdgeSetup::new("unused").set("error_endpoint", "errors")
    })
    .await;
    let resp = client()
        .get(format!("{}/anything", edge.url))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 502);
    let v = json_line(&edge.wait_endpoint_lines("collector", 1).await[0]);
    assert_eq!(v["status"], 502);
    assert_eq!(v["outcome"], "error");
    assert!(!v["error"].as_str().expect("error text").is_empty());
    assert_eq!(edge.wait_endpoint_lines("errors", 1).await.len(), 1);
}

#[tokio::test]
async fn request_and_response_bodies_are_counted_and_unchanged() {
    let (_origin, edge) = start(|s| s).await;
    let c = client();
    // Chunked request body: streamed to the origin and counted.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..10).map(|_| Ok(vec![b'z'; 1000])).collect();
    let resp = c
        .post(format!("{}/echo", edge.url))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .expect("chunked post");
    assert_eq!(resp.headers()["x-received-bytes"], "10000");
    assert_eq!(resp.bytes().await.expect("echo").len(), 10_000);
    // Sized request body.
    let resp = c
        .put(format!("{}/echo", edge.url))
        .body(vec![b'y'; 5000])
        .send()
        .await
        .expect("sized put");
    assert_eq!(resp.headers()["x-received-bytes"], "5000");
    // Chunked response body: streamed to the client and counted.
    let resp = c
        .get(format!("{}/chunked/50", edge.url))
        .send()
        .await
        .expect("chunked get");
    let body = resp.bytes().await.expect("body");
    assert_eq!(body.len(), 50_000);
    assert_eq!(&body[..3], b"aaa");
    assert_eq!(&body[49_997..], b"xxx");
    // Large sized response body passes through byte for byte.
    let resp = c
        .get(format!("{}/big/300000", edge.url))
        .send()
        .await
        .expect("big get");
    assert_eq!(
        resp.bytes().await.expect("big body").to_vec(),
        edgelog_testkit::origin::big_body(300_000)
    );

    let lines = edge.wait_endpoint_lines("collector", 4).await;
    let v: Vec<Value> = lines.iter().map(|l| json_line(l)).collect();
    assert_eq!(v[0]["method"], "POST");
    assert_eq!(v[0]["request_body_bytes"], 10_000);
    assert_eq!(v[0]["body_bytes_sent"], 10_000);
    assert_eq!(v[1]["method"], "PUT");
    assert_eq!(v[1]["request_body_bytes"], 5000);
    assert_eq!(v[2]["body_bytes_sent"], 50_000);
    assert_eq!(v[2]["content_length"], Value::Null);
    assert_eq!(v[3]["body_bytes_sent"], 300_000);
}

#[tokio::test]
async fn hostile_input_gives_valid_single_json_lines_within_64_kib() {
    let (_origin, edge) = start(|s| s.set("endpoints", "collector,clf")).await;
    let mut headers = HeaderMap::new();
    headers.insert(
        "user-agent",
        HeaderValue::from_bytes(b"bad \xff\xfe utf8 \"quoted\" back\\slash\ttab")
            .expect("obs-text header"),
    );
    headers.insert(
        "referer",
        HeaderValue::from_bytes("r".repeat(40_000).as_bytes()).expect("big header"),
    );
    headers.insert(
        "accept-language",
        HeaderValue::from_bytes("l".repeat(40_000).as_bytes()).expect("big header"),
    );
    let resp = client()
        .get(format!("{}/hello/%22quoted%22/%0Aline?x=%00", edge.url))
        .headers(headers)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    let line = edge.wait_endpoint_lines("collector", 1).await[0].clone();
    assert!(line.len() <= 65_536, "{}", line.len());
    let v = json_line(&line);
    assert_eq!(v["truncated"], true);
    assert_eq!(v["path"], "/hello/%22quoted%22/%0Aline");
    let ua = v["user_agent"].as_str().expect("ua");
    assert!(
        ua.starts_with("bad \u{fffd}\u{fffd} utf8 \"quoted\" back\\slash\ttab"),
        "{ua}"
    );
    assert!(v["referer"]
        .as_str()
        .expect("referer")
        .ends_with("...[cut]"));
}

#[tokio::test]
async fn panics_go_to_the_panic_endpoint_and_serving_goes_on() {
    let origin = spawn_origin().await;
    let edge = spawn_viceroy(&EdgeSetup {
        test_routes: true,
        ..EdgeSetup::new(&origin.url()).set("panic_endpoint", "panics")
    })
    .await;
    let c = client();
    let resp = c
        .get(format!("{}/__edgelog/test/panic", edge.url))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 500);
    let v = json_line(&edge.wait_endpoint_lines("panics", 1).await[0]);
    assert_eq!(v["event"], "panic");
    assert_eq!(v["message"], "edgelog test panic");
    assert!(v["location"]
        .as_str()
        .expect("location")
        .contains("main.rs"));
    assert_eq!(v["request_id"].as_str().expect("id").len(), 32);
    let resp = c
        .get(format!("{}/hello", edge.url))
        .send()
        .await
        .expect("request after panic");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(edge.wait_endpoint_lines("collector", 1).await.len(), 1);
}

#[tokio::test]
async fn unusable_endpoints_are_reported_and_serving_goes_on() {
    let (_origin, edge) =
        start(|s| s.set("endpoints", "collector, fst_managed_x, bad:name, stdout")).await;
    let resp = client()
        .get(format!("{}/hello", edge.url))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(edge.wait_endpoint_lines("collector", 1).await.len(), 1);
    let stderr = edge
        .stderr
        .wait_for("endpoint problems", Duration::from_secs(10), |l| {
            l.iter().any(|x| x.contains("fst_managed_x"))
                && l.iter().any(|x| x.contains("bad:name"))
        })
        .await;
    assert!(stderr.iter().any(|x| x.contains("reserved")), "{stderr:?}");
}

#[tokio::test]
async fn health_is_answered_at_the_edge() {
    let (origin, edge) = start(|s| s).await;
    let hits_before = origin.hits();
    let resp = client()
        .get(format!("{}/__edgelog/health", edge.url))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().await.expect("body"), "ok\n");
    assert_eq!(origin.hits(), hits_before, "the origin is not asked");
    let v = json_line(&edge.wait_endpoint_lines("collector", 1).await[0]);
    assert_eq!(v["outcome"], "edge");
}

#[tokio::test]
async fn without_a_config_store_the_defaults_apply() {
    let origin = spawn_origin().await;
    let edge = spawn_viceroy(&EdgeSetup {
        config: None,
        ..EdgeSetup::new(&origin.url())
    })
    .await;
    client()
        .get(format!("{}/hello", edge.url))
        .send()
        .await
        .expect("request");
    let v = json_line(&edge.wait_endpoint_lines("collector", 1).await[0]);
    assert_eq!(v["status"], 200);
    assert!(edge
        .stderr
        .snapshot()
        .iter()
        .all(|l| !l.contains("edgelog:")));
}

#[tokio::test]
async fn fastly_compute_build_packs_the_manifest_as_written() {
    let root = repo_root();
    let work = tempfile::tempdir().expect("tempdir");
    // Build in a copy of the checkout so the checkout itself stays clean.
    for entry in std::fs::read_dir(&root).expect("read repo") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if ["target", ".git", "bin", "pkg", "data"]
            .iter()
            .any(|n| name == *n)
        {
            continue;
        }
        copy_recursively(&entry.path(), &work.path().join(&name));
    }
    let target = edgelog_testkit::paths::target_dir();
    let out = tokio::process::Command::new(tool("fastly"))
        .args(["compute", "build", "--non-interactive"])
        .current_dir(work.path())
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .await
        .expect("run fastly compute build");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    let pkg = work.path().join("pkg/edgelog-edge.tar.gz");
    assert!(pkg.is_file(), "{text}");
    let out = tokio::process::Command::new(tool("fastly"))
        .args(["compute", "validate", "--package"])
        .arg(&pkg)
        .output()
        .await
        .expect("run fastly compute validate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wasm = std::fs::metadata(work.path().join("bin/main.wasm")).expect("bin/main.wasm");
    assert!(wasm.len() < 2 * 1024 * 1024, "wasm is {} bytes", wasm.len());
}

fn copy_recursively(from: &std::path::Path, to: &std::path::Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read_dir") {
            let entry = entry.expect("entry");
            if entry.file_name() == "target" {
                continue;
            }
            copy_recursively(&entry.path(), &to.join(entry.file_name()));
        }
    } else if from.is_file() {
        std::fs::copy(from, to).expect("copy");
    }
}

#[tokio::test]
async fn the_documented_vcl_json_format_works_unchanged() {
    let example = edgelog_testkit::paths::doc_block(
        edgelog_testkit::paths::LIBRARY_DOC,
        "Fastly's own JSON log format for VCL services works as it is",
    );
    let (_origin, edge) = start(|s| s.set("format", example.trim_end())).await;
    let before = now_secs();
    client()
        .get(format!("{}/hello?a=%22b%22", edge.url))
        .header("user-agent", "ua \"quoted\"\tand tab")
        .header("referer", "https://ref.test/p?q=1")
        .send()
        .await
        .expect("request");
    let line = &edge.wait_endpoint_lines("collector", 1).await[0];
    let v = json_line(line);
    let ts = v["timestamp"].as_str().expect("timestamp");
    assert!(ts.len() == 24 && ts.ends_with("+0000"), "{ts}");
    let year: i64 = ts[..4].parse().expect("year");
    assert!((1970 + before / 31_557_600 - 1..=1970 + before / 31_557_600 + 1).contains(&year));
    let mut rest = v.clone();
    rest.as_object_mut().expect("object").remove("timestamp");
    assert_eq!(
        rest,
        serde_json::json!({
            "client_ip": "127.0.0.1",
            "geo_country": "United States of America",
            "url": "/hello?a=%22b%22",
            "request_referer": "https://ref.test/p?q=1",
            "request_user_agent": "ua \"quoted\"\tand tab",
            "fastly_is_edge": true,
            "response_state": "PASS",
            "response_status": 200,
            "response_reason": "OK",
            "response_body_size": 12,
            "request_method": "GET",
            "request_protocol": "HTTP/1.1",
            "fastly_server": "localhost",
            "host": format!("127.0.0.1:{}", edge.port)
        }),
        "{line}"
    );
}

#[tokio::test]
async fn every_compute_variable_has_its_value_under_viceroy() {
    // Every variable docs/edge-library.md lists, in one line; Viceroy's geolocation data for 127.0.0.1 and
    // its environment (FASTLY_POP=XXX, FASTLY_REGION=Somewhere, FASTLY_HOSTNAME=localhost).
    let names = [
        "req.http.fastly-client-ip",
        "client.ip",
        "client.as.number",
        "client.as.name",
        "client.geo.country_code",
        "client.geo.country_code3",
        "client.geo.country_name",
        "client.geo.continent_code",
        "client.geo.region",
        "client.geo.city",
        "client.geo.postal_code",
        "client.geo.metro_code",
        "client.geo.area_code",
        "client.geo.conn_type",
        "client.geo.latitude",
        "client.geo.longitude",
        "tls.client.protocol",
        "tls.client.servername",
        "tls.client.cipher",
        "req.is_ipv6",
        "fastly_info.is_h2",
        "fastly_info.h2.is_push",
        "req.vcl.version",
        "req.service_id",
        "server.datacenter",
        "server.region",
        "server.hostname",
        "server.identity",
        "fastly.ff.visits_this_service",
        "req.header_bytes_read",
        "req.body_bytes_read",
        "req.method",
        "req.url",
        "req.url.path",
        "req.url.qs",
        "req.proto",
        "req.http.accept",
        "req.http.if-none-match",
        "fastly_info.state",
        "resp.status",
        "resp.response",
        "resp.http.content-type",
        "resp.body_bytes_written",
        "resp.completed",
        "edgelog.outcome",
    ];
    let format: Vec<String> = names.iter().map(|n| format!("%{{{n}}}V")).collect();
    let (_origin, edge) = start(|s| s.set("format", &format.join("|"))).await;
    client()
        .get(format!("{}/hello?a=1", edge.url))
        .header("accept", "text/plain")
        .header("fastly-ff", "cache-sjc1-SJC, cache-lax2-LAX")
        .send()
        .await
        .expect("request");
    let line = &edge.wait_endpoint_lines("collector", 1).await[0];
    let values: Vec<&str> = line.split('|').collect();
    let want = [
        "127.0.0.1",
        "127.0.0.1",
        "54113",
        "Fastly, Inc",
        "US",
        "USA",
        "United States of America",
        "NA",
        "CA",
        "San Francisco",
        "94107",
        "0",
        "415",
        "wired",
        "37.77869",
        "-122.39557",
        "-",
        "-",
        "-",
        "0",
        "0",
        "0",
        "0",
        "0000000000000000000000",
        "XXX",
        "Somewhere",
        "localhost",
        "localhost",
        "2",
        "-",
        "0",
        "GET",
        "/hello?a=1",
        "/hello",
        "a=1",
        "HTTP/1.1",
        "text/plain",
        "-",
        "PASS",
        "200",
        "OK",
        "text/plain; charset=utf-8",
        "12",
        "1",
        "origin",
    ];
    assert_eq!(values.len(), want.len(), "{line}");
    for ((name, got), want) in names.iter().zip(&values).zip(want) {
        if *name == "req.header_bytes_read" {
            assert!(got.parse::<u64>().expect("a number") > 50, "{name}: {got}");
            continue;
        }
        assert_eq!(*got, want, "{name} in {line}");
    }
}

#[tokio::test]
async fn responses_fetched_from_the_origin_are_logged_so_with_no_cache_age() {
    // Viceroy has no HTTP cache: every request reaches the origin, even a cacheable one
    // (max-age=60), and is logged as fetched from it, with obj.age and obj.ttl not set. (A
    // response Fastly's cache answers has an age, and is logged as `cache` and `HIT`.)
    let (origin, edge) = start(|s| {
        s.set(
            "format",
            "%{edgelog.outcome}V %{fastly_info.state}V %{obj.age}V %{obj.ttl}V",
        )
    })
    .await;
    let before = origin.hits();
    for _ in 0..2 {
        client()
            .get(format!("{}/headers", edge.url))
            .send()
            .await
            .expect("request");
    }
    let lines = edge.wait_endpoint_lines("collector", 2).await;
    assert_eq!(origin.hits() - before, 2);
    assert_eq!(lines, ["origin PASS - -", "origin PASS - -"]);
}
