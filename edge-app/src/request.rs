//! The per-request half of the Compute side: a [`Record`] gathers the [`Facts`] of one request
//! from Fastly's request and response types, takes the app's own fields, and writes the line.
//!
//! Invariants: a record writes its line exactly once (when finished, sent, or dropped); the
//! response's status, headers and body pass to the client unchanged; logging never fails the
//! response.

use crate::emit::{plan, sampled};
use crate::facts::{body_is_streamed, protocol_name, Facts, GeoFacts, Outcome};
use crate::headers::Headers;
use crate::logger::{Instance, Logger};
use crate::record::RECORD_KEYS;
use crate::timefmt::Micros;
use fastly::http::header;
use fastly::{Request, Response};
use std::fmt;
use std::time::{Instant, SystemTime};

impl Logger {
    /// Starts the record of one request: its time, client, geolocation, method, URL, protocol,
    /// TLS and headers are read now, before the request is sent on.
    ///
    /// ```no_run
    /// # fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// let logger = edgelog::Logger::builder().build()?;
    /// let req = fastly::Request::from_client();
    /// let mut record = logger.start(&req);
    /// record.field("experiment", "b");
    /// let resp = req.send("origin")?;
    /// record.send_to_client(resp);
    /// # Ok(()) }
    /// ```
    pub fn start(&self, req: &Request) -> Record {
        let settings = &self.inner.settings;
        // Sampled out with no error endpoint: no line can come of it, so nothing is gathered.
        let inert = settings.error_endpoint.is_none()
            && !sampled(&self.inner.instance.trace_id, settings.sample_rate);
        let facts = if inert {
            Facts::default()
        } else {
            let start = Micros::from_system_time(SystemTime::now());
            request_facts(req, start, &self.inner.instance)
        };
        Record {
            logger: self.clone(),
            facts,
            clock: Instant::now(),
            error: None,
            written: inert,
        }
    }
}

/// The log record of one request, from [`Logger::start`] until it is finished.
///
/// Finish it with [`Record::send_to_client`] (sends the response, then writes the line, so
/// logging adds no latency and the line carries the bytes actually sent) or
/// [`Record::finish`] (writes the line now, for apps that return their response, as with
/// `#[fastly::main]`). A record dropped unfinished still writes its line, as a failed request
/// with status 0 and the error `"no response was logged"`.
///
/// ```no_run
/// # fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let logger = edgelog::Logger::builder().build()?;
/// let req = fastly::Request::from_client();
/// let mut record = logger.start(&req);
/// let resp = req.send("origin")?;
/// record.field("cached", resp.get_age().is_some());
/// record.send_to_client(resp);
/// # Ok(()) }
/// ```
#[must_use = "a record writes its line when finished; dropped, it logs a failed request"]
pub struct Record {
    logger: Logger,
    facts: Facts,
    clock: Instant,
    error: Option<String>,
    /// The line is written, or none will be (sampled out, with no error endpoint).
    written: bool,
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("method", &self.facts.method)
            .field("path", &self.facts.path)
            .field("fields", &self.facts.fields)
            .finish_non_exhaustive()
    }
}

impl Record {
    /// Adds one of the app's own fields to the line: a string, number, boolean, `Option` of
    /// those, or nested JSON (`serde_json::json!`). In JSON lines it follows the line's own
    /// keys; in format strings it is `%{name}n`. Adding a name again replaces its value.
    ///
    /// A name that is empty or one of the line's own keys (`status`, `url`, ...) is refused
    /// with a message on stderr, and the field is left out.
    ///
    /// ```no_run
    /// # fn example(mut record: edgelog::Record) {
    /// record
    ///     .field("tier", "gold")
    ///     .field("cart_items", 3)
    ///     .field("beta", true)
    ///     .field("ab", serde_json::json!({"test": "checkout", "arm": 2}));
    /// # }
    /// ```
    pub fn field(&mut self, name: &str, value: impl Into<serde_json::Value>) -> &mut Self {
        if name.is_empty() || RECORD_KEYS.contains(&name) {
            eprintln!(
                "edgelog: field {name:?} refused: {}; left out of the line",
                if name.is_empty() {
                    "a field needs a name"
                } else {
                    "the line has its own key of that name"
                }
            );
            return self;
        }
        let value = value.into();
        match self.facts.fields.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value,
            None => self.facts.fields.push((name.to_string(), value)),
        }
        self
    }

    /// Marks the request as failed (for example, the backend could not be reached): the line
    /// says `"outcome":"error"` with this message, and it reaches the error endpoint whatever
    /// the sample rate.
    ///
    /// ```no_run
    /// # fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// # let logger = edgelog::Logger::builder().build()?;
    /// let req = fastly::Request::from_client();
    /// let mut record = logger.start(&req);
    /// let resp = match req.send("origin") {
    ///     Ok(resp) => resp,
    ///     Err(e) => {
    ///         record.error(&e);
    ///         fastly::Response::from_status(502)
    ///     }
    /// };
    /// record.send_to_client(resp);
    /// # Ok(()) }
    /// ```
    pub fn error(&mut self, message: impl fmt::Display) -> &mut Self {
        self.error = Some(message.to_string());
        self
    }

    /// The request body bytes, for an app that read or streamed the body itself. Without it,
    /// the line has the request's Content-Length (0 when it had none).
    ///
    /// ```no_run
    /// # fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// # let logger = edgelog::Logger::builder().build()?;
    /// let mut req = fastly::Request::from_client();
    /// let mut record = logger.start(&req);
    /// let body = req.take_body_bytes();
    /// record.request_body_bytes(body.len() as u64);
    /// # Ok(()) }
    /// ```
    pub fn request_body_bytes(&mut self, bytes: u64) -> &mut Self {
        self.facts.request_body_bytes = bytes;
        self
    }

    /// Sends `resp` to the client, then writes the line with the bytes sent. A body of known
    /// length passes through without being copied into the app; one without is streamed and
    /// counted.
    ///
    /// ```no_run
    /// # fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// # let logger = edgelog::Logger::builder().build()?;
    /// let req = fastly::Request::from_client();
    /// let record = logger.start(&req);
    /// let resp = fastly::Response::from_body("hello\n");
    /// record.send_to_client(resp); // the client has the response before the line is written
    /// # Ok(()) }
    /// ```
    pub fn send_to_client(mut self, resp: Response) {
        if self.written {
            resp.send_to_client();
            return;
        }
        let head = self.facts.method == "HEAD";
        let seen = ResponseFacts::of(&resp);
        let body_bytes = send(resp, head, seen.status);
        self.write(seen, body_bytes);
    }

    /// Writes the line now for `resp`, which the app sends afterwards (by returning it from
    /// `#[fastly::main]`, for example). The body bytes logged are the response's
    /// Content-Length (0 when it has none).
    ///
    /// ```no_run
    /// use fastly::{Error, Request, Response};
    ///
    /// #[fastly::main]
    /// fn main(req: Request) -> Result<Response, Error> {
    ///     let logger = edgelog::Logger::builder().build()?;
    ///     let record = logger.start(&req);
    ///     let resp = req.send("origin")?;
    ///     record.finish(&resp);
    ///     Ok(resp)
    /// }
    /// ```
    pub fn finish(mut self, resp: &Response) {
        if self.written {
            return;
        }
        let seen = ResponseFacts::of(resp);
        let body_bytes = resp.get_content_length().unwrap_or(0) as u64;
        self.write(seen, body_bytes);
    }

    fn write(&mut self, seen: ResponseFacts, body_bytes: u64) {
        self.written = true;
        let f = &mut self.facts;
        f.status = seen.status;
        f.response_header_bytes = seen.header_bytes;
        f.response_headers = seen.headers;
        f.response_body_bytes = body_bytes;
        f.cache_age_secs = seen.cache_age_secs;
        f.cache_ttl_secs = seen.cache_ttl_secs;
        f.outcome = match self.error.take() {
            Some(e) => Outcome::Failed(e),
            None => seen.outcome,
        };
        f.elapsed_us = self.clock.elapsed().as_micros() as u64;
        f.end = Micros(f.start.0 + f.elapsed_us as i64);
        if let Some(emission) = plan(f, &self.logger.inner.settings) {
            for target in emission.targets {
                self.logger.write(target, &emission.line);
            }
        }
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if !self.written {
            if self.error.is_none() {
                self.error = Some("no response was logged".into());
            }
            self.write(ResponseFacts::none(), 0);
        }
    }
}

/// What the line needs from a response, read before it is sent.
struct ResponseFacts {
    status: u16,
    headers: Headers,
    header_bytes: u64,
    outcome: Outcome,
    cache_age_secs: Option<u64>,
    cache_ttl_secs: Option<u64>,
}

impl ResponseFacts {
    fn of(resp: &Response) -> Self {
        let status_code = resp.get_status();
        let mut headers = Headers::with_capacity(8, 256);
        for (k, v) in resp.get_headers() {
            headers.push((k.as_str(), v.as_bytes()));
        }
        // Status line: `HTTP/1.1 200 OK\r\n`.
        let reason = status_code.canonical_reason().unwrap_or("");
        let status_line = "HTTP/1.1 ".len() + 3 + 1 + reason.len() + 2;
        // A response from Fastly's cache has an age; one fetched from the backend (stored or
        // not) has none; one the app made itself has no backend.
        let cache_age_secs = resp.get_age().map(|d| d.as_secs());
        let outcome = match (resp.get_backend_name(), cache_age_secs) {
            (_, Some(_)) => Outcome::Cache,
            (Some(_), None) => Outcome::Origin,
            (None, None) => Outcome::Edge,
        };
        ResponseFacts {
            status: status_code.as_u16(),
            header_bytes: headers.block_bytes(status_line),
            headers,
            outcome,
            cache_age_secs,
            cache_ttl_secs: cache_age_secs.and(resp.get_ttl()).map(|d| d.as_secs()),
        }
    }

    fn none() -> Self {
        ResponseFacts {
            status: 0,
            headers: Headers::default(),
            header_bytes: 0,
            outcome: Outcome::Edge,
            cache_age_secs: None,
            cache_ttl_secs: None,
        }
    }
}

/// Sends `resp` to the client unchanged and returns the body bytes sent.
fn send(mut resp: Response, head: bool, status: u16) -> u64 {
    let no_body = head || status == 204 || status == 304 || (100..200).contains(&status);
    match (no_body, resp.get_content_length()) {
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
    }
}

/// Whether the request's body has no Content-Length and must be streamed to be counted
/// (HTTP/1.1 chunked, or an HTTP/2 or HTTP/3 upload).
///
/// ```no_run
/// # fn example() -> Result<(), Box<dyn std::error::Error>> {
/// # let logger = edgelog::Logger::builder().build()?;
/// let mut req = fastly::Request::from_client();
/// let mut record = logger.start(&req);
/// if edgelog::needs_streaming(&req) {
///     let mut body = req.take_body();
///     let (mut upstream, pending) = req.send_async_streaming("origin")?;
///     record.request_body_bytes(std::io::copy(&mut body, &mut upstream)?);
///     upstream.finish()?;
///     record.send_to_client(pending.wait()?);
/// }
/// # Ok(()) }
/// ```
pub fn needs_streaming(req: &Request) -> bool {
    body_is_streamed(
        req.get_method_str(),
        req.get_version(),
        req.get_content_length().is_some(),
        req.contains_header(header::TRANSFER_ENCODING),
    )
}

/// Gathers what the log needs from the client request, before it is forwarded.
pub(crate) fn request_facts(req: &Request, start: Micros, instance: &Instance) -> Facts {
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
    let mut request_headers = Headers::with_capacity(16, 1024);
    for (k, v) in req.get_headers() {
        request_headers.push((k.as_str(), v.as_bytes()));
    }
    let path = req.get_path().to_string();
    let query = req.get_query_str().map(str::to_string);
    let protocol = protocol_name(req.get_version()).to_string();
    let method = req.get_method_str().to_string();
    // Request line (`GET /p?q HTTP/1.1\r\n`) as the origin-form the client sent.
    let target_len = path.len() + query.as_ref().map_or(0, |q| q.len() + 1);
    let request_line = method.len() + 1 + target_len + 1 + protocol.len() + 2;
    Facts {
        start,
        end: start,
        elapsed_us: 0,
        client_ip,
        server_ip: req.get_server_ip_addr(),
        geo,
        pop: instance.pop.clone(),
        cache_host: instance.cache_host.clone(),
        service_id: instance.service_id.clone(),
        service_version: instance.service_version.clone(),
        trace_id: instance.trace_id.clone(),
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
        server_region: instance.server_region.clone(),
        request_header_bytes: request_headers.block_bytes(request_line),
        request_headers,
        request_body_bytes: req.get_content_length().unwrap_or(0) as u64,
        status: 0,
        response_headers: Headers::default(),
        response_header_bytes: 0,
        response_body_bytes: 0,
        outcome: Outcome::Origin,
        cache_age_secs: None,
        cache_ttl_secs: None,
        fields: Vec::new(),
    }
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

/// Tests of the code that calls Fastly APIs; they run inside Viceroy
/// (`cargo nextest run -p edgelog --target wasm32-wasip1`), one process per test.
#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use crate::settings::{LineFormat, Settings, Target};
    use fastly::config_store::ConfigStore;
    use fastly::log::Endpoint;
    use std::io::Write;
    use std::net::IpAddr;

    /// The store fastly.toml declares for the edge app.
    const STORE_NAME: &str = "edgelog";

    #[test]
    fn settings_come_from_the_manifest_config_store() {
        // fastly.toml's [local_server.config_stores.edgelog] sets endpoints and format.
        let store = ConfigStore::try_open(STORE_NAME).expect("store declared in fastly.toml");
        assert_eq!(store.get("endpoints").as_deref(), Some("collector"));
        let logger = Logger::from_config_store(STORE_NAME);
        let s = &logger.inner.settings;
        assert_eq!(s.endpoints, vec![Target::Named("collector".into())]);
        assert_eq!(s.format, LineFormat::Json);
    }

    #[test]
    fn a_missing_store_means_defaults() {
        assert!(ConfigStore::try_open("no-such-store").is_err());
        let logger = Logger::from_config_store("no-such-store");
        assert_eq!(logger.inner.settings, Settings::default());
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
        let instance = Instance {
            trace_id: "trace".into(),
            pop: std::env::var("FASTLY_POP").unwrap_or_default().into(),
            ..Instance::default()
        };
        let f = request_facts(&req, Micros(1), &instance);
        assert_eq!(f.method, "GET");
        assert_eq!(f.path, "/a/b");
        assert_eq!(f.query.as_deref(), Some("x=1&y=2"));
        assert_eq!(f.protocol, "HTTP/1.1");
        assert_eq!(f.request_header("user-agent").as_deref(), Some("tester"));
        // "GET /a/b?x=1&y=2 HTTP/1.1\r\n" + headers + "\r\n"
        let expected = 27 + ("user-agent".len() + 2 + 6 + 2) + ("referer".len() + 2 + 23 + 2) + 2;
        assert_eq!(f.request_header_bytes, expected as u64);
        assert_eq!(&*f.trace_id, "trace");
        assert_eq!(&*f.pop, "XXX", "FASTLY_POP as Viceroy sets it");
    }

    #[test]
    fn a_logger_reads_the_instance_from_the_host() {
        let logger = Logger::builder().build().expect("defaults");
        let i = &logger.inner.instance;
        assert_eq!(&*i.pop, "XXX");
        assert_eq!(&*i.server_region, "Somewhere");
        assert!(!i.trace_id.is_empty());
    }

    #[test]
    fn endpoint_names_are_checked_by_the_host() {
        assert!(Endpoint::try_from_name("collector").is_ok());
        assert!(Endpoint::try_from_name("stdout").is_err(), "reserved");
        assert!(Endpoint::try_from_name("a:b").is_err());
        // From a store, unusable names are left out and the rest still work.
        let logger = Logger::open(Settings {
            endpoints: vec![
                Target::Named("collector".into()),
                Target::Named("fst_managed_x".into()),
                Target::Stdout,
            ],
            ..Settings::default()
        })
        .0;
        assert_eq!(logger.usable(), vec!["collector"]);
        logger.write(&Target::Named("collector".into()), "{\"test\":1}");
        logger.write(
            &Target::Named("fst_managed_x".into()),
            "dropped, not a panic",
        );
    }

    #[test]
    fn finishing_with_a_response_reads_its_facts() {
        let resp = Response::from_status(404)
            .with_header("content-type", "text/plain")
            .with_body("gone\n");
        let seen = ResponseFacts::of(&resp);
        assert_eq!(seen.status, 404);
        assert_eq!(seen.outcome, Outcome::Edge, "made by the app, no backend");
        assert_eq!(seen.cache_age_secs, None);
        // "HTTP/1.1 404 Not Found\r\n" + "content-type: text/plain\r\n" + "\r\n"
        assert_eq!(seen.header_bytes, 24 + 26 + 2);
    }

    #[test]
    fn fields_with_the_line_s_own_names_or_no_name_are_left_out() {
        let logger = Logger::builder()
            .endpoint("stdout")
            .build()
            .expect("logger");
        let req = Request::get("http://example.test/");
        let mut record = logger.start(&req);
        record
            .field("status", 1)
            .field("", 2)
            .field("url", "x")
            .field("ok", 3)
            .field("maybe", None::<u32>)
            .field("ok", 4);
        assert_eq!(
            record.facts.fields,
            vec![
                ("ok".to_string(), serde_json::json!(4)),
                ("maybe".to_string(), serde_json::Value::Null)
            ]
        );
        record.finish(&Response::from_status(204));
    }

    #[test]
    fn lines_written_to_an_endpoint_do_not_fail() {
        let mut endpoint = Endpoint::from_name("collector");
        endpoint
            .write_all(b"{\"direct\":true}")
            .expect("write to a named endpoint");
    }
}
