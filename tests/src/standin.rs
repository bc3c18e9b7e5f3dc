//! A local stand-in for Fastly's HTTPS log streaming: it reads what Viceroy prints for named log
//! endpoints (`<endpoint> :: <line>`) and delivers the lines of one endpoint to an HTTPS logging
//! URL as Fastly would: domain proof through the challenge first, batches by `period`,
//! `request_max_entries` and `request_max_bytes`, the configured header, json_format 0/1/2, the
//! classic prefix, compression, and retries: a request answered other than 2xx, or not answered
//! within `request_timeout`, is sent again after a wait that doubles from `retries.first_wait` up
//! to `retries.max_wait`, at most `retries.max_retries` times, then dropped and counted.
//!
//! Invariants: nothing is sent unless the challenge answer lists hex(sha256(service_id)) or `*`;
//! every line read for the endpoint is sent in order, until one request carrying it gets a 2xx,
//! or reported as dropped after the last retry. A request that timed out may still have been
//! taken by the receiver, so its retry can deliver the lines twice (as Fastly's would).

use crate::fastly::BatchFormat;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

/// How to deliver (the HTTPS endpoint's options in Fastly's API).
#[derive(Clone, Debug)]
pub struct StandinConfig {
    /// The logging URL, e.g. `http://127.0.0.1:8080/logs`.
    pub url: String,
    pub service_id: String,
    /// Which Viceroy endpoint's lines to deliver.
    pub endpoint: String,
    pub method: String,
    pub header: Option<(String, String)>,
    pub format: BatchFormat,
    /// Seconds between batches.
    pub period: Duration,
    pub request_max_entries: usize,
    pub request_max_bytes: usize,
    /// How long a request may take before it counts as failed (and is sent again).
    pub request_timeout: Duration,
    /// How a failed request is sent again.
    pub retries: Retries,
}

/// How a failed request (not 2xx, or not answered in time) is sent again: after `first_wait`,
/// then waits that double up to `max_wait`, at most `max_retries` times after the first attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retries {
    pub max_retries: u32,
    pub first_wait: Duration,
    pub max_wait: Duration,
}

impl Default for Retries {
    fn default() -> Self {
        Retries {
            max_retries: DEFAULT_MAX_RETRIES,
            first_wait: DEFAULT_FIRST_WAIT,
            max_wait: DEFAULT_MAX_WAIT,
        }
    }
}

impl Retries {
    /// The wait before retry number `retry` (0 for the first retry).
    pub fn wait(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX);
        self.first_wait.saturating_mul(factor).min(self.max_wait)
    }
}

/// The stand-in's retry limit when none is given.
pub const DEFAULT_MAX_RETRIES: u32 = 5;
/// The first wait before a retry when none is given.
pub const DEFAULT_FIRST_WAIT: Duration = Duration::from_secs(1);
/// The longest wait between retries when none is given.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(30);
/// How long a request may take when nothing else is given.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How a request sent with [`send_with_retries`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempts {
    /// Some attempt got a 2xx.
    pub delivered: bool,
    /// Each attempt's status code, 0 for no answer in time (or no connection).
    pub statuses: Vec<u16>,
}

/// Sends the request `make` builds until one gets a 2xx or `retries` are used up, each attempt
/// limited to `timeout`; `failed` hears of each failed attempt (its status, 0 for none, and why).
pub async fn send_with_retries(
    retries: &Retries,
    timeout: Duration,
    mut make: impl FnMut() -> reqwest::RequestBuilder,
    mut failed: impl FnMut(u16, &str, u32),
) -> Attempts {
    let mut statuses = Vec::new();
    for attempt in 0..=retries.max_retries {
        let (status, why) = match make().timeout(timeout).send().await {
            Ok(r) if r.status().is_success() => {
                statuses.push(r.status().as_u16());
                return Attempts {
                    delivered: true,
                    statuses,
                };
            }
            Ok(r) => (r.status().as_u16(), format!("answered {}", r.status())),
            Err(e) if e.is_timeout() => (0, format!("no answer within {timeout:?}")),
            Err(e) => (0, e.to_string()),
        };
        statuses.push(status);
        failed(status, &why, attempt + 1);
        if attempt < retries.max_retries {
            tokio::time::sleep(retries.wait(attempt)).await;
        }
    }
    Attempts {
        delivered: false,
        statuses,
    }
}

/// Fastly's `request_max_entries` when 0 (or unset).
pub const DEFAULT_REQUEST_MAX_ENTRIES: usize = 10_000;
/// Fastly's `request_max_bytes` when 0 (or unset): 100 MB.
pub const DEFAULT_REQUEST_MAX_BYTES: usize = 100 * 1000 * 1000;
/// Fastly's `period` when 0 (or unset).
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(5);

/// The batching limits as Fastly applies them: 0 means the default, for each one.
pub fn fastly_limits(
    period_secs: f64,
    max_entries: usize,
    max_bytes: usize,
) -> (Duration, usize, usize) {
    let period = if period_secs > 0.0 {
        Duration::from_secs_f64(period_secs)
    } else {
        DEFAULT_PERIOD
    };
    let entries = if max_entries == 0 {
        DEFAULT_REQUEST_MAX_ENTRIES
    } else {
        max_entries
    };
    let bytes = if max_bytes == 0 {
        DEFAULT_REQUEST_MAX_BYTES
    } else {
        max_bytes
    };
    (period, entries, bytes)
}

impl Default for StandinConfig {
    fn default() -> Self {
        StandinConfig {
            url: String::new(),
            service_id: String::new(),
            endpoint: "collector".into(),
            method: "POST".into(),
            header: None,
            format: BatchFormat::default(),
            period: DEFAULT_PERIOD,
            request_max_entries: DEFAULT_REQUEST_MAX_ENTRIES,
            request_max_bytes: DEFAULT_REQUEST_MAX_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            retries: Retries::default(),
        }
    }
}

/// The `fastly-standin` command line for delivering to a collector as the demo and the
/// whole-path test do: token header, gzip, `json_format`, and a batch `period` in seconds.
pub fn args(
    collector_url: &str,
    service_id: &str,
    token: &str,
    json_format: &str,
    period: &str,
) -> Vec<String> {
    [
        "--url",
        &format!("{collector_url}/logs"),
        "--service-id",
        service_id,
        "--header-name",
        "X-Edgelog-Token",
        "--header-value",
        token,
        "--json-format",
        json_format,
        "--compression-codec",
        "gzip",
        "--period",
        period,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum StandinError {
    #[error("challenge: {0}")]
    Challenge(String),
    #[error("reading input: {0}")]
    Input(#[from] std::io::Error),
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StandinReport {
    pub lines_read: u64,
    pub lines_sent: u64,
    pub requests: u64,
    pub retries: u64,
    pub lines_dropped: u64,
}

/// The challenge URL for a logging URL: same scheme and host.
pub fn challenge_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let host = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{host}/.well-known/fastly/logging/challenge")
}

/// Checks the domain proof as Fastly does before sending anything.
pub async fn check_challenge(
    client: &reqwest::Client,
    url: &str,
    service_id: &str,
) -> Result<(), StandinError> {
    let curl = challenge_url(url);
    let resp = client
        .get(&curl)
        .send()
        .await
        .map_err(|e| StandinError::Challenge(format!("GET {curl}: {e}")))?;
    if !resp.status().is_success() {
        return Err(StandinError::Challenge(format!(
            "GET {curl} answered {}",
            resp.status()
        )));
    }
    let body = resp.text().await.unwrap_or_default();
    let want = hex_sha256(service_id);
    if body.lines().map(str::trim).any(|l| l == want || l == "*") {
        Ok(())
    } else {
        Err(StandinError::Challenge(format!(
            "{curl} does not list sha256({service_id}) = {want} or *; refusing to send"
        )))
    }
}

/// `sha256(s)` in lowercase hex, as the logging challenge lists a service id.
pub fn hex_sha256(s: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(s.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads Viceroy's output from `input` until it ends, delivering the endpoint's lines; other
/// lines are copied to `passthrough` (so the terminal still shows Viceroy's output).
pub async fn run(
    cfg: StandinConfig,
    input: impl AsyncBufRead + Unpin,
    mut passthrough: impl AsyncWrite + Unpin,
) -> Result<StandinReport, StandinError> {
    let client = reqwest::Client::builder()
        .timeout(cfg.request_timeout)
        .build()
        .map_err(|e| StandinError::Challenge(e.to_string()))?;
    check_challenge(&client, &cfg.url, &cfg.service_id).await?;
    let prefix = format!("{} :: ", cfg.endpoint);
    let mut report = StandinReport::default();
    let mut pending: Vec<Vec<u8>> = Vec::new();
    let mut pending_bytes = 0usize;
    let mut lines = input.lines();
    let mut tick = tokio::time::interval(cfg.period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            line = lines.next_line() => {
                match line? {
                    Some(l) => match l.strip_prefix(&prefix) {
                        Some(entry) => {
                            report.lines_read += 1;
                            let entry = entry.as_bytes().to_vec();
                            if !pending.is_empty() && pending_bytes + entry.len() + 1 > cfg.request_max_bytes {
                                send(&client, &cfg, std::mem::take(&mut pending), &mut report).await;
                                pending_bytes = 0;
                            }
                            pending_bytes += entry.len() + 1;
                            pending.push(entry);
                            if pending.len() >= cfg.request_max_entries {
                                send(&client, &cfg, std::mem::take(&mut pending), &mut report).await;
                                pending_bytes = 0;
                            }
                        }
                        None => {
                            passthrough.write_all(l.as_bytes()).await?;
                            passthrough.write_all(b"\n").await?;
                            passthrough.flush().await?;
                        }
                    },
                    None => break,
                }
            }
            _ = tick.tick() => {
                if !pending.is_empty() {
                    send(&client, &cfg, std::mem::take(&mut pending), &mut report).await;
                    pending_bytes = 0;
                }
            }
        }
    }
    if !pending.is_empty() {
        send(&client, &cfg, pending, &mut report).await;
    }
    Ok(report)
}

async fn send(
    client: &reqwest::Client,
    cfg: &StandinConfig,
    lines: Vec<Vec<u8>>,
    report: &mut StandinReport,
) {
    let batch = cfg.format.build(&lines);
    let method =
        reqwest::Method::from_bytes(cfg.method.as_bytes()).unwrap_or(reqwest::Method::POST);
    let make = || {
        let mut req = client
            .request(method.clone(), &cfg.url)
            .body(batch.body.clone());
        for (k, v) in &batch.headers {
            req = req.header(k, v);
        }
        if let Some((k, v)) = &cfg.header {
            req = req.header(k, v);
        }
        req
    };
    let failed = |_: u16, why: &str, attempt: u32| {
        eprintln!("fastly-standin: {} {why} (attempt {attempt})", cfg.url);
    };
    let sent = send_with_retries(&cfg.retries, cfg.request_timeout, make, failed).await;
    report.requests += sent.statuses.len() as u64;
    report.retries += sent.statuses.len() as u64 - 1;
    if sent.delivered {
        report.lines_sent += lines.len() as u64;
        return;
    }
    report.lines_dropped += lines.len() as u64;
    eprintln!(
        "fastly-standin: dropped a batch of {} lines after {} retries",
        lines.len(),
        cfg.retries.max_retries
    );
}
