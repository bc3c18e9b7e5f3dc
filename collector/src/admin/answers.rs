//! What the admin routes answer: `GET /status` as types, which the collector serializes and
//! `collector status` reads back.
//!
//! Invariant: every field has a default, so a client reads the answer of an older or newer
//! collector (fields it lacks are zero or empty; fields it does not know are ignored).

use crate::deadletter::replay::Journal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The answer of `GET /status`.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    pub version: String,
    pub uptime_seconds: u64,
    /// Takes batches (what `/readyz` answers 200 to).
    pub ready: bool,
    /// Why not ready, one entry per problem.
    pub problems: Vec<String>,
    /// Stopped taking batches to deliver what is buffered, then exit.
    pub draining: bool,
    /// Every output delivers (what `/delivery` answers 200 to).
    pub delivering: bool,
    /// Why not delivering, one entry per problem (`<output>: <reason>`).
    pub delivery_problems: Vec<String>,
    pub ingest: IngestStatus,
    pub buffer: BufferStatus,
    pub outputs: Vec<OutputStatus>,
    /// Errors by kind, each by code or reason.
    pub errors: BTreeMap<String, BTreeMap<String, u64>>,
    /// What `collector dead-letter replay` sent again so far (outside the ledger, which counts
    /// those lines as dead-lettered).
    pub replayed: Journal,
    pub history: History,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IngestStatus {
    /// Lines accepted into the buffer.
    pub lines: u64,
    pub batches: u64,
    pub bytes: u64,
    /// Requests refused, by reason (their lines never enter the ledger).
    pub refused: BTreeMap<String, u64>,
    pub lines_per_second: f64,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BufferStatus {
    pub kind: String,
    pub id: String,
    pub used_bytes: u64,
    pub max_bytes: u64,
    /// `used_bytes / max_bytes`.
    pub fill: f64,
    pub entries: i64,
}

/// One output's line of the ledger, and its lag.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutputStatus {
    pub name: String,
    pub received: u64,
    pub delivered: u64,
    /// By reason (every reason listed, zero or not).
    pub dead_lettered: BTreeMap<String, u64>,
    pub dead_lettered_total: u64,
    pub buffered: u64,
    /// `received == delivered + dead_lettered_total + buffered`.
    pub balanced: bool,
    pub lag_entries: u64,
    pub lag_bytes: u64,
    /// Age of the oldest line read and not yet delivered.
    pub oldest_seconds: f64,
    pub delivered_per_second: f64,
}

/// Rates over the last 15 minutes, one point per sample interval.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct History {
    pub interval_seconds: u64,
    /// End of each interval, Unix milliseconds.
    pub unix_ms: Vec<u64>,
    pub received_per_second: Vec<f64>,
    pub refused_per_second: Vec<f64>,
    /// Per output: delivered and dead-lettered lines per second.
    pub delivered_per_second: BTreeMap<String, Vec<f64>>,
    pub dead_lettered_per_second: BTreeMap<String, Vec<f64>>,
}
