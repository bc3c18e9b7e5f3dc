//! Outputs: where buffered lines go. `driver.rs` reads entries from the buffer and feeds the
//! configured output; `acks.rs` acknowledges entries once every line is accounted for;
//! `stdio.rs` (stdout, a file), `kinesis/` and `s3/` are the outputs; `aws.rs` is what the AWS
//! ones share. Each configured output has its own driver, reading the buffer at its own pace.

pub mod acks;
pub mod aws;
pub mod driver;
pub mod error;
pub mod kinesis;
pub mod s3;
pub mod stdio;
