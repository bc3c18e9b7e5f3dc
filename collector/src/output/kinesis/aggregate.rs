//! Aggregation (`aggregate: true`): lines bound for the same shard are packed into KPL
//! aggregated records, each filled until the next line would take it past
//! [`AGGREGATE_RECORD_BYTES`]; a line too big for that goes as a plain record.
//!
//! Invariant: an open aggregate remembers exactly which entries its lines came from, so its
//! record acknowledges them once delivered or dead-lettered; a line too big to aggregate is
//! returned to be sent as a plain record (deaggregators pass those through). A finished record
//! is sent with its anchor as ExplicitHashKey (see `kpl.rs`) and is not yet sealed: its digest is
//! written with its batch's ([`super::batch::seal`]) before it is sent.

use super::api::PutEntry;
use super::batch::{add_counts, AggregatedLines, Carried, Meta};
use super::kpl::Aggregator;
use super::partition::Placement;
use crate::buffer::EntryId;
use crate::config::AGGREGATE_RECORD_BYTES;
use bytes::Bytes;
use std::time::Duration;
use tokio::time::Instant;

/// An aggregated record being filled for one shard.
struct OpenAgg {
    agg: Aggregator,
    counts: Vec<(EntryId, usize)>,
    lines: Vec<Bytes>,
    since: Instant,
}

/// The open aggregates, at most one per shard (indexed by shard: a handful of entries, looked
/// up for every line).
#[derive(Default)]
pub struct Aggregates {
    open: Vec<Option<OpenAgg>>,
}

/// What adding a line produced.
pub enum Added {
    /// The line joined an open aggregate.
    Joined,
    /// The line joined a new aggregate; the shard's previous one is full and ready to send.
    Flushed(PutEntry, Meta),
    /// Too big to aggregate: send it as a plain record.
    Alone(PutEntry, Meta),
}

impl Aggregates {
    /// Adds one line for `place` (its shard is the aggregate's).
    pub fn add(&mut self, id: EntryId, line: Bytes, place: Placement) -> Added {
        let shard = place.shard.unwrap_or(0);
        let alone_fits = Aggregator::default().fits(
            &place.partition_key,
            place.explicit_hash_key.as_ref(),
            line.len(),
            AGGREGATE_RECORD_BYTES,
        );
        if !alone_fits {
            let put = PutEntry {
                data: line,
                partition_key: place.partition_key,
                explicit_hash_key: place.explicit_hash_key,
            };
            return Added::Alone(put, Meta::new(Carried::Line(id), place.shard, false));
        }
        let flushed = if self.fits(shard, &place, line.len()) {
            None
        } else {
            self.finish(shard)
        };
        if self.open.len() <= shard {
            self.open.resize_with(shard + 1, || None);
        }
        let open = self.open[shard].get_or_insert_with(|| OpenAgg {
            agg: Aggregator::default(),
            counts: Vec::new(),
            lines: Vec::new(),
            since: Instant::now(),
        });
        open.agg
            .add(place.partition_key, place.explicit_hash_key, line.clone());
        add_counts(&mut open.counts, id, 1);
        open.lines.push(line);
        match flushed {
            Some((put, meta)) => Added::Flushed(put, meta),
            None => Added::Joined,
        }
    }

    /// Whether a line for `place` would join shard `shard`'s open aggregate (or start one)
    /// without closing it.
    pub fn fits(&self, shard: usize, place: &Placement, len: usize) -> bool {
        self.open
            .get(shard)
            .and_then(Option::as_ref)
            .is_none_or(|o| {
                o.agg.fits(
                    &place.partition_key,
                    place.explicit_hash_key.as_ref(),
                    len,
                    AGGREGATE_RECORD_BYTES,
                )
            })
    }

    /// Closes shard `shard`'s aggregate into a record.
    pub fn finish(&mut self, shard: usize) -> Option<(PutEntry, Meta)> {
        let mut open = self.open.get_mut(shard)?.take()?;
        if open.agg.is_empty() {
            return None;
        }
        let partition_key = open.agg.first_key().cloned()?;
        let explicit_hash_key = open.agg.anchor().cloned();
        let data = open.agg.finish_unsealed();
        let put = PutEntry {
            data,
            partition_key,
            explicit_hash_key,
        };
        let carried = Carried::Lines(Box::new(AggregatedLines {
            counts: open.counts,
            lines: open.lines,
            sealed: false,
        }));
        Some((put, Meta::new(carried, Some(shard), false)))
    }

    /// Shards whose aggregate has waited `max_age`.
    pub fn due(&self, max_age: Duration, now: Instant) -> Vec<usize> {
        self.shards_where(|o| now.duration_since(o.since) >= max_age)
    }

    /// Shards with an open aggregate.
    pub fn shards(&self) -> Vec<usize> {
        self.shards_where(|_| true)
    }

    fn shards_where(&self, pick: impl Fn(&OpenAgg) -> bool) -> Vec<usize> {
        self.open
            .iter()
            .enumerate()
            .filter(|(_, o)| o.as_ref().is_some_and(&pick))
            .map(|(s, _)| s)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn place(shard: usize) -> Placement {
        Placement {
            partition_key: Arc::from(format!("shardId-{shard:012}")),
            explicit_hash_key: Some(Arc::from("1701411834604692317316873037158841057")),
            affinity: None,
            shard: Some(shard),
        }
    }

    #[test]
    fn records_fill_to_the_aim_and_big_lines_go_alone() {
        let mut aggs = Aggregates::default();
        let line = Bytes::from(vec![b'x'; 463]);
        let mut sizes = Vec::new();
        for i in 0..5000u64 {
            match aggs.add(i, line.clone(), place((i % 2) as usize)) {
                Added::Joined => {}
                Added::Flushed(put, meta) => {
                    assert_eq!(meta.shard, Some((i % 2) as usize));
                    sizes.push(put.data.len() + put.partition_key.len());
                }
                Added::Alone(..) => panic!("a 463-byte line goes alone"),
            }
        }
        assert!(sizes.len() >= 4, "{sizes:?}");
        for s in &sizes {
            assert!(*s <= AGGREGATE_RECORD_BYTES, "{s}");
            assert!(
                *s * 100 >= AGGREGATE_RECORD_BYTES * 99,
                "{s} is under 99% full"
            );
        }
        let big = Bytes::from(vec![b'y'; AGGREGATE_RECORD_BYTES]);
        match aggs.add(9999, big.clone(), place(0)) {
            Added::Alone(put, _) => assert_eq!(put.data, big),
            _ => panic!("a line bigger than an aggregated record is sent as a plain record"),
        }
        let mut open = aggs.shards();
        open.sort();
        assert_eq!(open, vec![0, 1]);
    }
}
