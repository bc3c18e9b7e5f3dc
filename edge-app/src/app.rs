//! The Compute side: serve or proxy one request, gather its [`Facts`], and write its line.
//!
//! Invariants: logging never breaks serving (every logging problem is reported on stderr and the
//! response still goes out); the line is written after the response has been handed to the
//! client, so logging adds no latency; the origin's status, headers and body pass through
//! unchanged.

use crate::emit::plan;
use crate::facts::{Facts, GeoFacts, Outcome};
use crate::record::PanicRecord;
use crate::settings::{Settings, Target, STORE_NAME};
use crate::timefmt::Micros;
use fastly::config_store::ConfigStore;
use fastly::http::{header, Method, StatusCode};
use fastly::log::Endpoint;
use fastly::{Request, Response};
use std::io::Write;
use std::time::{Instant, SystemTime};

/// The backend every request is forwarded to.
pub const BACKEND: &str = "origin";
/// Answered by the edge itself, for load balancers and smoke tests.
pub const HEALTH_PATH: &str = "/__edgelog/health";

/// Serves `req` and logs it.
pub fn handler(req: Request) {
    let clock = Instant::now();
    let start = Micros::from_system_time(SystemTime::now());
    let trace_id = env("FASTLY_TRACE_ID");

    let settings = load_settings();
    let writer = LineWriter::init(&settings);
    install_panic_hook(settings.panic_endpoint.clone(), trace_id.clone());

    let mut facts = request_facts(&req, start, trace_id);
    let served = serve(req, &mut facts);
    facts.status = served.status;
    facts.response_header_bytes = served.header_bytes;
    facts.response_headers = served.headers;
    facts.response_body_bytes = served.body_bytes;
    facts.outcome = served.outcome;
    facts.elapsed_us = clock.elapsed().as_micros() as u64;
    facts.end = Micros(facts.start.0 + facts.elapsed_us as i64);

    if let Some(emission) = plan(&mut facts, &settings) {
        for target in &emission.targets {
            writer.write(target, &emission.line);
        }
    }
}

/// What the client was sent, for the log.
struct Served {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    header_bytes: u64,
    body_bytes: u64,
    outcome: Outcome,
}

/// Forwards to the origin (or answers health checks) and sends the response to the client.
fn serve(mut req: Request, facts: &mut Facts) -> Served {
    if req.get_method() == Method::GET && req.get_path() == HEALTH_PATH {
        let resp = Response::from_status(StatusCode::OK)
            .with_header(header::CONTENT_TYPE, "text/plain")
            .with_body("ok\n");
        return send(resp, Outcome::Edge, false);
    }
    #[cfg(feature = "test-routes")]
    if req.get_path() == "/__edgelog/test/panic" {
        panic!("edgelog test panic");
    }

    let streamed = crate::facts::body_is_streamed(
        req.get_method_str(),
        req.get_version(),
        req.get_content_length().is_some(),
        req.contains_header(header::TRANSFER_ENCODING),
    );
    let result = if streamed {
        send_streaming(&mut req, facts)
    } else {
        facts.request_body_bytes = req.get_content_length().unwrap_or(0) as u64;
        req.send(BACKEND).map_err(|e| e.root_cause().to_string())
    };
    match result {
        Ok(resp) => {
            // A response from Fastly's cache has an age; one fetched from the origin (stored or
            // not) has none.
            facts.cache_age_secs = resp.get_age().map(|d| d.as_secs());
            facts.cache_ttl_secs = facts
                .cache_age_secs
                .and(resp.get_ttl())
                .map(|d| d.as_secs());
            let outcome = match facts.cache_age_secs {
                Some(_) => Outcome::Cache,
                None => Outcome::Origin,
            };
            send(resp, outcome, facts.method == "HEAD")
        }
        Err(error) => {
            let status = StatusCode::BAD_GATEWAY;
            let resp = Response::from_status(status)
                .with_header(header::CONTENT_TYPE, "text/plain")
                .with_body("origin unavailable\n");
            send(resp, Outcome::Failed(error), false)
        }
    }
}

/// Sends a chunked request body to the origin while counting it.
fn send_streaming(req: &mut Request, facts: &mut Facts) -> Result<Response, String> {
    let mut body = req.take_body();
    let outgoing = req.clone_without_body();
    let (mut stream, pending) = outgoing
        .send_async_streaming(BACKEND)
        .map_err(|e| e.root_cause().to_string())?;
    let copied = std::io::copy(&mut body, &mut stream).map_err(|e| e.to_string())?;
    facts.request_body_bytes = copied;
    stream.finish().map_err(|e| e.to_string())?;
    pending.wait().map_err(|e| e.root_cause().to_string())
}

/// Sends `resp` to the client unchanged; bodies with a known length pass through without being
/// copied into the app, others are streamed and counted.
fn send(mut resp: Response, outcome: Outcome, head: bool) -> Served {
    let status_code = resp.get_status();
    let status = status_code.as_u16();
    let headers: Vec<(String, Vec<u8>)> = resp
        .get_headers()
        .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
        .collect();
    let no_body = head || status == 204 || status == 304 || (100..200).contains(&status);
    let known_length = resp.get_content_length();
    let body_bytes = match (no_body, known_length) {
        (true, _) => {
            resp.send_to_client();
            0
        }
        (false, Some(n)) => {
            resp.send_to_client();
            n as u64
        }
        (false, None) => {
            let mut body = resp.take_body();
            let mut stream = resp.stream_to_client();
            let copied = std::io::copy(&mut body, &mut stream).unwrap_or_else(|e| {
                eprintln!("edgelog: streaming the response body failed: {e}");
                0
            });
            if let Err(e) = stream.finish() {
                eprintln!("edgelog: finishing the response body failed: {e}");
            }
            copied
        }
    };
    // Status line: `HTTP/1.1 200 OK\r\n`.
    let reason = status_code.canonical_reason().unwrap_or("");
    let status_line = "HTTP/1.1 ".len() + 3 + 1 + reason.len() + 2;
    Served {
        status,
        header_bytes: header_bytes(&headers, status_line),
        headers,
        body_bytes,
        outcome,
    }
}

/// Gathers what the log needs from the client request, before it is forwarded.
pub fn request_facts(req: &Request, start: Micros, trace_id: String) -> Facts {
    let client_ip = req.get_client_ip_addr();
    let geo = client_ip
        .and_then(fastly::geo::geo_lookup)
        .map(|g| GeoFacts {
            country_code: g.country_code().to_string(),
            country_name: g.country_name().to_string(),
            city: g.city().to_string(),
            latitude: g.latitude(),
            longitude: g.longitude(),
            conn_type: conn_type_name(&g.conn_type()),
            as_number: g.as_number(),
            as_name: g.as_name().to_string(),
            country_code3: g.country_code3().to_string(),
            continent_code: g.continent().as_code().to_string(),
            region: g.region().unwrap_or("").to_string(),
            postal_code: g.postal_code().to_string(),
            metro_code: g.metro_code(),
            area_code: g.area_code(),
        });
    let request_headers: Vec<(String, Vec<u8>)> = req
        .get_headers()
        .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
        .collect();
    let url = req.get_url_str();
    let path = req.get_path().to_string();
    let query = req.get_query_str().map(str::to_string);
    let protocol = crate::facts::protocol_name(req.get_version()).to_string();
    let method = req.get_method_str().to_string();
    // Request line (`GET /p HTTP/1.1\r\n`) as the origin-form the client sent.
    let target_len = url.len().saturating_sub(url.find(&path).unwrap_or(0));
    let request_line = method.len() + 1 + target_len + 1 + protocol.len() + 2;
    Facts {
        start,
        end: start,
        elapsed_us: 0,
        client_ip,
        server_ip: req.get_server_ip_addr(),
        geo,
        pop: env("FASTLY_POP"),
        cache_host: env("FASTLY_HOSTNAME"),
        service_id: env("FASTLY_SERVICE_ID"),
        service_version: env("FASTLY_SERVICE_VERSION"),
        trace_id,
        method,
        path,
        query,
        protocol,
        tls_protocol: req.get_tls_protocol().ok().flatten().map(str::to_string),
        tls_cipher: req
            .get_tls_cipher_openssl_name()
            .ok()
            .flatten()
            .map(str::to_string),
        tls_servername: req.get_tls_client_servername().map(str::to_string),
        server_region: env("FASTLY_REGION"),
        request_header_bytes: header_bytes(&request_headers, request_line),
        request_headers,
        request_body_bytes: 0,
        status: 0,
        response_headers: Vec::new(),
        response_header_bytes: 0,
        response_body_bytes: 0,
        outcome: Outcome::Origin,
        cache_age_secs: None,
        cache_ttl_secs: None,
    }
}

/// Bytes of a header block: the first line, `name: value\r\n` per header, and the blank line.
fn header_bytes(headers: &[(String, Vec<u8>)], first_line: usize) -> u64 {
    let fields: usize = headers.iter().map(|(k, v)| k.len() + 2 + v.len() + 2).sum();
    (first_line + fields + 2) as u64
}

fn conn_type_name(t: &fastly::geo::ConnType) -> String {
    use fastly::geo::ConnType;
    match t {
        ConnType::Wired => "wired".into(),
        ConnType::Wifi => "wifi".into(),
        ConnType::Mobile => "mobile".into(),
        ConnType::Dialup => "dialup".into(),
        ConnType::Satellite => "satellite".into(),
        ConnType::Other(s) => s.clone(),
        _ => "?".into(),
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// Reads the Config Store; a missing store means compiled-in defaults. Problems go to stderr.
fn load_settings() -> Settings {
    let store = ConfigStore::try_open(STORE_NAME).ok();
    let (settings, problems) =
        Settings::load(|key| store.as_ref().and_then(|s| s.try_get(key).ok().flatten()));
    for p in problems {
        eprintln!("edgelog: config store {STORE_NAME:?}: {p}");
    }
    settings
}

/// Writes lines to their targets: named endpoints through log-fastly, `stdout`/`stderr` to the
/// process's stdio.
pub struct LineWriter {
    /// Named endpoints the platform accepted; the others were reported at start.
    usable: Vec<String>,
}

impl LineWriter {
    pub fn init(settings: &Settings) -> Self {
        let mut names: Vec<&str> = settings.endpoints.iter().map(Target::name).collect();
        names.extend(settings.error_endpoint.as_ref().map(Target::name));
        names.push(settings.panic_endpoint.name());
        let mut usable = Vec::new();
        let mut builder = log_fastly::Logger::builder();
        builder.max_level(log::LevelFilter::Info);
        for name in names {
            if name == "stdout" || name == "stderr" || usable.iter().any(|u| u == name) {
                continue;
            }
            // Checked one by one: log-fastly's builder fails as a whole on the first bad name.
            match Endpoint::try_from_name(name) {
                Ok(endpoint) => {
                    builder.endpoint(endpoint);
                    usable.push(name.to_string());
                }
                Err(e) => eprintln!("edgelog: log endpoint {name:?} is unusable: {e}"),
            }
        }
        if let Err(e) = builder.try_init() {
            eprintln!("edgelog: log-fastly could not start: {e}");
            usable.clear();
        }
        LineWriter { usable }
    }

    pub fn write(&self, target: &Target, line: &str) {
        match target {
            Target::Stdout => write_stdio(std::io::stdout().lock(), line),
            Target::Stderr => write_stdio(std::io::stderr().lock(), line),
            Target::Named(name) => {
                if self.usable.iter().any(|u| u == name) {
                    log::info!(target: name.as_str(), "{line}");
                }
            }
        }
    }
}

fn write_stdio(mut out: impl Write, line: &str) {
    // One write per line so concurrent writers cannot interleave within a line.
    let mut buf = String::with_capacity(line.len() + 1);
    buf.push_str(line);
    buf.push('\n');
    if let Err(e) = out.write_all(buf.as_bytes()) {
        eprintln!("edgelog: writing a log line to stdio failed: {e}");
    }
}

/// Sends a line describing any panic to the panic endpoint (and stderr), so a crash is logged
/// like any other event.
fn install_panic_hook(target: Target, trace_id: String) {
    std::panic::set_hook(Box::new(move |info| {
        let message = if let Some(s) = info.payload().downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = info.payload().downcast_ref::<String>() {
            s.clone()
        } else {
            "panic".to_string()
        };
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
        let now = Micros::from_system_time(SystemTime::now());
        let line = PanicRecord::new(now, &trace_id, &message, location).to_line();
        eprintln!("edgelog: panic: {line}");
        match &target {
            Target::Stdout => write_stdio(std::io::stdout().lock(), &line),
            Target::Stderr => {}
            Target::Named(name) => {
                if let Ok(mut endpoint) = Endpoint::try_from_name(name) {
                    let _ = endpoint.write_all(line.as_bytes());
                }
            }
        }
    }));
}

/// Tests of the code that calls Fastly APIs; they run inside Viceroy
/// (`cargo nextest run -p edge-app --target wasm32-wasip1`), one process per test.
#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn settings_come_from_the_manifest_config_store() {
        // fastly.toml's [local_server.config_stores.edgelog] sets endpoints and format.
        let store = ConfigStore::try_open(STORE_NAME).expect("store declared in fastly.toml");
        assert_eq!(store.get("endpoints").as_deref(), Some("collector"));
        let s = load_settings();
        assert_eq!(s.endpoints, vec![Target::Named("collector".into())]);
        assert_eq!(s.format, crate::settings::LineFormat::Json);
    }

    #[test]
    fn a_missing_store_means_defaults() {
        assert!(ConfigStore::try_open("no-such-store").is_err());
        let (s, problems) = Settings::load(|_| None);
        assert!(problems.is_empty());
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn geolocation_is_read_from_the_host() {
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        let g = fastly::geo::geo_lookup(ip).expect("viceroy has default geo data");
        assert_eq!(g.country_code(), "US");
        assert_eq!(conn_type_name(&g.conn_type()), "wired");
    }

    #[test]
    fn request_facts_from_a_real_request() {
        let req = Request::get("http://example.test/a/b?x=1&y=2")
            .with_header("User-Agent", "tester")
            .with_header("Referer", "https://r.test/?token=t");
        let f = request_facts(&req, Micros(1), "trace".into());
        assert_eq!(f.method, "GET");
        assert_eq!(f.path, "/a/b");
        assert_eq!(f.query.as_deref(), Some("x=1&y=2"));
        assert_eq!(f.protocol, "HTTP/1.1");
        assert_eq!(f.request_header("user-agent").as_deref(), Some("tester"));
        // "GET /a/b?x=1&y=2 HTTP/1.1\r\n" + headers + "\r\n"
        let expected = 27 + ("user-agent".len() + 2 + 6 + 2) + ("referer".len() + 2 + 23 + 2) + 2;
        assert_eq!(f.request_header_bytes, expected as u64);
        assert_eq!(f.trace_id, "trace");
        assert_eq!(f.pop, "XXX", "FASTLY_POP as Viceroy sets it");
    }

    #[test]
    fn endpoint_names_are_checked_by_the_host() {
        assert!(Endpoint::try_from_name("collector").is_ok());
        assert!(Endpoint::try_from_name("stdout").is_err(), "reserved");
        assert!(Endpoint::try_from_name("a:b").is_err());
        // Unusable names are left out, the rest still work.
        let settings = Settings {
            endpoints: vec![
                Target::Named("collector".into()),
                Target::Named("fst_managed_x".into()),
                Target::Stdout,
            ],
            ..Settings::default()
        };
        let writer = LineWriter::init(&settings);
        assert_eq!(writer.usable, vec!["collector".to_string()]);
        writer.write(&Target::Named("collector".into()), "{\"test\":1}");
        writer.write(
            &Target::Named("fst_managed_x".into()),
            "dropped, not a panic",
        );
    }

    #[test]
    fn lines_written_to_an_endpoint_do_not_fail() {
        let mut endpoint = Endpoint::from_name("collector");
        endpoint
            .write_all(b"{\"direct\":true}")
            .expect("write to a named endpoint");
    }
}
