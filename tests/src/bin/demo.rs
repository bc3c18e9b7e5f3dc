//! The local demo (run it with `scripts/demo`): the whole path on one machine. It starts a local
//! origin, the Kinesis emulator with a stream, the collector (disk buffer on), and the edge app
//! under Viceroy with its log lines piped into the Fastly stand-in; sends a burst of realistic
//! requests through the edge app; and shows the records arriving in Kinesis. With `--s3` it also
//! starts an S3-compatible store (s3s-fs) and shows the archive's objects landing in it. Ctrl-C
//! stops everything it started.

use edgelog_testkit::collector::{spawn_collector_process_at, CollectorProcess};
use edgelog_testkit::config_yaml::KinesisYaml;
use edgelog_testkit::{
    spawn_kinesalite, spawn_origin, spawn_viceroy_with_standin, EdgeSetup, KinesisClient,
};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const STREAM: &str = "edgelog-demo";
const SERVICE: &str = "edgelog-demo-service";
const TOKEN: &str = "demo-token";
const TAIL_TOKEN: &str = "demo-tail-token";

/// The whole path on this machine (run it with scripts/demo).
#[derive(clap::Parser)]
#[command(name = "demo")]
struct Args {
    /// The collector binary.
    #[arg(long, default_value = "target/debug/collector")]
    collector: PathBuf,
    /// The fastly-standin binary.
    #[arg(long, default_value = "target/debug/fastly-standin")]
    standin: PathBuf,
    /// Requests sent through the edge app.
    #[arg(long, default_value = "200")]
    requests: usize,
    /// The edge app's `format`: json, clf or a format string.
    #[arg(long, default_value = "json")]
    format: String,
    /// The stand-in's batch period, seconds (Fastly's default is 5).
    #[arg(long, default_value = "1")]
    period: String,
    /// Keep everything running after the count, until Ctrl-C.
    #[arg(long)]
    keep: bool,
    /// Also archive every line in a local S3-compatible store, and show the objects.
    #[arg(long)]
    s3: bool,
}

const BUCKET: &str = "edgelog-demo";

fn step(t0: Instant, what: &str) {
    eprintln!("[{:>5.1}s] {what}", t0.elapsed().as_secs_f64());
}

/// A burst of requests as real clients send them: pages, assets, API calls, errors.
async fn burst(edge: String, n: usize, sent: Arc<AtomicU64>) {
    let client = reqwest::Client::new();
    let agents = [
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
        "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36",
        "curl/8.5.0",
    ];
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let (client, edge, sent) = (client.clone(), edge.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = worker;
            while i < n {
                let req = match i % 10 {
                    0..=4 => client.get(format!("{edge}/hello?page={i}&utm_source=demo")),
                    5 => client.get(format!("{edge}/big/20000")),
                    6 => client
                        .post(format!("{edge}/echo"))
                        .body(format!("{{\"order\":{i}}}")),
                    7 => client.get(format!("{edge}/status/404")),
                    8 => client.get(format!("{edge}/status/503")),
                    _ => client.get(format!("{edge}/chunked/3")),
                };
                let _ = req
                    .header("user-agent", agents[i % agents.len()])
                    .header("referer", "https://www.example.com/")
                    .header("accept-language", "en-US,en;q=0.9")
                    .send()
                    .await;
                sent.fetch_add(1, Ordering::Relaxed);
                i += 8;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// `edgelog_output_lines_total` from the collector's /metrics.
async fn delivered(url: &str) -> u64 {
    edgelog_testkit::collector::metric(url, "edgelog_output_lines_total").await
}

async fn demo(args: Args, t0: Instant) -> Result<(), String> {
    for (what, p) in [
        ("collector", &args.collector),
        ("fastly-standin", &args.standin),
    ] {
        if !p.is_file() {
            return Err(format!(
                "no {what} binary at {} (run scripts/demo)",
                p.display()
            ));
        }
    }
    let origin = spawn_origin().await;
    step(t0, &format!("origin listening on {}", origin.url()));
    let k = spawn_kinesalite().await;
    let kc = KinesisClient::new(&k.endpoint).await;
    kc.create_stream(STREAM, 2).await;
    step(
        t0,
        &format!(
            "Kinesis emulator (kinesalite) on {}, stream {STREAM:?} with 2 shards",
            k.endpoint
        ),
    );

    let store = if args.s3 {
        let store = edgelog_testkit::spawn_s3(&[BUCKET]).await;
        step(
            t0,
            &format!(
                "S3-compatible store (s3s-fs) on {}, bucket {BUCKET:?}, objects under {}",
                store.endpoint,
                store.root.path().display()
            ),
        );
        Some(store)
    } else {
        None
    };
    let archive = store
        .as_ref()
        .map(|st| {
            st.output_yaml(
                BUCKET,
                "    compression: zstd\n    max_object_age: 1s\n    prefix: fastly-logs\n",
            )
        })
        .unwrap_or_default();
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let cfg = work.path().join("collector.yaml");
    std::fs::write(
        &cfg,
        format!(
            "listen: \"127.0.0.1:0\"\nfastly: {{service_ids: [\"{SERVICE}\"]}}\n\
             ingest: {{auth: {{header: X-Edgelog-Token, token: {TOKEN}}}}}\n\
             tail: {{token: {TAIL_TOKEN}}}\n\
             buffer: {{type: disk, dir: \"{d}/buffer\", fsync: interval}}\n\
             dead_letter: {{path: \"{d}/dead-letter.ndjson\"}}\n\
             output:\n{kinesis}{archive}",
            d = work.path().display(),
            kinesis = KinesisYaml::new(&k.endpoint, STREAM)
                .credentials(Some("{access_key_id: AKIDDEMO, secret_access_key: demo}"))
                .batch("{duration: 200ms}")
                .block()
        ),
    )
    .map_err(|e| e.to_string())?;
    let collector: CollectorProcess = spawn_collector_process_at(&args.collector, &cfg).await;
    step(
        t0,
        &format!(
            "collector on {} (disk buffer in {})",
            collector.url,
            work.path().display()
        ),
    );

    let setup = EdgeSetup::new(&origin.url())
        .set("endpoints", "collector")
        .set("format", &args.format)
        .set("redact_query", "utm_source")
        .set("error_endpoint", "collector");
    let json_format = if args.format == "json" { "2" } else { "0" };
    let standin_args =
        edgelog_testkit::standin::args(&collector.url, SERVICE, TOKEN, json_format, &args.period);
    let edge = spawn_viceroy_with_standin(&setup, &args.standin, &standin_args).await;
    step(
        t0,
        &format!(
            "edge app under Viceroy on {}, its lines piped into the Fastly stand-in",
            edge.url
        ),
    );

    let sent = Arc::new(AtomicU64::new(0));
    let burst_task = tokio::spawn(burst(edge.url.clone(), args.requests, sent.clone()));
    step(
        t0,
        &format!("sending {} requests through the edge app", args.requests),
    );
    let mut first_record: Option<Duration> = None;
    let mut records = 0usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    while records < args.requests {
        if Instant::now() > deadline {
            eprintln!();
            return Err(format!(
                "only {records} of {} records arrived",
                args.requests
            ));
        }
        records = kc.read_all(STREAM).await.len();
        if records > 0 && first_record.is_none() {
            first_record = Some(t0.elapsed());
        }
        eprint!(
            "\r[{:>5.1}s] requests sent {:>4}/{}   lines delivered by the collector {:>4}   records in the stream {:>4}   ",
            t0.elapsed().as_secs_f64(),
            sent.load(Ordering::Relaxed),
            args.requests,
            delivered(&collector.admin_url).await,
            records
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = burst_task.await;
    eprintln!();
    let all = kc.read_all(STREAM).await;
    if let Some(r) = all.first() {
        step(
            t0,
            &format!(
                "a record, as it sits in Kinesis:\n{}",
                String::from_utf8_lossy(&r.data)
            ),
        );
    }
    println!(
        "demo: {} requests sent, {} lines delivered by the collector, {} records in the stream; first record after {:.1}s",
        sent.load(Ordering::Relaxed),
        delivered(&collector.admin_url).await,
        all.len(),
        first_record.unwrap_or_default().as_secs_f64()
    );
    if let Some(st) = &store {
        let client = st.client().await;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut objects = client.objects(BUCKET).await;
        while objects.iter().map(|o| o.lines.len()).sum::<usize>() < all.len() {
            if Instant::now() > deadline {
                return Err("the archive did not receive every line".into());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            objects = client.objects(BUCKET).await;
        }
        for o in &objects {
            step(
                t0,
                &format!(
                    "object s3://{BUCKET}/{} ({} bytes, {} lines)",
                    o.key,
                    o.size,
                    o.lines.len()
                ),
            );
        }
        println!(
            "demo: {} lines in {} objects in the bucket {BUCKET:?}",
            objects.iter().map(|o| o.lines.len()).sum::<usize>(),
            objects.len()
        );
    }
    if args.keep {
        eprintln!(
            "\nStill running (Ctrl-C stops everything):\n  curl {}/hello                      # a request through the edge app\n  {} tail --config {} --filter status=503\n  {} status --config {}\n  status page: {}/\n",
            edge.url,
            args.collector.display(),
            cfg.display(),
            args.collector.display(),
            cfg.display(),
            collector.admin_url
        );
        std::future::pending::<()>().await;
    }
    drop(edge);
    let _ = collector.terminate().await;
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = <Args as clap::Parser>::parse();
    let t0 = Instant::now();
    tokio::select! {
        r = demo(args, t0) => match r {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("demo: {e}");
                std::process::ExitCode::from(1)
            }
        },
        _ = tokio::signal::ctrl_c() => {
            eprintln!("\ndemo: interrupted; stopping everything it started");
            std::process::ExitCode::from(130)
        }
    }
}
