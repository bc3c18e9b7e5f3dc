//! edgelog's collector: receives Fastly HTTPS log streaming batches and forwards every line to
//! Amazon Kinesis Data Streams and an S3-compatible archive.
//!
//! Data path: `ingest` (HTTP, challenge, auth, decoding) -> `buffer` (durable, bounded; its
//! `ledger` says where every line is) -> `output` (one driver per output, each reading the buffer
//! at its own pace: batching, partitioning, pacing, retries) -> Kinesis, S3, stdout or a file.
//! Around it: `http` (the listener facing Fastly, TLS, the route tables), `admin` (the status
//! page, `/status`, `/metrics`, the live tail), `health` (readiness), `deadletter` (what cannot
//! be delivered, and its replay), `metrics`, `logging` (the collector's own log, secrets
//! scrubbed), `config` (the YAML file, validated once). [`run`] wires them, in the phases of
//! `run.rs`, and is what both `main` and the tests start, on a listener they bind.
//!
//! The public API is [`run`], [`run_with`] and what they take and give ([`config::Config`],
//! [`Handles`], [`RunError`]), and what the `collector` command needs besides: [`logging`],
//! [`challenge_lines`], [`replay_dead_letters`] and the admin routes' answers ([`api`]).

pub mod config;
pub mod logging;

pub(crate) mod admin;
pub(crate) mod buffer;
pub mod check;
pub(crate) mod deadletter;
pub(crate) mod health;
pub(crate) mod http;
pub(crate) mod ingest;
pub(crate) mod json_path;
pub(crate) mod lines;
pub(crate) mod metrics;
pub(crate) mod output;
mod run;

pub use deadletter::replay::{replay as replay_dead_letters, Report as ReplayReport};
pub use ingest::challenge::lines as challenge_lines;
pub use metrics::Metrics;
pub use run::{run, run_with, Handles, RunError};

/// The admin routes' paths and answers, for clients of a running collector.
pub mod api {
    pub use crate::admin::answers::*;
    pub use crate::admin::drain::PATH as DRAIN_PATH;
    pub use crate::admin::tail::PATH as TAIL_PATH;
    pub use crate::admin::{METRICS_PATH, PAGE_PATH, STATUS_PATH};
}

/// Pieces of the hot path, for the benchmarks and fuzz targets only; not a stable API.
#[doc(hidden)]
pub mod __internals {
    pub use crate::ingest::decode::fuzzing;
    pub use crate::ingest::decode::{decode_body, frame, FrameOptions, Framing};
    pub use crate::json_path::field_value;
    pub use crate::output::kinesis::answer::{decode, decode_with_serde};
    pub use crate::output::kinesis::api::PutEntry;
    pub use crate::output::kinesis::direct::encode;
    pub use crate::output::kinesis::kpl::Aggregator;
    pub use crate::output::kinesis::md5lanes::{digests as md5_digests, one as md5_one};
}
