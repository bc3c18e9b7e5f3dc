//! The `s3` output: every line archived in objects of an S3-compatible bucket, beside whatever
//! other output reads the same buffer.
//!
//! `object.rs` packs entries into one compressed object; `cuts.rs` remembers where objects end,
//! so that a restart writes the same objects under the same names; `client.rs` talks to S3
//! (start-up checks, uploads, retries); `output.rs` closes objects by size and age and
//! acknowledges their entries once stored.
//!
//! Invariant: an entry is acknowledged only once the object holding it is stored, and an object's
//! name is made of the collector's buffer id and the buffer positions it covers; so a restart
//! that sends the same lines again overwrites the same object instead of adding one.

pub(crate) mod client;
pub(crate) mod cuts;
pub(crate) mod error;
pub(crate) mod object;
pub(crate) mod output;
