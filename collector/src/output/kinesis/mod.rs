//! The Kinesis Data Streams output, one stage per file (see `output.rs` for the map).

pub(crate) mod aggregate;
pub(crate) mod answer;
pub(crate) mod api;
pub(crate) mod background;
pub(crate) mod batch;
pub(crate) mod budget;
pub(crate) mod classify;
pub(crate) mod connect;
pub(crate) mod deliver;
pub(crate) mod direct;
pub(crate) mod error;
pub(crate) mod kpl;
pub(crate) mod lanes;
pub(crate) mod md5lanes;
pub(crate) mod outage;
pub(crate) mod output;
pub(crate) mod pacing;
pub(crate) mod partition;
pub(crate) mod sdk;
#[cfg(test)]
mod tests;
