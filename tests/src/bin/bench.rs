//! The collector benchmark (run it with `scripts/bench`): for each scenario it starts the release
//! collector as its own process, a no-op Kinesis server (JSON 1.1) in this process, and posts
//! Fastly-shaped batches on several connections; then it reports what reached the Kinesis server
//! (not just what was accepted), the collector's CPU seconds per million lines and peak RSS (from
//! /proc), POST-to-PutRecords latency and records per PutRecords call.
//!
//! The `-tls-in` scenarios put TLS on the ingest listener (the load trusts a CA made for the
//! run); the `-tls` scenarios also reach the Kinesis server over HTTPS (haproxy terminating TLS
//! in front of it, with a certificate of that CA, which the collector is told to trust through
//! `SSL_CERT_FILE`). After the table, the CPU each side's TLS costs per line: `-tls-in` minus
//! the plain scenario (ingest), `-tls` minus `-tls-in` (Kinesis). Longer than 650 lines: the
//! scenario table, running one and the report are one program.

use edgelog_testkit::certs::TestCa;
use edgelog_testkit::collector::metric;
use edgelog_testkit::config_yaml::KinesisYaml;
use edgelog_testkit::kinesis_stub::{spawn_kinesis_stub, StubStats};
use edgelog_testkit::load::{quantile, run_load, Bodies, LoadPlan, LoadStats};
use edgelog_testkit::paths::free_port;
use edgelog_testkit::s3_stub::spawn_s3_stub;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Serialize)]
struct Scenario {
    name: String,
    buffer: &'static str,
    fsync: &'static str,
    gzip: bool,
    partition: &'static str,
    aggregate: bool,
    /// `kinesis` (the no-op Kinesis server), `kinesalite` (the emulator, 4 shards) or `null`
    /// (file output to /dev/null).
    output: &'static str,
    /// `put_records_client`: `direct` or `sdk`.
    client: &'static str,
    /// The `s3` output beside Kinesis (a no-op S3 server): `-` (none), or its compression.
    s3: &'static str,
    /// The `s3` output's `max_object_bytes`.
    s3_object_mb: u64,
    /// Someone watches the status page: `/status` is read every 2 s, as the page does.
    watched: bool,
    /// TLS: `-` (none), `in` (on the ingest listener) or `both` (and HTTPS to Kinesis).
    tls: &'static str,
}

fn scenario(
    name: &str,
    buffer: &'static str,
    fsync: &'static str,
    gzip: bool,
    partition: &'static str,
    aggregate: bool,
    output: &'static str,
) -> Scenario {
    Scenario {
        name: name.into(),
        buffer,
        fsync,
        gzip,
        partition,
        aggregate,
        output,
        client: "direct",
        s3: "-",
        s3_object_mb: 64,
        watched: false,
        tls: "-",
    }
}

/// The scenarios with TLS: for each of memory and disk buffers, plain and aggregated records,
/// TLS on the ingest listener alone (`-tls-in`) and both ways (`-tls`).
fn tls_scenarios() -> Vec<Scenario> {
    let mut out = Vec::new();
    for (base, buffer, fsync) in [
        ("memory", "memory", "-"),
        ("disk-interval", "disk", "interval"),
    ] {
        for aggregate in [false, true] {
            for (suffix, tls) in [("tls-in", "in"), ("tls", "both")] {
                let name = if aggregate {
                    format!("{base}-aggregate-{suffix}")
                } else {
                    format!("{base}-{suffix}")
                };
                out.push(Scenario {
                    tls,
                    ..scenario(&name, buffer, fsync, false, "shard", aggregate, "kinesis")
                });
            }
        }
    }
    out
}

fn all_scenarios() -> Vec<Scenario> {
    let s = scenario;
    vec![
        s("memory", "memory", "-", false, "shard", false, "kinesis"),
        Scenario {
            client: "sdk",
            ..s(
                "memory-sdk",
                "memory",
                "-",
                false,
                "shard",
                false,
                "kinesis",
            )
        },
        s(
            "memory-gzip",
            "memory",
            "-",
            true,
            "shard",
            false,
            "kinesis",
        ),
        s(
            "memory-field",
            "memory",
            "-",
            false,
            "field",
            false,
            "kinesis",
        ),
        s(
            "memory-aggregate",
            "memory",
            "-",
            false,
            "shard",
            true,
            "kinesis",
        ),
        s(
            "memory-field-aggregate",
            "memory",
            "-",
            false,
            "field",
            true,
            "kinesis",
        ),
        s(
            "disk-interval",
            "disk",
            "interval",
            false,
            "shard",
            false,
            "kinesis",
        ),
        // The ack position saved every 10 ms (the default, as disk-interval), 100 ms or 1 s: what
        // saving it often costs (a kill -9 sends again what was delivered since the last save).
        s(
            "disk-interval-ack-100ms",
            "disk",
            "interval-ack-100ms",
            false,
            "shard",
            false,
            "kinesis",
        ),
        s(
            "disk-interval-ack-1s",
            "disk",
            "interval-ack-1s",
            false,
            "shard",
            false,
            "kinesis",
        ),
        s(
            "disk-interval-aggregate",
            "disk",
            "interval",
            false,
            "shard",
            true,
            "kinesis",
        ),
        s(
            "disk-interval-field-aggregate",
            "disk",
            "interval",
            false,
            "field",
            true,
            "kinesis",
        ),
        Scenario {
            watched: true,
            ..s(
                "disk-interval-watched",
                "disk",
                "interval",
                false,
                "shard",
                false,
                "kinesis",
            )
        },
        s(
            "disk-interval-gzip",
            "disk",
            "interval",
            true,
            "shard",
            false,
            "kinesis",
        ),
        s(
            "disk-interval-field",
            "disk",
            "interval",
            false,
            "field",
            false,
            "kinesis",
        ),
        s(
            "disk-interval-timer",
            "disk",
            "interval-timer",
            false,
            "shard",
            false,
            "kinesis",
        ),
        s(
            "disk-always",
            "disk",
            "always",
            false,
            "shard",
            false,
            "kinesis",
        ),
        s(
            "disk-never",
            "disk",
            "never",
            false,
            "shard",
            false,
            "kinesis",
        ),
        Scenario {
            s3: "zstd",
            ..s(
                "disk-s3-zstd",
                "disk",
                "interval",
                false,
                "shard",
                false,
                "kinesis",
            )
        },
        Scenario {
            s3: "gzip",
            ..s(
                "disk-s3-gzip",
                "disk",
                "interval",
                false,
                "shard",
                false,
                "kinesis",
            )
        },
        Scenario {
            s3: "zstd",
            s3_object_mb: 8,
            ..s(
                "disk-s3-zstd-8m",
                "disk",
                "interval",
                false,
                "shard",
                false,
                "kinesis",
            )
        },
        s("null-sink", "memory", "-", false, "-", false, "null"),
        s(
            "kinesalite",
            "memory",
            "-",
            false,
            "shard",
            false,
            "kinesalite",
        ),
    ]
    .into_iter()
    .chain(tls_scenarios())
    .collect()
}

#[derive(Serialize, Debug, Default, Clone)]
struct Figures {
    scenario: String,
    duration_s: f64,
    lines_accepted: u64,
    lines_delivered: u64,
    lines_per_s: f64,
    mb_per_s: f64,
    cpu_s_per_million_lines: f64,
    peak_rss_mb: f64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    post_p50_ms: f64,
    post_p99_ms: f64,
    records_per_call: f64,
    call_fill: f64,
    rejected_requests: u64,
}

/// The collector benchmark: every scenario against a no-op Kinesis server (see scripts/bench).
#[derive(clap::Parser)]
#[command(name = "bench")]
struct Args {
    /// The release collector binary.
    #[arg(long, default_value = "target/release/collector")]
    collector: PathBuf,
    /// Seconds of load per scenario.
    #[arg(long, default_value = "20", value_parser = parse_secs)]
    duration: Duration,
    /// Connections posting batches.
    #[arg(long, default_value = "8")]
    connections: usize,
    /// Lines per posted batch.
    #[arg(long, default_value = "1000")]
    batch_lines: usize,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Only these scenarios (comma list); see `all_scenarios`.
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// The collector has no admin listener (an older build, for a baseline): no `admin` key in
    /// its configuration, `/metrics` and `/status` on its one listener.
    #[arg(long)]
    no_admin_listener: bool,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .map(Duration::from_secs_f64)
        .map_err(|e| e.to_string())
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields after the command: state is [0]; utime is field 14 overall, so [11], stime [12].
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// Peak resident set size, MB.
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// The keys the stubs are given (they check none).
const CREDENTIALS: &str = "{access_key_id: AKIDBENCH, secret_access_key: secret}";

fn config(
    s: &Scenario,
    (port, admin_port): (u16, Option<u16>),
    dir: &std::path::Path,
    stub: &str,
    s3: &str,
) -> String {
    let tls = if s.tls == "-" {
        String::new()
    } else {
        format!(
            "tls: {{cert: \"{d}/server.crt\", key: \"{d}/server.key\"}}\n",
            d = dir.display()
        )
    };
    let buffer = match s.buffer {
        "memory" => "buffer: {type: memory, max_bytes: 25165824, when_full: reject}\n".to_string(),
        // `interval` runs with the defaults (100 ms, or sooner once 1 MiB waits);
        // `interval-timer` turns the byte trigger off, so each 2xx waits for the 100 ms tick.
        _ => {
            let (fsync, extra) = match s.fsync {
                "interval-timer" => ("interval", ", fsync_bytes: 1073741824"),
                "interval-ack-100ms" => ("interval", ", ack_save_interval: 100ms"),
                "interval-ack-1s" => ("interval", ", ack_save_interval: 1s"),
                other => (other, ""),
            };
            format!(
                "buffer: {{type: disk, dir: \"{}/buffer\", fsync: {fsync}{extra}, max_bytes: 1073741824}}\n",
                dir.display()
            )
        }
    };
    let output = match s.output {
        "null" => "output:\n  file: {path: /dev/null}\n".to_string(),
        _ => {
            let mut kinesis = KinesisYaml::new(stub, "bench")
                .credentials(Some(CREDENTIALS))
                .batch("{size: 500, duration: 200ms}")
                .key("max_in_flight: 8");
            if s.partition == "field" {
                kinesis = kinesis.key("partition_key: geo.country_code");
            }
            if s.aggregate {
                kinesis = kinesis.key("aggregate: true");
            }
            if s.client == "sdk" {
                kinesis = kinesis.key("put_records_client: sdk");
            }
            let mut k = format!("output:\n{}", kinesis.block());
            if s.s3 != "-" {
                k.push_str(&edgelog_testkit::s3::output_yaml(
                    s3,
                    "bench",
                    CREDENTIALS,
                    &format!(
                        "    compression: {}\n    max_object_bytes: {}\n    max_object_age: 1s\n",
                        s.s3,
                        s.s3_object_mb << 20
                    ),
                ));
            }
            k.push_str("  retry: {max_retries: 5, initial_wait: 50ms, max_wait: 1s}\n");
            k
        }
    };
    format!(
        "listen: \"127.0.0.1:{port}\"\n{tls}{admin}log_format: json\nfastly: {{service_ids: [\"*\"]}}\n\
         ingest: {{max_body_bytes: 8388608, max_in_flight: 32, max_in_flight_bytes: 12582912}}\n\
         dead_letter: {{path: \"{}/dead.ndjson\"}}\n{buffer}{output}",
        dir.display(),
        admin = admin_port
            .map(|p| format!("admin: {{listen: \"127.0.0.1:{p}\"}}\n"))
            .unwrap_or_default()
    )
}

/// What has reached the output so far.
#[derive(Default, Clone, Copy)]
struct Delivered {
    lines: u64,
    records: u64,
    calls: u64,
    data_bytes: u64,
}

async fn delivered(s: &Scenario, stub: &StubStats, url: &str, load: &LoadStats) -> Delivered {
    let mut d = delivered_to_kinesis(s, stub, url, load).await;
    if s.s3 != "-" {
        // Both outputs: a line counts once it is in the stream and in a stored object.
        d.lines = d.lines.min(metric(url, "edgelog_s3_lines_total").await);
    }
    d
}

async fn delivered_to_kinesis(
    s: &Scenario,
    stub: &StubStats,
    url: &str,
    load: &LoadStats,
) -> Delivered {
    match s.output {
        "null" => Delivered {
            lines: load.lines_accepted.load(Ordering::Relaxed),
            ..Delivered::default()
        },
        "kinesalite" => Delivered {
            lines: metric(url, "edgelog_output_lines_total").await,
            records: metric(url, "edgelog_output_records_put_total").await,
            calls: metric(url, "edgelog_output_calls_total").await,
            data_bytes: metric(url, "edgelog_output_bytes_put_total").await,
        },
        _ => {
            let r = stub.report();
            Delivered {
                lines: r.lines,
                records: r.records,
                calls: r.calls,
                data_bytes: r.data_bytes,
            }
        }
    }
}

async fn run_scenario(args: &Args, s: &Scenario, bodies: Arc<Bodies>) -> Figures {
    let dir = tempfile::tempdir().expect("tmp");
    let (stub_url, stub_stats): (String, Arc<StubStats>) = spawn_kinesis_stub(4).await;
    let (s3_url, _s3_stats) = spawn_s3_stub().await;
    let emulator = if s.output == "kinesalite" {
        let k = edgelog_testkit::spawn_kinesalite().await;
        edgelog_testkit::KinesisClient::new(&k.endpoint)
            .await
            .create_stream("bench", 4)
            .await;
        Some(k)
    } else {
        None
    };
    let ca = (s.tls != "-").then(|| TestCa::new("edgelog bench CA"));
    if let Some(ca) = &ca {
        let server = ca.server();
        std::fs::write(dir.path().join("server.crt"), &server.cert_pem).expect("write cert");
        std::fs::write(dir.path().join("server.key"), &server.key_pem).expect("write key");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write CA");
    }
    // HTTPS to the Kinesis server: haproxy terminating TLS in front of it.
    let https_front = match (&ca, s.tls) {
        (Some(ca), "both") => {
            let stub_port: u16 = stub_url
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("the stub's port");
            Some(edgelog_testkit::tls_front::spawn_tls_front(stub_port, &ca.server()).await)
        }
        _ => None,
    };
    let endpoint = emulator
        .as_ref()
        .map(|k| k.endpoint.clone())
        .or_else(|| https_front.as_ref().map(|f| f.url.clone()))
        .unwrap_or(stub_url);
    let port = free_port();
    let admin_port = (!args.no_admin_listener).then(free_port);
    let cfg_path = dir.path().join("collector.yaml");
    std::fs::write(
        &cfg_path,
        config(s, (port, admin_port), dir.path(), &endpoint, &s3_url),
    )
    .expect("write config");
    let mut command = tokio::process::Command::new(&args.collector);
    if https_front.is_some() {
        // The one root its HTTPS clients trust (rustls-native-certs reads it).
        command.env("SSL_CERT_FILE", dir.path().join("ca.pem"));
    }
    let mut child = command
        .args(["serve", "--config"])
        .arg(&cfg_path)
        .env("EDGELOG_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start collector (build it with scripts/bench)");
    let pid = child.id().unwrap_or(0);
    let scheme = if ca.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://127.0.0.1:{port}");
    let health = match admin_port {
        Some(p) => format!("http://127.0.0.1:{p}"),
        None => url.clone(),
    };
    let start_deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{health}/readyz"))
        .await
        .map(|r| r.status().as_u16())
        .ok()
        != Some(200)
    {
        if Instant::now() > start_deadline {
            panic!("collector did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let load = Arc::new(LoadStats::default());
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    let plan = LoadPlan {
        url: url.clone(),
        token: None,
        connections: args.connections,
        duration: args.duration,
        max_lines: 0,
        ca_pem: ca.as_ref().map(TestCa::pem),
    };
    let loader = tokio::spawn(run_load(plan, bodies.clone(), load.clone()));
    let admin = format!("http://127.0.0.1:{}", admin_port.unwrap_or(port));
    let watcher = s.watched.then(|| {
        let status = format!("{admin}/status");
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            loop {
                if let Ok(r) = client.get(&status).send().await {
                    let _ = r.bytes().await;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        })
    });
    let mut last = (0u64, Instant::now());
    while !loader.is_finished() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = delivered(s, &stub_stats, &admin, &load).await.lines;
        let rate = now.saturating_sub(last.0) as f64 / last.1.elapsed().as_secs_f64();
        last = (now, Instant::now());
        eprint!(
            "\r{:<30} {:>5.1}s  {:>9.0} lines/s  accepted {:>10}  delivered {:>10}  rss {:>6.1} MB   ",
            s.name,
            t0.elapsed().as_secs_f64(),
            rate,
            load.lines_accepted.load(Ordering::Relaxed),
            now,
            peak_rss_mb(pid)
        );
    }
    let _ = loader.await;
    let accepted = load.lines_accepted.load(Ordering::Relaxed);
    // Everything accepted must be delivered before the clock stops.
    let drain_deadline = Instant::now() + Duration::from_secs(60);
    let mut done = delivered(s, &stub_stats, &admin, &load).await;
    while done.lines < accepted && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        done = delivered(s, &stub_stats, &admin, &load).await;
    }
    if let Some(w) = watcher {
        w.abort();
    }
    let report = stub_stats.report();
    let elapsed = if s.output == "kinesis" && s.s3 == "-" {
        (report.last_us.saturating_sub(report.first_us)) as f64 / 1e6
    } else {
        t0.elapsed().as_secs_f64()
    }
    .max(0.001);
    let cpu = cpu_seconds(pid) - cpu0;
    let rss = peak_rss_mb(pid);
    eprintln!();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    drop(emulator);
    drop(https_front);

    let mut post = load
        .post_latencies_us
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default();
    let line_bytes = bodies.line_bytes_per_batch as f64 / bodies.lines_per_batch as f64;
    let per_call = |x: u64| {
        if done.calls > 0 {
            x as f64 / done.calls as f64
        } else {
            0.0
        }
    };
    let records_per_call = per_call(done.records);
    Figures {
        scenario: s.name.clone(),
        duration_s: elapsed,
        lines_accepted: accepted,
        lines_delivered: done.lines,
        lines_per_s: done.lines as f64 / elapsed,
        mb_per_s: done.lines as f64 * line_bytes / elapsed / 1e6,
        cpu_s_per_million_lines: if done.lines > 0 {
            cpu / done.lines as f64 * 1e6
        } else {
            0.0
        },
        peak_rss_mb: rss,
        latency_p50_ms: report.latency_p50_us as f64 / 1000.0,
        latency_p99_ms: report.latency_p99_us as f64 / 1000.0,
        post_p50_ms: quantile(&mut post, 0.5) as f64 / 1000.0,
        post_p99_ms: quantile(&mut post, 0.99) as f64 / 1000.0,
        records_per_call,
        call_fill: (records_per_call / 500.0)
            .max(per_call(done.data_bytes) / (10.0 * 1024.0 * 1024.0)),
        rejected_requests: load.rejected.load(Ordering::Relaxed),
    }
}

#[tokio::main]
async fn main() {
    let args = <Args as clap::Parser>::parse();
    if !args.collector.is_file() {
        eprintln!(
            "bench: no collector binary at {} (run scripts/bench)",
            args.collector.display()
        );
        std::process::exit(2);
    }
    let scenarios: Vec<Scenario> = all_scenarios()
        .into_iter()
        .filter(|s| args.scenarios.is_empty() || args.scenarios.contains(&s.name))
        .collect();
    eprintln!(
        "bench: {} scenarios, {:?} each, {} connections, {}-line batches",
        scenarios.len(),
        args.duration,
        args.connections,
        args.batch_lines
    );
    let plain = Arc::new(Bodies::new(32, args.batch_lines, false));
    let gzip = Arc::new(Bodies::new(32, args.batch_lines, true));
    eprintln!(
        "bench: lines average {} bytes",
        plain.line_bytes_per_batch / plain.lines_per_batch
    );
    let mut all = Vec::new();
    for s in &scenarios {
        let bodies = if s.gzip { gzip.clone() } else { plain.clone() };
        all.push(run_scenario(&args, s, bodies).await);
    }
    println!(
        "\n{:<30} {:>10} {:>8} {:>10} {:>8} {:>9} {:>9} {:>9} {:>8} {:>6} {:>8}",
        "scenario",
        "lines/s",
        "MB/s",
        "cpu-s/Ml",
        "rss MB",
        "p50 ms",
        "p99 ms",
        "post p99",
        "rec/call",
        "fill",
        "rejected"
    );
    for f in &all {
        println!(
            "{:<30} {:>10.0} {:>8.1} {:>10.2} {:>8.1} {:>9.1} {:>9.1} {:>9.1} {:>8.1} {:>5.0}% {:>8}",
            f.scenario,
            f.lines_per_s,
            f.mb_per_s,
            f.cpu_s_per_million_lines,
            f.peak_rss_mb,
            f.latency_p50_ms,
            f.latency_p99_ms,
            f.post_p99_ms,
            f.records_per_call,
            f.call_fill * 100.0,
            f.rejected_requests
        );
    }
    tls_costs(&all);
    if let Some(path) = &args.json {
        let scenarios_json: Vec<_> = scenarios
            .iter()
            .zip(&all)
            .map(|(s, f)| serde_json::json!({"scenario": s, "figures": f}))
            .collect();
        let doc = serde_json::json!({
            "machine": {"cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)},
            "duration_s": args.duration.as_secs_f64(),
            "connections": args.connections,
            "batch_lines": args.batch_lines,
            "results": scenarios_json,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap_or_default())
            .expect("write json");
        eprintln!("bench: figures written to {}", path.display());
    }
}

/// The CPU each side's TLS costs per line, in CPU-µs per line (CPU-s per million lines): ingest
/// is `<base>-tls-in` minus `<base>`, Kinesis is `<base>-tls` minus `<base>-tls-in`.
fn tls_costs(all: &[Figures]) {
    let cpu = |name: &str| {
        all.iter()
            .find(|f| f.scenario == name)
            .map(|f| f.cpu_s_per_million_lines)
    };
    let mut header = false;
    for base in [
        "memory",
        "memory-aggregate",
        "disk-interval",
        "disk-interval-aggregate",
    ] {
        let (Some(plain), Some(tls_in), Some(both)) = (
            cpu(base),
            cpu(&format!("{base}-tls-in")),
            cpu(&format!("{base}-tls")),
        ) else {
            continue;
        };
        if !header {
            println!(
                "\n{:<30} {:>12} {:>12} {:>12} {:>12}",
                "TLS cost (CPU-s/Ml)", "plain", "ingest TLS", "Kinesis TLS", "both"
            );
            header = true;
        }
        println!(
            "{:<30} {:>12.2} {:>12.2} {:>12.2} {:>12.2}",
            base,
            plain,
            tls_in - plain,
            both - tls_in,
            both - plain
        );
    }
}
