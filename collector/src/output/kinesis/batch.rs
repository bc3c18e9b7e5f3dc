//! Records and the batches (one PutRecords call each) they travel in.
//!
//! Invariant: a batch keeps its records in the order they were added, side by side with what
//! each one carries (the buffer entries its lines came from), so that every line is acknowledged
//! exactly once whichever records succeed, fail or wait.

use super::api::PutEntry;
use super::budget::Reservation;
use crate::buffer::EntryId;
use bytes::Bytes;
use tokio::time::Instant;

/// The lines one record carries (kept small: one per record in flight).
pub enum Carried {
    /// A plain record: one line of one entry (the line is the record's data).
    Line(EntryId),
    /// An aggregated record: lines from one or more entries.
    Lines(Box<AggregatedLines>),
}

/// The lines of an aggregated record and the entries they came from.
pub struct AggregatedLines {
    pub counts: Vec<(EntryId, usize)>,
    pub lines: Vec<Bytes>,
    /// Whether the record's MD5 trailer is written (see [`seal`]).
    pub sealed: bool,
}

/// Writes the MD5 trailers of the batch's aggregated records that have none yet, computed
/// together (several at once with SIMD). Run before the batch's first call, off the batching
/// task, so the digests of many records cost one pass over them.
pub fn seal(batch: &mut Batch) {
    let mut at = Vec::new();
    let mut records = Vec::new();
    for (i, (put, meta)) in batch.puts.iter_mut().zip(batch.meta.iter_mut()).enumerate() {
        if let Carried::Lines(a) = &mut meta.carried {
            if !a.sealed {
                a.sealed = true;
                at.push(i);
                records.push(std::mem::take(&mut put.data));
            }
        }
    }
    if records.is_empty() {
        return;
    }
    for (i, data) in at.into_iter().zip(super::kpl::seal_many(records)) {
        batch.puts[i].data = data;
    }
}

impl Carried {
    pub fn lines(&self) -> usize {
        match self {
            Carried::Line(_) => 1,
            Carried::Lines(a) => a.lines.len(),
        }
    }

    pub fn count_into(&self, counts: &mut Vec<(EntryId, usize)>) {
        match self {
            Carried::Line(id) => add_counts(counts, *id, 1),
            Carried::Lines(a) => {
                for (id, n) in &a.counts {
                    add_counts(counts, *id, *n);
                }
            }
        }
    }
}

/// Adds `n` lines of entry `id`, merging with the last count when it is the same entry.
pub fn add_counts(counts: &mut Vec<(EntryId, usize)>, id: EntryId, n: usize) {
    match counts.last_mut() {
        Some((last, c)) if *last == id => *c += n,
        _ => counts.push((id, n)),
    }
}

/// What Kinesis counts against its limits: data and partition key.
pub fn record_size(put: &PutEntry) -> usize {
    put.data.len() + put.partition_key.len()
}

/// Everything about a record but the record itself.
pub struct Meta {
    pub carried: Carried,
    /// The shard it is bound for, when the shard map is known.
    pub shard: Option<usize>,
    /// Shard-balanced: any shard will do, so a hot shard's record may move to another one.
    pub movable: bool,
    /// Times Kinesis refused it as invalid (these count toward `max_retries`).
    pub refusals: u32,
    /// Times it was throttled or failed for the moment (these never count).
    pub waits: u32,
    /// Not to be sent again before this time (its retry backoff).
    pub not_before: Option<Instant>,
    pub last_error: Option<String>,
    /// Its position among the records of the batch it first joined (order of retries).
    pub seq: u32,
}

impl Meta {
    pub fn new(carried: Carried, shard: Option<usize>, movable: bool) -> Meta {
        Meta {
            carried,
            shard,
            movable,
            refusals: 0,
            waits: 0,
            not_before: None,
            last_error: None,
            seq: 0,
        }
    }
}

/// The records of one PutRecords call, side by side (the call borrows `puts` as they are).
#[derive(Default)]
pub struct Batch {
    pub puts: Vec<PutEntry>,
    pub meta: Vec<Meta>,
    pub bytes: usize,
    /// The batch's share of `max_in_flight_bytes`, held until every record is delivered.
    pub reservation: Reservation,
}

impl Batch {
    pub fn push(&mut self, put: PutEntry, mut meta: Meta) {
        self.bytes += record_size(&put);
        meta.seq = self.puts.len() as u32;
        self.puts.push(put);
        self.meta.push(meta);
    }

    /// Adds a record that keeps its sequence number (retries, merged back in order later).
    pub fn push_again(&mut self, put: PutEntry, meta: Meta) {
        self.bytes += record_size(&put);
        self.puts.push(put);
        self.meta.push(meta);
    }

    /// Puts the records back in the order they first had.
    pub fn sort_by_seq(&mut self) {
        if self.meta.windows(2).all(|w| w[0].seq <= w[1].seq) {
            return;
        }
        let mut pairs: Vec<(PutEntry, Meta)> = std::mem::take(&mut self.puts)
            .into_iter()
            .zip(std::mem::take(&mut self.meta))
            .collect();
        pairs.sort_by_key(|(_, m)| m.seq);
        for (p, m) in pairs {
            self.puts.push(p);
            self.meta.push(m);
        }
    }

    pub fn len(&self) -> usize {
        self.puts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.puts.is_empty()
    }

    /// Takes the records and their metadata out, leaving the reservation.
    pub fn take_records(&mut self) -> (Vec<PutEntry>, Vec<Meta>) {
        self.bytes = 0;
        (
            std::mem::take(&mut self.puts),
            std::mem::take(&mut self.meta),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_records_metadata_stays_small() {
        // One per record in flight: a few hundred thousand at a time under load.
        assert!(std::mem::size_of::<Carried>() <= 16);
        assert!(
            std::mem::size_of::<Meta>() <= 96,
            "{}",
            std::mem::size_of::<Meta>()
        );
    }
}
