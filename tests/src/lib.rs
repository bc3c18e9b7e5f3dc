//! edgelog's test kit: starts the real components of the data path on free loopback ports, one
//! `spawn_*` helper each, and reads back what they received.
//!
//! Invariant: a component that is missing from the machine makes the test fail with the command
//! that installs it; nothing is skipped quietly.

pub mod certs;
pub mod collector;
pub mod fastly;
pub mod kinesis;
pub mod kinesis_front;
pub mod kpl;
pub mod origin;
pub mod paths;
pub mod procs;
pub mod viceroy;

pub use collector::{spawn_collector, RunningCollector};
pub use kinesis::{spawn_kinesalite, Kinesalite, KinesisClient};
pub use kinesis_front::{spawn_kinesis_front, Faults, KinesisFront};
pub use origin::{spawn_origin, Origin};
pub use viceroy::{spawn_viceroy, EdgeSetup, Viceroy};
