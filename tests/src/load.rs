//! A load generator that posts Fastly-shaped batches: realistic JSON access-log lines (the edge
//! app's format, about 460 bytes each), newline-delimited, optionally gzip, over several
//! connections.
//!
//! Each batch starts with one short probe line carrying the send time (`{"probe_ts":<µs>,...}`),
//! so a receiver can measure POST-to-delivery latency without parsing every line.

use bytes::{Bytes, BytesMut};
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The prefix of every probe line; its base64 form is `eyJwcm9iZV90cyI6` (12 bytes, so stable).
pub const PROBE_PREFIX: &str = "{\"probe_ts\":";

pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

const COUNTRIES: &[(&str, &str, f64, f64)] = &[
    ("US", "San Francisco", 37.77869, -122.39557),
    ("DE", "Frankfurt am Main", 50.11552, 8.68417),
    ("JP", "Tokyo", 35.68950, 139.69171),
    ("BR", "Sao Paulo", -23.55052, -46.63331),
    ("GB", "London", 51.50735, -0.12776),
    ("IN", "Mumbai", 19.07609, 72.87743),
    ("AU", "Sydney", -33.86882, 151.20930),
    ("FR", "Paris", 48.85661, 2.35222),
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "curl/8.5.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
];
const PATHS: &[&str] = &[
    "/",
    "/products/42",
    "/images/hero.jpg",
    "/api/v1/cart",
    "/static/app.js",
    "/search",
];
const POPS: &[&str] = &["SJC", "FRA", "NRT", "GRU", "LHR", "BOM", "SYD", "CDG"];

/// One realistic access-log line, as the edge app writes it.
pub fn access_line(rng: &mut impl Rng, n: u64) -> String {
    let (cc, city, lat, lon) = COUNTRIES[rng.random_range(0..COUNTRIES.len())];
    let path = PATHS[rng.random_range(0..PATHS.len())];
    let status = [200, 200, 200, 200, 304, 404, 503][rng.random_range(0..7)];
    let bytes = rng.random_range(200..90_000);
    let pop = POPS[rng.random_range(0..POPS.len())];
    format!(
        "{{\"timestamp\":\"2026-11-21T08:03:18.{:06}+00:00\",\"request_id\":\"{:032x}\",\
\"client_ip\":\"{}.{}.{}.{}\",\"geo\":{{\"country_code\":\"{cc}\",\"city\":\"{city}\",\"latitude\":{lat},\"longitude\":{lon}}},\
\"pop\":\"{pop}\",\"cache_host\":\"cache-{}{}\",\"method\":\"GET\",\"url\":\"{path}?v={}\",\
\"protocol\":\"HTTP/2\",\"user_agent\":\"{}\",\"status\":{status},\"body_bytes_sent\":{bytes},\"elapsed_us\":{},\"outcome\":\"origin\"}}",
        rng.random_range(0..1_000_000),
        (n as u128) << 64 | rng.random::<u64>() as u128,
        rng.random_range(1..224),
        rng.random_range(0..256),
        rng.random_range(0..256),
        rng.random_range(1..255),
        pop.to_ascii_lowercase(),
        rng.random_range(1000..9999),
        rng.random_range(1..100),
        AGENTS[rng.random_range(0..AGENTS.len())],
        rng.random_range(100..200_000),
    )
}

/// Pre-built batch bodies to cycle through (building each request from scratch would make the
/// load generator, not the collector, the bottleneck).
pub struct Bodies {
    plain: Vec<Bytes>,
    gzip: bool,
    pub lines_per_batch: usize,
    pub line_bytes_per_batch: usize,
}

impl Bodies {
    pub fn new(distinct: usize, lines_per_batch: usize, gzip: bool) -> Bodies {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut n = 0;
        let mut plain = Vec::new();
        let mut line_bytes = 0;
        for _ in 0..distinct {
            let mut b = BytesMut::new();
            line_bytes = 0;
            for _ in 0..lines_per_batch {
                let l = access_line(&mut rng, n);
                n += 1;
                line_bytes += l.len();
                b.extend_from_slice(l.as_bytes());
                b.extend_from_slice(b"\n");
            }
            let body = b.freeze();
            plain.push(if gzip {
                Bytes::from(crate::fastly::compress(crate::fastly::Codec::Gzip, &body))
            } else {
                body
            });
        }
        Bodies {
            plain,
            gzip,
            lines_per_batch,
            line_bytes_per_batch: line_bytes,
        }
    }

    /// Body `i`, with a fresh probe line in front.
    pub fn body(&self, i: usize) -> Bytes {
        // Shaped like the other lines (a client_ip and a geo.country_code), so it is
        // partitioned and batched as they are.
        let probe = format!(
            "{PROBE_PREFIX}{},\"event\":\"probe\",\"client_ip\":\"192.0.2.{}\",\"geo\":{{\"country_code\":\"{}\"}}}}\n",
            now_micros(),
            i % 250,
            COUNTRIES[i % COUNTRIES.len()].0
        );
        let probe = if self.gzip {
            crate::fastly::compress(crate::fastly::Codec::Gzip, probe.as_bytes())
        } else {
            probe.into_bytes()
        };
        let base = &self.plain[i % self.plain.len()];
        let mut b = BytesMut::with_capacity(probe.len() + base.len());
        b.extend_from_slice(&probe);
        b.extend_from_slice(base);
        b.freeze()
    }
}

/// What a load run saw.
#[derive(Default)]
pub struct LoadStats {
    pub requests: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub errors: AtomicU64,
    pub lines_accepted: AtomicU64,
    pub line_bytes_accepted: AtomicU64,
    pub post_latencies_us: Mutex<Vec<u64>>,
}

/// How to load.
#[derive(Clone)]
pub struct LoadPlan {
    pub url: String,
    pub token: Option<String>,
    pub connections: usize,
    pub duration: Duration,
    /// Stop after this many lines (0: no limit).
    pub max_lines: u64,
    /// An `https://` URL's CA (PEM): the only root the load's clients trust.
    pub ca_pem: Option<String>,
}

/// Posts batches on `connections` connections until the time or line budget is spent.
pub async fn run_load(plan: LoadPlan, bodies: Arc<Bodies>, stats: Arc<LoadStats>) {
    let deadline = Instant::now() + plan.duration;
    let mut tasks = Vec::new();
    for c in 0..plan.connections {
        let plan = plan.clone();
        let bodies = bodies.clone();
        let stats = stats.clone();
        tasks.push(tokio::spawn(async move {
            let mut builder = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(60));
            if let Some(pem) = &plan.ca_pem {
                builder = builder.tls_certs_only([
                    reqwest::Certificate::from_pem(pem.as_bytes()).expect("the load's CA")
                ]);
            }
            let client = builder.build().expect("client");
            let url = format!("{}/logs", plan.url);
            let mut i = c * 7919;
            while Instant::now() < deadline
                && (plan.max_lines == 0
                    || stats.lines_accepted.load(Ordering::Relaxed) < plan.max_lines)
            {
                let body = bodies.body(i);
                i += 1;
                let mut req = client.post(&url).body(body);
                if bodies.gzip {
                    req = req.header("content-encoding", "gzip");
                }
                if let Some(t) = &plan.token {
                    req = req.header("x-edgelog-token", t);
                }
                let started = Instant::now();
                stats.requests.fetch_add(1, Ordering::Relaxed);
                match req.send().await {
                    Ok(r) if r.status().is_success() => {
                        stats.accepted.fetch_add(1, Ordering::Relaxed);
                        stats
                            .lines_accepted
                            .fetch_add(bodies.lines_per_batch as u64 + 1, Ordering::Relaxed);
                        stats
                            .line_bytes_accepted
                            .fetch_add(bodies.line_bytes_per_batch as u64, Ordering::Relaxed);
                        if let Ok(mut l) = stats.post_latencies_us.lock() {
                            l.push(started.elapsed().as_micros() as u64);
                        }
                    }
                    Ok(r) => {
                        stats.rejected.fetch_add(1, Ordering::Relaxed);
                        let retry = r
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<u64>().ok())
                            .unwrap_or(1);
                        // Back off a little, as Fastly would not hammer either.
                        tokio::time::sleep(Duration::from_millis(50 * retry.min(4))).await;
                    }
                    Err(_) => {
                        stats.errors.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// The `q` quantile (0..1) of a set of values.
pub fn quantile(values: &mut [u64], q: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let i = ((values.len() as f64 - 1.0) * q).round() as usize;
    values[i.min(values.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_look_like_the_edge_apps_and_are_about_460_bytes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let lines: Vec<String> = (0..1000).map(|i| access_line(&mut rng, i)).collect();
        let avg = lines.iter().map(String::len).sum::<usize>() / lines.len();
        assert!((420..=500).contains(&avg), "{avg}");
        for l in &lines {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            assert!(v["geo"]["country_code"].is_string());
        }
        assert_eq!(
            base64_simd::STANDARD.encode_to_string(PROBE_PREFIX),
            "eyJwcm9iZV90cyI6"
        );
    }
}
