//! Three collector processes (each its own disk buffer) behind HAProxy configured exactly as the
//! example of docs/scaling.md, health-checking `/readyz`, under continuous load from a loader
//! that retries as the Fastly stand-in does: a 15 s Kinesis outage (all stay ready, keep
//! answering 2xx, `/delivery` says not delivering), a `kill -9` and a restart 10 s later on the
//! same buffer, a drain with the doc's systemd command; then every line answered 2xx is in the
//! stream, duplicates are counted, and the three ledgers add up to what the stream holds. And a
//! rolling restart (drain, start, next) of all three with the doc's systemd, container and
//! Kubernetes commands: nothing lost, nothing twice.

use edgelog_testkit::certs::TestCa;
use edgelog_testkit::collector::{
    collector_bin, delivery, metric, readyz, spawn_collector_process, status, CollectorCommand,
    CollectorProcess,
};
use edgelog_testkit::config_yaml::FEW_RETRIES;
use edgelog_testkit::delivery::{process_kinesis_config, stream_behind_front};
use edgelog_testkit::haproxy::{for_loopback, scaling_example, spawn_haproxy, Haproxy};
use edgelog_testkit::http::tls_client_builder;
use edgelog_testkit::numbered::{all_delivered, InStream, Loader, LoaderOptions};
use edgelog_testkit::paths::{doc_block, free_port};
use edgelog_testkit::procs::until;
use edgelog_testkit::standin::Retries;
use edgelog_testkit::{Faults, KinesisClient};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const DOC: &str = "docs/scaling.md";
const STREAM: &str = "scaling";

/// One collector of the three: its directory, configuration and, while it runs, its process.
struct Member {
    name: String,
    _dir: tempfile::TempDir,
    cfg: PathBuf,
    address: String,
    proc: Option<CollectorProcess>,
}

impl Member {
    fn proc(&self) -> &CollectorProcess {
        self.proc.as_ref().expect("running")
    }

    async fn start(&mut self) {
        self.proc = Some(spawn_collector_process(&self.cfg).await);
    }
}

/// Kinesis behind the fault front, three collectors on fixed loopback ports (HAProxy's servers),
/// HAProxy on the doc's configuration with a certificate of a test CA.
struct Setup {
    kc: KinesisClient,
    front: edgelog_testkit::KinesisFront,
    _kinesis: edgelog_testkit::Kinesalite,
    members: Vec<Member>,
    haproxy: Haproxy,
    ca: TestCa,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let (k, kc, front) = stream_behind_front(STREAM, 2).await;
    let mut members = Vec::new();
    for i in 1..=3 {
        let dir = tempfile::tempdir().expect("tmp");
        let port = free_port();
        let cfg = process_kinesis_config(&front.endpoint, STREAM)
            .set(&format!("listen: \"127.0.0.1:{port}\""))
            .set(&format!("admin: {{listen: \"127.0.0.1:{}\"}}", free_port()))
            .set("buffer: {type: disk, dir: \"{dir}/buffer\", fsync: interval}")
            .retry(FEW_RETRIES)
            .write(dir.path());
        let mut m = Member {
            name: format!("c{i}"),
            _dir: dir,
            cfg,
            address: format!("127.0.0.1:{port}"),
            proc: None,
        };
        m.start().await;
        members.push(m);
    }
    let ca = TestCa::new("scaling");
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(dir.path().join("certs")).expect("certs dir");
    let pair = ca.server();
    std::fs::write(
        dir.path().join("certs/edgelog.pem"),
        format!("{}{}", pair.cert_pem, pair.key_pem),
    )
    .expect("write the pem");
    let example = scaling_example();
    let addresses: Vec<String> = members.iter().map(|m| m.address.clone()).collect();
    let haproxy = spawn_haproxy(dir.path(), |port| {
        for_loopback(&example, port, &addresses, dir.path())
    })
    .await;
    let s = Setup {
        kc,
        front,
        _kinesis: k,
        members,
        haproxy,
        ca,
        _dir: dir,
    };
    let client = s.client();
    let url = s.url();
    until(
        Duration::from_secs(30),
        "HAProxy forwards /readyz",
        async || {
            client
                .get(format!("{url}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        },
    )
    .await;
    s
}

impl Setup {
    fn url(&self) -> String {
        format!("https://localhost:{}", self.haproxy.port)
    }

    fn client(&self) -> reqwest::Client {
        tls_client_builder(&self.ca, self.haproxy.port)
            .build()
            .expect("client")
    }

    /// Two posters, 20 lines a batch, one batch every 50 ms each, retrying as the stand-in does
    /// (10 retries, waits from 200 ms to 2 s, 10 s per attempt).
    fn loader(&self) -> Loader {
        Loader::start_with(
            self.url(),
            LoaderOptions {
                client: self.client(),
                posters: 2,
                pace: Duration::from_millis(50),
                retries: Some((
                    Retries {
                        max_retries: 10,
                        first_wait: Duration::from_millis(200),
                        max_wait: Duration::from_secs(2),
                    },
                    Duration::from_secs(10),
                )),
                ..LoaderOptions::new(20)
            },
        )
    }

    /// Waits until the loader has `more` lines answered 2xx beyond now.
    async fn more_acked(&self, loader: &Loader, more: usize, what: &str) {
        more_acked(loader, more, what).await;
    }

    /// Waits until `m` has taken batches through HAProxy since it started.
    async fn taking_traffic(&self, m: &Member) {
        let admin = m.proc().admin_url.clone();
        until(
            Duration::from_secs(60),
            &format!("{} takes batches through HAProxy", m.name),
            async || metric(&admin, "edgelog_ingest_lines_total").await > 0,
        )
        .await;
    }
}

/// A drain command of the doc (after `marker`), as written: `/usr/local/bin/edgelog-collector`
/// is the collector binary and `/etc/edgelog/collector.yaml` the member's configuration.
fn doc_drain_args(marker: &str, cfg: &std::path::Path) -> Vec<String> {
    let block = doc_block(DOC, marker);
    let words: Vec<String> = if block.contains("command: [") {
        let list = block
            .split_once("command: ")
            .expect("a command")
            .1
            .lines()
            .next()
            .expect("the list");
        serde_json::from_str(list).expect("the command is a JSON-style list")
    } else {
        block
            .lines()
            .find(|l| l.contains("edgelog-collector drain"))
            .expect("a drain line")
            .split_whitespace()
            .map(|w| w.trim_start_matches("ExecStop=").to_string())
            .collect()
    };
    let at = words
        .iter()
        .position(|w| w == "/usr/local/bin/edgelog-collector")
        .expect("the binary's path");
    words[at + 1..]
        .iter()
        .map(|w| w.replace("/etc/edgelog/collector.yaml", &cfg.display().to_string()))
        .collect()
}

/// Drains `m` with the doc's command after `marker` while traffic goes on: the command exits 0,
/// the collector exits 0; returns how long it took. The member is stopped afterwards.
async fn drain_as_documented(m: &mut Member, marker: &str) -> Duration {
    let args = doc_drain_args(marker, &m.cfg);
    assert_eq!(args[0], "drain", "{args:?}");
    let started = Instant::now();
    let mut cmd = CollectorCommand::start(&collector_bin(), &args);
    let code = cmd.exit_code(Duration::from_secs(120)).await;
    let took = started.elapsed();
    let out = cmd.stdout.snapshot();
    assert_eq!(code, Some(0), "{out:?}\n{:?}", cmd.stderr.snapshot());
    assert!(out.iter().any(|l| l.starts_with("drained:")), "{out:?}");
    let proc = m.proc.take().expect("running");
    assert_eq!(proc.exited(Duration::from_secs(30)).await, Some(0));
    took
}

/// Restarts a drained member and checks it found nothing left in its buffer.
async fn restart_drained(m: &mut Member) {
    m.start().await;
    assert!(
        !m.proc()
            .stderr
            .snapshot()
            .iter()
            .any(|l| l.contains("resending what a previous run left")),
        "{} was drained: its buffer must be empty",
        m.name
    );
}

impl Setup {
    /// Stops the load (no batch given up after its retries) and waits until every line answered
    /// 2xx is in the stream: (lines posted, numbers answered 2xx, answers by status, the stream).
    async fn finish(&self, loader: Loader) -> (u64, Vec<u64>, HashMap<u16, u64>, InStream) {
        let posted = loader.lines_posted();
        let dropped = loader.lines_dropped();
        let (acked, statuses) = loader.finish().await;
        assert_eq!(dropped, 0, "the loader gave up on a batch: {statuses:?}");
        let stored = all_delivered(&self.kc, STREAM, &acked, Duration::from_secs(180)).await;
        (posted, acked, statuses, stored)
    }
}

/// The sum of the members' ledgers once each has delivered everything: (delivered, received).
async fn ledgers(members: &[Member]) -> (u64, u64) {
    let (mut delivered, mut received) = (0, 0);
    for m in members {
        let admin = &m.proc().admin_url;
        let o = until_delivered(admin).await;
        delivered += o["delivered"].as_u64().expect("delivered");
        received += o["received"].as_u64().expect("received");
        let dead = o["dead_lettered_total"].as_u64().expect("dead");
        assert_eq!(dead, 0, "{}: {o}", m.name);
    }
    (delivered, received)
}

async fn until_delivered(admin: &str) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    until(Duration::from_secs(120), "buffers delivered", async || {
        last = status(admin).await["outputs"][0].clone();
        last["buffered"].as_u64() == Some(0)
    })
    .await;
    last
}

fn summary(what: &str, loader_lines: u64, acked: &[u64], stored: &InStream) -> String {
    let acked_set: HashSet<i64> = acked.iter().map(|&n| n as i64).collect();
    let unacked = stored
        .counts
        .keys()
        .filter(|n| !acked_set.contains(n))
        .count();
    format!(
        "{what}: lines posted {loader_lines}, answered 2xx {}, in the stream {} ({} distinct, {} unanswered-but-delivered), missing 0, duplicates {} ({:.3}%)",
        acked.len(),
        stored.total,
        stored.distinct(),
        unacked,
        stored.duplicates(),
        100.0 * stored.duplicates() as f64 / stored.distinct().max(1) as f64
    )
}

#[tokio::test]
async fn an_outage_a_kill_9_and_a_drain_behind_haproxy_lose_no_line() {
    let mut s = setup().await;
    let loader = s.loader();
    s.more_acked(&loader, 2000, "load flows through HAProxy")
        .await;
    for m in &s.members {
        s.taking_traffic(m).await;
    }

    // Kinesis unreachable for 15 s: every collector stays ready and answers 2xx (the buffers
    // hold the lines); /delivery says not delivering.
    let before = loader.statuses();
    s.front
        .set(Faults::every_request_fails(503, "ServiceUnavailable"));
    let outage = Instant::now();
    for m in &s.members {
        let url = m.proc().url.clone();
        until(
            Duration::from_secs(10),
            &format!("{} /delivery not delivering", m.name),
            async || delivery(&url).await.0 == 503,
        )
        .await;
    }
    let acked_at_start = loader.acked_len();
    while outage.elapsed() < Duration::from_secs(15) {
        for m in &s.members {
            let (code, body) = readyz(&m.proc().url).await;
            assert_eq!(code, 200, "{} not ready in the outage: {body}", m.name);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let during = loader.statuses();
    let failed = |st: &std::collections::HashMap<u16, u64>| -> u64 {
        st.iter()
            .filter(|(c, _)| !(200..300).contains(*c))
            .map(|(_, n)| n)
            .sum()
    };
    assert_eq!(
        failed(&during),
        failed(&before),
        "an answer other than 2xx during the outage: {during:?}"
    );
    let outage_acked = loader.acked_len() - acked_at_start;
    assert!(outage_acked > 0, "lines were taken during the outage");
    s.front.set(Faults::default());
    for m in &s.members {
        let url = m.proc().url.clone();
        until(
            Duration::from_secs(60),
            &format!("{} delivering again", m.name),
            async || delivery(&url).await.0 == 200,
        )
        .await;
    }
    // Afterwards every line arrives (the kill below comes once the backlog is out: a kill
    // while it goes out in full calls is collector_durability's).
    let so_far: Vec<u64> = loader.acked_snapshot();
    all_delivered(&s.kc, STREAM, &so_far, Duration::from_secs(120)).await;

    // kill -9 one collector mid-load; it comes back 10 s later on the same buffer and port.
    s.members[1].proc.take().expect("running").kill9().await;
    let killed = Instant::now();
    s.more_acked(&loader, 500, "the other two take the load")
        .await;
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(killed.elapsed())).await;
    s.members[1].start().await;
    s.taking_traffic(&s.members[1]).await;

    // Drain another with the doc's systemd stop command while the load goes on.
    let drain_took = drain_as_documented(&mut s.members[2], "<!-- systemd drain -->").await;
    s.more_acked(&loader, 1000, "load goes on without the drained one")
        .await;
    restart_drained(&mut s.members[2]).await;
    s.taking_traffic(&s.members[2]).await;
    s.more_acked(&loader, 500, "load goes on with all three")
        .await;

    let (posted, acked, statuses, stored) = s.finish(loader).await;
    let (ledger_delivered, ledger_received) = ledgers(&s.members).await;
    eprintln!(
        "{}",
        summary("scaling behind HAProxy", posted, &acked, &stored)
    );
    eprintln!(
        "scaling behind HAProxy: {outage_acked} lines answered 2xx during the 15 s outage; time to drain {drain_took:?}; ledgers: received {ledger_received}, delivered {ledger_delivered}; answers {statuses:?}"
    );
    // A line a collector sent again after its kill -9 is in one ledger once and in the stream
    // twice; a batch Fastly (the loader) sent again to another collector after the first took
    // it is in two ledgers and twice in the stream.
    assert!(
        stored.distinct() as u64 <= ledger_delivered && ledger_delivered <= stored.total as u64,
        "ledgers {ledger_delivered}, stream {} lines ({} distinct)",
        stored.total,
        stored.distinct()
    );
    assert_eq!(ledger_received, ledger_delivered, "every buffer delivered");
}

#[tokio::test]
async fn a_rolling_restart_under_load_loses_nothing_and_sends_nothing_twice() {
    let mut s = setup().await;
    let loader = s.loader();
    s.more_acked(&loader, 1000, "load flows through HAProxy")
        .await;
    let commands = [
        "<!-- systemd drain -->",
        "<!-- container drain -->",
        "<!-- kubernetes drain -->",
    ];
    let mut took = Vec::new();
    for (i, marker) in commands.iter().enumerate() {
        let m = &mut s.members[i];
        took.push(drain_as_documented(m, marker).await);
        restart_drained(m).await;
        let m = &s.members[i];
        s.taking_traffic(m).await;
        s.more_acked(&loader, 500, "load goes on after the restart")
            .await;
    }
    let (posted, acked, statuses, stored) = s.finish(loader).await;
    let (ledger_delivered, _) = ledgers(&s.members).await;
    eprintln!("{}", summary("rolling restart", posted, &acked, &stored));
    eprintln!(
        "rolling restart: time to drain each {took:?}; ledgers delivered {ledger_delivered}; answers {statuses:?}"
    );
    assert_eq!(stored.duplicates(), 0, "nothing twice");
    assert_eq!(
        ledger_delivered, stored.total as u64,
        "the ledgers and the stream"
    );
}

#[test]
fn the_docs_stop_commands_drain_with_a_timeout_their_grace_periods_cover() {
    let cfg = std::path::Path::new("/c.yaml");
    for marker in [
        "<!-- systemd drain -->",
        "<!-- container drain -->",
        "<!-- kubernetes drain -->",
    ] {
        let args = doc_drain_args(marker, cfg);
        assert_eq!(args[..3], ["drain", "--config", "/c.yaml"], "{marker}");
        assert_eq!(args[3], "--timeout", "{marker}");
        assert_eq!(args[4], "10min", "{marker}");
    }
    let unit = doc_block(DOC, "<!-- systemd drain -->");
    assert!(unit.contains("TimeoutStopSec=11min"), "{unit}");
    let pod: serde_json::Value =
        serde_norway::from_str(&doc_block(DOC, "<!-- kubernetes drain -->")).expect("yaml");
    let grace = pod["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("a grace period");
    // The drain's 10 minutes, then shutdown_timeout (30 s by default).
    assert!(grace >= 600 + 30, "{grace}");
    let stop = doc_block(DOC, "<!-- container drain -->");
    assert!(stop.contains("podman stop --time 45"), "{stop}");
}

#[test]
fn the_buffer_sizing_table_is_the_formula() {
    let text =
        std::fs::read_to_string(edgelog_testkit::paths::repo_root().join(DOC)).expect("the doc");
    let table = text
        .split_once("<!-- buffer sizing -->")
        .expect("the table")
        .1;
    let gib = 1024.0 * 1024.0 * 1024.0;
    let mut rows = 0;
    for row in table.lines().skip(3).take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        let rate: f64 = cells[0].trim_end_matches(" MB/s").parse().expect("a rate");
        for (cell, size) in cells[1..].iter().zip([1.0, 10.0, 100.0]) {
            let minutes = (size * gib / (rate * 1e6 * 60.0)).floor();
            assert_eq!(*cell, format!("{minutes} min"), "{row}");
        }
        rows += 1;
    }
    assert_eq!(rows, 4);
}

/// Lines answered 2xx per second over `window`.
async fn ingest_rate(loader: &Loader, window: Duration) -> f64 {
    let (a, t) = (loader.acked_len(), Instant::now());
    // A measuring window, not a wait for something to happen.
    tokio::time::sleep(window).await;
    (loader.acked_len() - a) as f64 / t.elapsed().as_secs_f64()
}

#[tokio::test]
async fn a_health_check_flood_on_readyz_does_not_stop_ingest() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let (k, kc) = edgelog_testkit::delivery::stream("flood", 1).await;
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = process_kinesis_config(&k.endpoint, "flood")
        .set("buffer: {type: disk, dir: \"{dir}/buffer\", fsync: interval}")
        .write(dir.path());
    let proc = spawn_collector_process(&cfg).await;
    // Eight posters: the rate is bound by the machine, not by one poster waiting for each sync.
    let loader = Loader::start_with(
        proc.url.clone(),
        LoaderOptions {
            posters: 8,
            ..LoaderOptions::new(100)
        },
    );
    more_acked(&loader, 1000, "load flows").await;
    let before = ingest_rate(&loader, Duration::from_secs(3)).await;

    // 64 checkers, half on a new connection per check (as HAProxy checks), half keeping theirs.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, bad) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut checkers = Vec::new();
    for i in 0..64 {
        let mut b = reqwest::Client::builder().timeout(Duration::from_secs(10));
        if i % 2 == 0 {
            b = b.pool_max_idle_per_host(0);
        }
        let client = b.build().expect("client");
        let (stop, ok, bad, url) = (
            stop.clone(),
            ok.clone(),
            bad.clone(),
            format!("{}/readyz", proc.url),
        );
        checkers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => bad.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let acked_before_flood = loader.acked_len();
    let flood_start = Instant::now();
    let during = ingest_rate(&loader, Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for c in checkers {
        let _ = c.await;
    }
    let checks = ok.load(Ordering::Relaxed) + bad.load(Ordering::Relaxed);
    let checks_per_s = checks as f64 / flood_start.elapsed().as_secs_f64();
    let after = ingest_rate(&loader, Duration::from_secs(3)).await;
    let (acked, statuses) = loader.finish().await;
    eprintln!(
        "health-check flood: {checks_per_s:.0} /readyz a second from 64 checkers ({} not 200); ingest {before:.0} lines/s before, {during:.0} during, {after:.0} after; answers {statuses:?}",
        bad.load(Ordering::Relaxed)
    );
    assert!(
        acked.len() > acked_before_flood,
        "ingest went on during the flood"
    );
    assert_eq!(bad.load(Ordering::Relaxed), 0, "every check answered 200");
    all_delivered(&kc, "flood", &acked, Duration::from_secs(120)).await;
}

/// Waits until `loader` has `more` lines answered 2xx beyond now.
async fn more_acked(loader: &Loader, more: usize, what: &str) {
    let target = loader.acked_len() + more;
    until(Duration::from_secs(60), what, async || {
        loader.acked_len() >= target
    })
    .await;
}
