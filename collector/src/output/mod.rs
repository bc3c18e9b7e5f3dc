//! Outputs: where buffered lines go. Each configured output has its own driver (`driver.rs`),
//! reading the buffer at its own pace; `acks.rs` acknowledges entries once every line is
//! accounted for; `stdio.rs` (stdout, a file), `kinesis/` and `s3/` are the outputs; `aws.rs` is
//! what the AWS ones share, `retry.rs` the waits between attempts, `start.rs` starts one.

pub mod acks;
pub mod aws;
pub mod driver;
pub mod error;
pub mod kinesis;
pub mod retry;
pub mod s3;
pub mod start;
pub mod stdio;
