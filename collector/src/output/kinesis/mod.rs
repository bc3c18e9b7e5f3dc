//! The Kinesis Data Streams output, one stage per file (see `output.rs` for the map).

pub mod aggregate;
pub mod answer;
pub mod api;
pub mod background;
pub mod batch;
pub mod budget;
pub mod classify;
pub mod connect;
pub mod deliver;
pub mod direct;
pub mod kpl;
pub mod lanes;
pub mod output;
pub mod pacing;
pub mod partition;
pub mod sdk;
#[cfg(test)]
mod tests;
