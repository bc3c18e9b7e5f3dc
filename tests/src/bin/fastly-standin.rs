//! `fastly-standin`: plays Fastly's part on a development machine.

use clap::Parser;
use edgelog_testkit::fastly::{BatchFormat, Codec, JsonFormat};
use edgelog_testkit::standin::{fastly_limits, run, Retries, StandinConfig, DEFAULT_MAX_RETRIES};
use std::time::Duration;

/// Stands in for Fastly's HTTPS log streaming on a development machine. This is a development
/// tool, not Fastly: it reads what Viceroy prints for named log endpoints (`<endpoint> :: <line>`,
/// on stdin, e.g. `viceroy serve ... | fastly-standin ...`) and delivers one endpoint's lines to
/// an HTTPS logging URL the way Fastly's HTTPS endpoint does: it checks
/// /.well-known/fastly/logging/challenge first, then posts batches by period, entries and bytes,
/// with the configured header, json_format, message_type, compression and retries (a request
/// answered other than 2xx or not in time is sent again, waits doubling, up to a limit). Other
/// input lines are copied to stdout. docs/fastly-standin.md says what is Fastly's and what is
/// assumed.
#[derive(Parser)]
#[command(name = "fastly-standin", version)]
struct Args {
    /// The logging URL (Fastly's `url`), e.g. http://127.0.0.1:8080/logs.
    #[arg(long)]
    url: String,
    /// The service id to prove in the challenge.
    #[arg(long, default_value = "edgelog-local")]
    service_id: String,
    /// The named endpoint whose lines are delivered.
    #[arg(long, default_value = "collector")]
    endpoint: String,
    /// POST or PUT.
    #[arg(long, default_value = "POST")]
    method: String,
    /// Fastly's `header_name`.
    #[arg(long)]
    header_name: Option<String>,
    /// Fastly's `header_value`.
    #[arg(long, env = "FASTLY_STANDIN_HEADER_VALUE", hide_env_values = true)]
    header_value: Option<String>,
    /// `0` (lines as formatted), `1` (one JSON array) or `2` (newline-delimited JSON).
    #[arg(long, default_value = "0")]
    json_format: String,
    /// `classic` (syslog-style prefix on each line, Fastly's default) or `blank`.
    #[arg(long, default_value = "classic")]
    message_type: String,
    /// none, gzip, zstd or snappy.
    #[arg(long, default_value = "none")]
    compression_codec: String,
    /// Do not send Content-Encoding (the receiver must recognise the codec by its magic bytes).
    #[arg(long)]
    no_content_encoding: bool,
    /// Seconds between batches; 0 means Fastly's default, 5.
    #[arg(long, default_value = "0")]
    period: f64,
    /// Entries per request; 0 means Fastly's default, 10,000.
    #[arg(long, default_value = "0")]
    request_max_entries: usize,
    /// Bytes per request; 0 means Fastly's default, 100 MB.
    #[arg(long, default_value = "0")]
    request_max_bytes: usize,
    /// Attempts after the first for a failed request (answered other than 2xx, or not in time);
    /// then the batch is dropped and counted.
    #[arg(long, default_value_t = DEFAULT_MAX_RETRIES)]
    max_retries: u32,
    /// The wait before the first retry (e.g. 1s, 250ms); each further wait doubles.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    retry_wait: Duration,
    /// The longest wait between two attempts.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    max_retry_wait: Duration,
    /// How long a request may take before it counts as failed and is sent again.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    request_timeout: Duration,
    /// Content-Type of each request; none is sent unless set (as on Fastly).
    #[arg(long)]
    content_type: Option<String>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let a = Args::parse();
    let Some(json_format) = JsonFormat::parse(&a.json_format) else {
        eprintln!("fastly-standin: --json-format must be 0, 1 or 2");
        return std::process::ExitCode::from(2);
    };
    let Some(codec) = Codec::parse(&a.compression_codec) else {
        eprintln!("fastly-standin: --compression-codec must be none, gzip, zstd or snappy");
        return std::process::ExitCode::from(2);
    };
    let header = match (a.header_name, a.header_value) {
        (Some(n), Some(v)) => Some((n, v)),
        (None, None) => None,
        _ => {
            eprintln!("fastly-standin: --header-name and --header-value go together");
            return std::process::ExitCode::from(2);
        }
    };
    if !["classic", "blank"].contains(&a.message_type.as_str()) {
        eprintln!("fastly-standin: --message-type must be classic or blank");
        return std::process::ExitCode::from(2);
    }
    let (period, request_max_entries, request_max_bytes) =
        fastly_limits(a.period, a.request_max_entries, a.request_max_bytes);
    let cfg = StandinConfig {
        url: a.url,
        service_id: a.service_id,
        endpoint: a.endpoint.clone(),
        method: a.method,
        header,
        format: BatchFormat {
            json_format,
            codec,
            content_encoding_header: !a.no_content_encoding,
            classic_prefix: a.message_type == "classic",
            endpoint_name: a.endpoint,
            content_type: a.content_type,
        },
        period,
        request_max_entries,
        request_max_bytes,
        request_timeout: a.request_timeout,
        retries: Retries {
            max_retries: a.max_retries,
            first_wait: a.retry_wait,
            max_wait: a.max_retry_wait,
        },
    };
    let stdin = tokio::io::BufReader::new(tokio::io::stdin());
    match run(cfg, stdin, tokio::io::stdout()).await {
        Ok(r) => {
            eprintln!(
                "fastly-standin: read {} lines, delivered {} in {} requests ({} retries, {} dropped)",
                r.lines_read, r.lines_sent, r.requests, r.retries, r.lines_dropped
            );
            if r.lines_dropped > 0 {
                std::process::ExitCode::from(1)
            } else {
                std::process::ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("fastly-standin: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
