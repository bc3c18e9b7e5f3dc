//! Live tail: `GET /tail` streams the lines passing through, like `fastly log-tail`.
//!
//! Invariants: with no tail client connected, publishing costs one atomic load; a slow client
//! misses lines (it is told how many) rather than slowing ingest or holding memory. Who may
//! connect is the admin routes' business (`admin`), not the tail's.

use crate::config::MAX_TAIL_FILTER_BYTES;
use crate::lines::LineBatch;
use crate::metrics::Metrics;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::broadcast;

pub const PATH: &str = "/tail";

/// Batches a client may fall behind before it starts missing lines.
const BACKLOG: usize = 256;

pub struct Tail {
    sender: broadcast::Sender<LineBatch>,
    metrics: Arc<Metrics>,
}

impl Tail {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Tail {
            sender: broadcast::channel(BACKLOG).0,
            metrics,
        }
    }

    /// Whether any client is connected (a batch is only worth copying for the tail then).
    pub fn watching(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// A new receiver of the batches published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LineBatch> {
        self.sender.subscribe()
    }

    /// Offers a batch to connected clients (a no-op without any).
    pub fn publish(&self, batch: &LineBatch) {
        if self.sender.receiver_count() > 0 {
            let _ = self.sender.send(batch.clone());
        }
    }
}

/// Which lines a client wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    All,
    /// The line contains this text.
    Substring(Vec<u8>),
    /// The line is JSON and the field (dotted path) has this value: a string's text, or a
    /// number, boolean or `null` as written in the line (the text a partition key takes).
    Field(Vec<String>, String),
}

impl Filter {
    /// `status=503` and `geo.country_code=US` are field filters; anything else is a substring.
    /// Refused, with the reason: a filter over [`MAX_TAIL_FILTER_BYTES`], one holding a control
    /// character (a line never holds a newline), a field path with an empty part (`a..b=1`).
    pub fn parse(text: &str) -> Result<Filter, String> {
        if text.len() > MAX_TAIL_FILTER_BYTES {
            return Err(format!(
                "filter: {} bytes, over the most, {MAX_TAIL_FILTER_BYTES}",
                text.len()
            ));
        }
        if let Some(c) = text.chars().find(|c| c.is_control()) {
            return Err(format!("filter: holds the control character {c:?}"));
        }
        if text.is_empty() {
            return Ok(Filter::All);
        }
        if let Some((field, value)) = text.split_once('=') {
            let path_chars = !field.is_empty()
                && field
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
            if path_chars {
                if field.split('.').any(str::is_empty) {
                    return Err(format!(
                        "filter: the field path {field:?} has an empty part (write a.b=value)"
                    ));
                }
                return Ok(Filter::Field(
                    field.split('.').map(str::to_string).collect(),
                    value.to_string(),
                ));
            }
        }
        Ok(Filter::Substring(text.as_bytes().to_vec()))
    }

    pub fn matches(&self, line: &[u8]) -> bool {
        match self {
            Filter::All => true,
            Filter::Substring(s) => memchr::memmem::find(line, s).is_some(),
            Filter::Field(path, want) => {
                crate::json_path::lookup(line, path).is_some_and(|found| found.text == *want)
            }
        }
    }
}

#[derive(Deserialize)]
pub struct TailQuery {
    #[serde(default)]
    filter: String,
}

/// Streams matching lines, newline-terminated, until the client goes away; 400 with the reason
/// for a filter it cannot use.
pub async fn handler(
    State(tail): State<Arc<Tail>>,
    q: Result<Query<TailQuery>, QueryRejection>,
) -> Response {
    let filter = match q {
        Ok(Query(q)) => Filter::parse(&q.filter),
        Err(e) => Err(format!(
            "filter: the query cannot be read (give filter once): {e}"
        )),
    };
    let filter = match filter {
        Ok(f) => f,
        Err(why) => {
            tail.metrics.tail_filters_refused.inc();
            return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response();
        }
    };
    let mut rx = tail.subscribe();
    let metrics = tail.metrics.clone();
    let (tx, out) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    metrics.tail_clients.add(1);
    tokio::spawn(async move {
        let _ = tx
            .send(Ok(Bytes::from_static(b"# edgelog tail: connected\n")))
            .await;
        loop {
            let chunk = match rx.recv().await {
                Ok(batch) => {
                    let mut chunk = BytesMut::new();
                    for line in batch.iter().filter(|l| filter.matches(l)) {
                        chunk.extend_from_slice(line);
                        chunk.extend_from_slice(b"\n");
                    }
                    chunk.freeze()
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    metrics.tail_dropped.add(n);
                    Bytes::from(format!(
                        "# edgelog tail: skipped {n} batches (client too slow)\n"
                    ))
                }
                Err(broadcast::error::RecvError::Closed) => break,
            };
            if !chunk.is_empty() && tx.send(Ok(chunk)).await.is_err() {
                break;
            }
        }
        metrics.tail_clients.add(-1);
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(out);
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        let line = br#"{"status":503,"geo":{"country_code":"US"},"url":"/a?x=1","ok":true}"#;
        assert!(Filter::parse("").expect("filter").matches(line));
        assert!(Filter::parse("status=503").expect("filter").matches(line));
        assert!(!Filter::parse("status=200").expect("filter").matches(line));
        assert!(Filter::parse("geo.country_code=US")
            .expect("filter")
            .matches(line));
        assert!(Filter::parse("ok=true").expect("filter").matches(line));
        assert!(!Filter::parse("missing=1").expect("filter").matches(line));
        assert!(
            Filter::parse("/a?x=1").expect("filter").matches(line),
            "not a field name: substring"
        );
        assert!(Filter::parse("country_code\":\"US")
            .expect("filter")
            .matches(line));
        assert!(!Filter::parse("status=503")
            .expect("filter")
            .matches(b"status=503 but not json"));
        assert!(Filter::parse("503").expect("filter").matches(b"GET / 503"));
    }

    #[test]
    fn bad_filters_are_refused_with_the_reason() {
        let long = "x".repeat(MAX_TAIL_FILTER_BYTES + 1);
        for (text, says) in [
            (long.as_str(), "over the most"),
            ("a\nb", "control character"),
            ("status=5\u{0}3", "control character"),
            ("geo..country=US", "empty part"),
            (".status=503", "empty part"),
            ("status.=503", "empty part"),
        ] {
            let err = Filter::parse(text).expect_err(text);
            assert!(err.contains(says), "{text:?}: {err}");
        }
        assert!(Filter::parse(&"x".repeat(MAX_TAIL_FILTER_BYTES)).is_ok());
        assert_eq!(
            Filter::parse("=x").expect("substring"),
            Filter::Substring(b"=x".to_vec())
        );
    }

    /// A tail filter naming a field matches exactly the lines whose partition key, with that
    /// field as `partition_key`, is the filter's value: the same text for the same value.
    #[test]
    fn tail_filters_and_partition_keys_read_a_field_the_same_way() {
        let lines: [&[u8]; 6] = [
            br#"{"n":3.50,"geo":{"cc":"US","lat":-1e3},"s":"caf\u00e9 \"q\""}"#,
            br#"{"n":350e-2,"geo":{"cc":"U\u0053"},"s":"x"}"#,
            br#"{"n":0,"geo":{"cc":"DE","o":{"deep":[1,2]}},"s":""}"#,
            br#"{"n":true,"geo":{"o":{"a":1}}}"#,
            br#"{"n":"3.50","s":"caf\u00e9 \"q\""}"#,
            br#"{"geo":null}"#,
        ];
        let mut compared = 0;
        for path in ["n", "geo.cc", "geo.lat", "geo.o", "s"] {
            let spec: Vec<String> = path.split('.').map(str::to_string).collect();
            for line in lines {
                let Some(key) = crate::json_path::field_value(line, &spec) else {
                    continue;
                };
                let filter = Filter::parse(&format!("{path}={key}")).expect("filter");
                for other in lines {
                    assert_eq!(
                        filter.matches(other),
                        crate::json_path::field_value(other, &spec).as_deref() == Some(&*key),
                        "{path}={key} on {}",
                        String::from_utf8_lossy(other)
                    );
                    compared += 1;
                }
            }
        }
        assert!(compared >= 60, "{compared}");
        // A number reads as written: 3.50, not 3.5.
        assert!(Filter::parse("n=3.50").expect("filter").matches(lines[0]));
        assert!(!Filter::parse("n=3.5").expect("filter").matches(lines[0]));
    }
}
