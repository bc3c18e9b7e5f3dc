//! A local stand-in for Fastly's HTTPS log streaming: it reads what Viceroy prints for named log
//! endpoints (`<endpoint> :: <line>`) and delivers the lines of one endpoint to an HTTPS logging
//! URL as Fastly would: domain proof through the challenge first, batches by `period`,
//! `request_max_entries` and `request_max_bytes`, the configured header, json_format 0/1/2, the
//! classic prefix, compression, and retries.
//!
//! Invariants: nothing is sent unless the challenge answer lists hex(sha256(service_id)) or `*`;
//! every line read for the endpoint is sent in order, in exactly one successful request, or
//! reported as dropped after the last retry.

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
    /// Attempts after the first for a failed request.
    pub max_retries: u32,
    pub retry_wait: Duration,
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
            max_retries: 5,
            retry_wait: Duration::from_secs(1),
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
        .timeout(Duration::from_secs(30))
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
    for attempt in 0..=cfg.max_retries {
        let mut req = client
            .request(method.clone(), &cfg.url)
            .body(batch.body.clone());
        for (k, v) in &batch.headers {
            req = req.header(k, v);
        }
        if let Some((k, v)) = &cfg.header {
            req = req.header(k, v);
        }
        report.requests += 1;
        match req.send().await {
            Ok(r) if r.status().is_success() => {
                report.lines_sent += lines.len() as u64;
                return;
            }
            Ok(r) => eprintln!(
                "fastly-standin: {} answered {} (attempt {})",
                cfg.url,
                r.status(),
                attempt + 1
            ),
            Err(e) => eprintln!("fastly-standin: {}: {e} (attempt {})", cfg.url, attempt + 1),
        }
        if attempt < cfg.max_retries {
            report.retries += 1;
            tokio::time::sleep(cfg.retry_wait * (attempt + 1)).await;
        }
    }
    report.lines_dropped += lines.len() as u64;
    eprintln!(
        "fastly-standin: dropped a batch of {} lines after {} retries",
        lines.len(),
        cfg.max_retries
    );
}
