//! `collector status`: the answer of `GET /status` as a short table, one row per output.

use collector::api::Status;
use std::fmt::Write;

/// The table for a `/status` answer.
pub fn render(status: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} (version {}, up {} s); accepted {} lines, {:.1}/s now",
        if status.ready { "ready" } else { "NOT READY" },
        if status.version.is_empty() {
            "?"
        } else {
            &status.version
        },
        status.uptime_seconds,
        status.ingest.lines,
        status.ingest.lines_per_second,
    );
    for p in &status.problems {
        let _ = writeln!(out, "  problem: {p}");
    }
    let header = [
        "output",
        "received",
        "delivered",
        "dead-lettered",
        "buffered",
        "balances",
        "lag",
        "rate now",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for o in &status.outputs {
        rows.push(vec![
            o.name.clone(),
            o.received.to_string(),
            o.delivered.to_string(),
            o.dead_lettered_total.to_string(),
            o.buffered.to_string(),
            if o.balanced {
                "yes".into()
            } else {
                "NO".into()
            },
            format!("{} lines, {:.1} s", o.buffered, o.oldest_seconds),
            format!("{:.1}/s", o.delivered_per_second),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                if i == 0 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    let dead: Vec<String> = status
        .outputs
        .iter()
        .flat_map(|o| {
            o.dead_lettered
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(move |(reason, n)| format!("{} {reason} {n}", o.name))
        })
        .collect();
    if !dead.is_empty() {
        let _ = writeln!(out, "dead-lettered: {}", dead.join(", "));
    }
    let r = &status.replayed;
    if r.replayed_lines > 0 {
        let _ = writeln!(
            out,
            "replayed from the dead-letter files: {} lines ({} delivered, {} dead-lettered again)",
            r.replayed_lines, r.delivered, r.dead_lettered_again
        );
    }
    let refused: Vec<String> = status
        .ingest
        .refused
        .iter()
        .map(|(reason, n)| format!("{reason} {n}"))
        .collect();
    let _ = writeln!(
        out,
        "refused at ingest (requests, not in the ledger): {}",
        if refused.is_empty() {
            "none".to_string()
        } else {
            refused.join(", ")
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_output_and_the_refusals_beside() {
        let v = serde_json::json!({
            "ready": false, "version": "0.1.0", "uptime_seconds": 12,
            "problems": ["aws_kinesis: unreachable"],
            "ingest": {"lines": 30, "lines_per_second": 2.5, "refused": {"unauthorized": 4}},
            "replayed": {"replayed_lines": 5, "delivered": 4, "dead_lettered_again": 1},
            "outputs": [
                {"name": "aws_kinesis", "received": 30, "delivered": 20, "dead_lettered_total": 3,
                 "dead_lettered": {"line_too_long": 3, "retries_exhausted": 0},
                 "buffered": 7, "balanced": true, "oldest_seconds": 1.25, "delivered_per_second": 4.0},
                {"name": "s3", "received": 30, "delivered": 30, "dead_lettered_total": 0,
                 "dead_lettered": {}, "buffered": 0, "balanced": true, "oldest_seconds": 0.0,
                 "delivered_per_second": 0.0}
            ]
        });
        let t = render(&serde_json::from_value(v).expect("a status"));
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("NOT READY (version 0.1.0, up 12 s); accepted 30 lines"));
        assert_eq!(lines[1], "  problem: aws_kinesis: unreachable");
        assert!(lines[2].starts_with("output "), "{t}");
        let row: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(&row[..6], ["aws_kinesis", "30", "20", "3", "7", "yes"]);
        assert!(lines[4].starts_with("s3 "));
        assert!(t.contains("dead-lettered: aws_kinesis line_too_long 3\n"));
        assert!(t.contains(
            "replayed from the dead-letter files: 5 lines (4 delivered, 1 dead-lettered again)\n"
        ));
        assert!(t.contains("refused at ingest (requests, not in the ledger): unauthorized 4\n"));
    }

    /// The example of `docs/delivery.md` is what the command prints for these numbers.
    #[test]
    fn the_documented_example_is_the_real_output() {
        let v = serde_json::json!({
            "ready": true, "version": "0.1.0", "uptime_seconds": 312, "problems": [],
            "ingest": {"lines": 1203345, "lines_per_second": 4210.4, "refused": {"corrupt_body": 2}},
            "replayed": {"replayed_lines": 0},
            "outputs": [{"name": "aws_kinesis", "received": 1203352, "delivered": 1201120,
                "dead_lettered_total": 7, "dead_lettered": {"line_too_long": 7, "other": 0},
                "buffered": 2225, "balanced": true, "oldest_seconds": 0.2,
                "delivered_per_second": 4190.0}]
        });
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/delivery.md"))
                .expect("docs/delivery.md");
        let rendered = render(&serde_json::from_value(v).expect("a status"));
        assert!(
            doc.contains(&format!("```\n{rendered}```\n")),
            "the example of docs/delivery.md should read:\n{rendered}"
        );
    }
}
