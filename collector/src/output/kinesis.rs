//! Kinesis output (being written).
use super::Acks;
use crate::buffer::Entry;
use std::sync::Arc;
use std::time::Duration;

pub struct KinesisOutput;

impl KinesisOutput {
    pub async fn submit(&mut self, _entry: Entry, _acks: &Arc<Acks>) {}
    pub async fn flush_due(&mut self) {}
    pub fn tick_every(&self) -> Duration {
        Duration::from_secs(1)
    }
    pub async fn finish(&mut self) {}
}
