//! The collector's status page in a real browser (headless Chromium): it loads with no console
//! error and nothing fetched from elsewhere, its ledger matches `/status`, its plots and the live
//! tail update, and it fits a phone's width.

use edgelog_testkit::browser::Browser;
use edgelog_testkit::collector::{post_corrupt_gzip, post_lines, status};
use edgelog_testkit::delivery::{lines, post_all, stream_behind_front, yaml};
use edgelog_testkit::{spawn_collector, Faults};
use serde_json::Value;
use std::time::Duration;

/// A number as the page shows it (`12,345`).
fn shown(v: &Value) -> u64 {
    v.as_str()
        .unwrap_or_default()
        .replace(',', "")
        .parse()
        .unwrap_or(u64::MAX)
}

#[tokio::test]
async fn the_page_shows_the_ledger_plots_and_tail_live_with_no_error() {
    let (_k, _kc, front) = stream_behind_front("page", 1).await;
    front.set(Faults::throttle_entries(0.05));
    let col = spawn_collector(&yaml(
        &front.endpoint,
        "page",
        "",
        "ingest: {max_line_bytes: 300}\n",
    ))
    .await;
    let admin = col.admin_url.clone();
    let browser = Browser::launch().await;
    browser.viewport(1280, 1000, false).await;
    browser.open(&format!("{admin}/")).await;
    browser
        .wait_for(
            "a first update",
            "Number(document.body.dataset.updates) >= 1",
        )
        .await;

    // Traffic with failures: throttled entries (retried), lines over the limit (dead-lettered),
    // bodies that cannot be decoded (refused).
    let all = lines("page", 3000);
    post_all(&col.url, &all, 300).await;
    let long = vec!["x".repeat(400); 7];
    assert_eq!(post_lines(&col.url, None, &long).await, 204);
    for _ in 0..2 {
        assert_eq!(post_corrupt_gzip(&col.url).await, 400);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let s = loop {
        let s = status(&admin).await;
        if s["outputs"][0]["buffered"] == 0 && s["outputs"][0]["received"] == 3007 {
            break s;
        }
        assert!(tokio::time::Instant::now() < deadline, "not delivered: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        front
            .stats
            .failed_entries
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );

    // The page's numbers are /status's once it has refreshed after the traffic ended.
    let seen = browser.eval("Number(document.body.dataset.updates)").await;
    browser
        .wait_for(
            "a refresh after the traffic",
            &format!("Number(document.body.dataset.updates) > {seen}"),
        )
        .await;
    let out = &s["outputs"][0];
    for (cell, key) in [
        ("received", "received"),
        ("delivered", "delivered"),
        ("dead", "dead_lettered_total"),
        ("buffered", "buffered"),
    ] {
        let text = browser
            .eval(&format!(
                "document.getElementById('ledger-aws_kinesis-{cell}').textContent"
            ))
            .await;
        assert_eq!(shown(&text), out[key].as_u64().expect("number"), "{cell}");
    }
    assert_eq!(out["delivered"], 3000);
    assert_eq!(out["dead_lettered"]["line_too_long"], 7);
    assert_eq!(
        browser
            .eval("document.getElementById('ledger-aws_kinesis-balanced').textContent")
            .await,
        "yes"
    );
    assert_eq!(
        shown(
            &browser
                .eval("document.getElementById('dead-aws_kinesis-line_too_long').textContent")
                .await
        ),
        7
    );
    let errors = browser
        .eval("document.getElementById('errors').textContent")
        .await;
    let errors = errors.as_str().unwrap_or_default();
    assert!(errors.contains("ingest refused"), "{errors}");
    assert!(
        errors.contains("ProvisionedThroughputExceededException"),
        "{errors}"
    );

    // The plots move on as samples come in.
    let points = browser
        .eval("Number(document.getElementById('plot').dataset.points)")
        .await;
    browser
        .wait_for(
            "a new point on the plot",
            &format!(
                "Number(document.getElementById('plot').dataset.points) > {points} && \
                 document.querySelectorAll('#plot polyline').length >= 3"
            ),
        )
        .await;

    // The live tail, with its filter.
    browser
        .eval(
            "document.getElementById('tail-filter').value = 'tail-probe'; \
             document.getElementById('tail-start').click(); true",
        )
        .await;
    browser
        .wait_for(
            "the tail streaming",
            "document.getElementById('tail-state').textContent.startsWith('streaming')",
        )
        .await;
    let mut probe = lines("tail-probe", 3);
    probe.extend(lines("other", 3));
    assert_eq!(post_lines(&col.url, None, &probe).await, 204);
    browser
        .wait_for(
            "probe lines in the tail",
            "Number(document.getElementById('tail').dataset.lines) >= 3",
        )
        .await;
    let tail = browser
        .eval("document.getElementById('tail').textContent")
        .await;
    let tail: Vec<&str> = tail.as_str().unwrap_or_default().lines().collect();
    assert_eq!(
        tail,
        probe[..3].iter().map(String::as_str).collect::<Vec<_>>()
    );

    // A filter the collector refuses is shown with its reason.
    browser
        .eval(
            "document.getElementById('tail-filter').value = 'geo..country=US'; \
             document.getElementById('tail-start').click(); true",
        )
        .await;
    browser
        .wait_for(
            "the refusal shown",
            "document.getElementById('tail-state').textContent.includes('empty part')",
        )
        .await;

    if let Ok(path) = std::env::var("EDGELOG_SCREENSHOT") {
        std::fs::write(&path, browser.screenshot().await).expect("write the screenshot");
    }

    // Nothing came from anywhere but the collector.
    let foreign = browser
        .eval(
            "performance.getEntriesByType('resource').map(e => e.name)\
             .filter(n => !n.startsWith(location.origin))",
        )
        .await;
    assert_eq!(foreign, Value::Array(vec![]), "fetched from elsewhere");

    // A phone's width: nothing wider than the screen.
    browser.viewport(390, 844, true).await;
    browser.open(&format!("{admin}/")).await;
    browser
        .wait_for(
            "an update on the phone",
            "Number(document.body.dataset.updates) >= 1",
        )
        .await;
    let width = browser.eval("document.documentElement.scrollWidth").await;
    assert!(
        width.as_u64().unwrap_or(u64::MAX) <= 390,
        "page is {width} px wide on a 390 px screen"
    );

    let errors = browser.errors();
    // The refused tail filter is a 400 the browser logs as a failed resource; nothing else.
    let unexpected: Vec<&String> = errors
        .iter()
        .filter(|e| !(e.contains("400") && e.contains("tail")))
        .collect();
    assert!(unexpected.is_empty(), "page errors: {errors:#?}");
}
