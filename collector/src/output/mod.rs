//! Outputs: where buffered lines go. Each configured output has its own driver (`driver.rs`),
//! reading the buffer at its own pace; `acks.rs` acknowledges entries once every line is
//! accounted for; `stdio.rs` (stdout, a file), `kinesis/` and `s3/` are the outputs; `aws.rs` is
//! what the AWS ones share, `retry.rs` the waits between attempts, `start.rs` starts one.

pub(crate) mod acks;
pub(crate) mod aws;
pub(crate) mod driver;
pub(crate) mod error;
pub(crate) mod kinesis;
pub(crate) mod retry;
pub(crate) mod s3;
pub(crate) mod start;
pub(crate) mod stdio;
