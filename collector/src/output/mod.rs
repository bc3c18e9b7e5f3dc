//! Outputs: where buffered lines go. `driver.rs` reads entries from the buffer and feeds the
//! configured output; `acks.rs` acknowledges entries once every line is accounted for;
//! `stdio.rs` (stdout, a file) and `kinesis/` are the outputs.

pub mod acks;
pub mod driver;
pub mod error;
pub mod kinesis;
pub mod stdio;
