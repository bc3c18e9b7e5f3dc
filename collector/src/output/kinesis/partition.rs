//! Partition keys and the shard map: which shard each record goes to.
//!
//! Strategies (the documented `aws_kinesis` ones, plus Fastly's own behaviour):
//! - shard-balanced (no `partition_key`): records are spread evenly over the open shards, each
//!   with the ExplicitHashKey of its shard's range midpoint, following the shard map (ListShards);
//! - a field (dotted path into JSON lines): its value; lines without it are sent shard-balanced
//!   and counted;
//! - `static:VALUE`, `random` (a UUID per record), `timestamp` (arrival time, milliseconds).
//!
//! Invariants: every key is 1 to 256 characters (Kinesis' rule); the same field value always
//! gives the same key, hence the same shard and the same sender lane, which keeps its order.

use crate::config::{PartitionKeySpec, KINESIS_MAX_PARTITION_KEY_CHARS};
use crate::json_path::field_value;
use md5::{Digest, Md5};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// One open shard and the hash-key range it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub id: Arc<str>,
    pub start: u128,
    pub end: u128,
    /// The decimal ExplicitHashKey that lands in this shard (its range midpoint).
    pub target: Arc<str>,
}

impl Shard {
    pub fn new(id: &str, start: u128, end: u128) -> Shard {
        let mid = start + (end - start) / 2;
        Shard {
            id: Arc::from(id),
            start,
            end,
            target: Arc::from(mid.to_string()),
        }
    }
}

/// The open shards, ordered by hash range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardMap {
    pub shards: Vec<Shard>,
}

impl ShardMap {
    pub fn new(mut shards: Vec<Shard>) -> ShardMap {
        shards.sort_by_key(|s| s.start);
        ShardMap { shards }
    }

    pub fn len(&self) -> usize {
        self.shards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// The index of the shard owning a 128-bit hash key.
    pub fn index_of_hash(&self, hash: u128) -> usize {
        match self.shards.binary_search_by(|s| {
            if s.end < hash {
                std::cmp::Ordering::Less
            } else if s.start > hash {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        }) {
            Ok(i) => i,
            Err(i) => i.min(self.shards.len().saturating_sub(1)),
        }
    }

    pub fn contains_id(&self, id: &str) -> bool {
        self.shards.iter().any(|s| &*s.id == id)
    }
}

/// The shard map shared by the partitioner, the senders and the refresher.
#[derive(Default)]
pub struct SharedShardMap {
    map: RwLock<Arc<ShardMap>>,
    stale: tokio::sync::Notify,
}

impl SharedShardMap {
    pub fn get(&self) -> Arc<ShardMap> {
        self.map.read().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn set(&self, map: ShardMap) {
        if let Ok(mut m) = self.map.write() {
            *m = Arc::new(map);
        }
    }

    /// Asks the refresher for a new map now (Kinesis reported a shard we do not know).
    pub fn mark_stale(&self) {
        self.stale.notify_one();
    }

    pub async fn stale(&self) {
        self.stale.notified().await
    }
}

/// The hash Kinesis computes from a partition key: MD5, as a 128-bit big-endian integer.
pub fn hash_key(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

/// Where one record goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub partition_key: Arc<str>,
    pub explicit_hash_key: Option<Arc<str>>,
    /// A stable number for keyed strategies (same key, same number), used to pick the sender
    /// lane; `None` when order does not matter (shard-balanced, random).
    pub affinity: Option<u64>,
    /// The shard it will land in, when known from the map.
    pub shard: Option<usize>,
}

/// Computes placements for lines.
pub struct Partitioner {
    spec: PartitionKeySpec,
    shards: Arc<SharedShardMap>,
    next: usize,
    /// Placements of recent keys (valid for `cache_map`): a repeated key costs no hashing and
    /// no allocation.
    cache: HashMap<Arc<str>, Placement>,
    cache_map: Option<Arc<ShardMap>>,
}

/// Distinct keys remembered; beyond that, new keys are placed without being remembered.
const CACHE_KEYS: usize = 8192;

/// What placing a line needed to know about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    None,
    /// The line had no usable value for the field: sent shard-balanced.
    MissingField,
}

impl Partitioner {
    pub fn new(spec: PartitionKeySpec, shards: Arc<SharedShardMap>) -> Self {
        Partitioner {
            spec,
            shards,
            next: 0,
            cache: HashMap::new(),
            cache_map: None,
        }
    }

    /// Whether this strategy needs ListShards.
    pub fn needs_shard_map(spec: &PartitionKeySpec) -> bool {
        matches!(
            spec,
            PartitionKeySpec::ShardBalanced | PartitionKeySpec::Field(_)
        )
    }

    /// The placement for one line that arrived at `arrived_ms` (Unix milliseconds).
    pub fn place(
        &mut self,
        map: &Arc<ShardMap>,
        line: &[u8],
        arrived_ms: u64,
    ) -> (Placement, Fallback) {
        match &self.spec {
            PartitionKeySpec::ShardBalanced => (self.balanced(map), Fallback::None),
            PartitionKeySpec::Field(path) => match field_value(line, path) {
                Some(v) => (self.cached(&v, map), Fallback::None),
                None => (self.balanced(map), Fallback::MissingField),
            },
            PartitionKeySpec::Static(v) => {
                let v = v.clone();
                (self.cached(&v, map), Fallback::None)
            }
            PartitionKeySpec::Timestamp => {
                (self.cached(&arrived_ms.to_string(), map), Fallback::None)
            }
            PartitionKeySpec::Random => {
                let key = uuid::Uuid::new_v4().to_string();
                let mut p = keyed(&key, map);
                p.affinity = None;
                (p, Fallback::None)
            }
        }
    }

    fn cached(&mut self, key: &str, map: &Arc<ShardMap>) -> Placement {
        if !self.cache_map.as_ref().is_some_and(|m| Arc::ptr_eq(m, map)) {
            self.cache.clear();
            self.cache_map = Some(map.clone());
        }
        if let Some(p) = self.cache.get(key) {
            return p.clone();
        }
        let p = keyed(key, map);
        if self.cache.len() < CACHE_KEYS {
            self.cache.insert(Arc::from(key), p.clone());
        }
        p
    }

    /// The next shard in turn; without a map yet, a fixed key.
    fn balanced(&mut self, map: &ShardMap) -> Placement {
        if map.is_empty() {
            let p = keyed("edgelog", map);
            return Placement {
                affinity: None,
                ..p
            };
        }
        let i = self.next % map.len();
        self.next = self.next.wrapping_add(1);
        let shard = &map.shards[i];
        Placement {
            partition_key: shard.id.clone(),
            explicit_hash_key: Some(shard.target.clone()),
            affinity: None,
            shard: Some(i),
        }
    }

    pub fn shard_map(&self) -> Arc<ShardMap> {
        self.shards.get()
    }
}

fn keyed(key: &str, map: &ShardMap) -> Placement {
    let key: String = if key.len() > KINESIS_MAX_PARTITION_KEY_CHARS
        && key.chars().count() > KINESIS_MAX_PARTITION_KEY_CHARS
    {
        key.chars().take(KINESIS_MAX_PARTITION_KEY_CHARS).collect()
    } else {
        key.to_string()
    };
    let hash = hash_key(&key);
    Placement {
        affinity: Some((hash >> 64) as u64),
        shard: (!map.is_empty()).then(|| map.index_of_hash(hash)),
        partition_key: Arc::from(key),
        explicit_hash_key: None,
    }
}

#[cfg(test)]
mod tests;
