//! Partition keys and the shard map: which shard each record goes to.
//!
//! Strategies (seed 003, plus Fastly's own behaviour from seed 000):
//! - shard-balanced (no `partition_key`): records are spread evenly over the open shards, each
//!   with the ExplicitHashKey of its shard's range midpoint, following the shard map (ListShards);
//! - a field (dotted path into JSON lines): its value; lines without it are sent shard-balanced
//!   and counted;
//! - `static:VALUE`, `random` (a UUID per record), `timestamp` (arrival time, milliseconds).
//!
//! Invariants: every key is 1 to 256 characters (Kinesis' rule); the same field value always
//! gives the same key, hence the same shard and the same sender lane, which keeps its order.

use crate::config::{PartitionKeySpec, KINESIS_MAX_PARTITION_KEY_CHARS};
use md5::{Digest, Md5};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
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
}

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
    pub fn place(&mut self, map: &ShardMap, line: &[u8], arrived_ms: u64) -> (Placement, Fallback) {
        match &self.spec {
            PartitionKeySpec::ShardBalanced => (self.balanced(map), Fallback::None),
            PartitionKeySpec::Field(path) => match field_value(line, path) {
                Some(v) => (keyed(v, map), Fallback::None),
                None => (self.balanced(map), Fallback::MissingField),
            },
            PartitionKeySpec::Static(v) => (keyed(v.clone(), map), Fallback::None),
            PartitionKeySpec::Timestamp => (keyed(arrived_ms.to_string(), map), Fallback::None),
            PartitionKeySpec::Random => {
                let key = uuid::Uuid::new_v4().to_string();
                let mut p = keyed(key, map);
                p.affinity = None;
                (p, Fallback::None)
            }
        }
    }

    /// The next shard in turn; without a map yet, a fixed key.
    fn balanced(&mut self, map: &ShardMap) -> Placement {
        if map.is_empty() {
            let p = keyed("edgelog".to_string(), map);
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

fn keyed(mut key: String, map: &ShardMap) -> Placement {
    if key.chars().count() > KINESIS_MAX_PARTITION_KEY_CHARS {
        key = key.chars().take(KINESIS_MAX_PARTITION_KEY_CHARS).collect();
    }
    let hash = hash_key(&key);
    Placement {
        affinity: Some((hash >> 64) as u64),
        shard: (!map.is_empty()).then(|| map.index_of_hash(hash)),
        partition_key: Arc::from(key),
        explicit_hash_key: None,
    }
}

/// The value at a dotted path in a JSON object line: strings as they are, other values as their
/// JSON text. `None` when the line is not a JSON object, lacks the path, or the value is empty or
/// null. Skips what it does not need without building the document.
pub fn field_value(line: &[u8], path: &[String]) -> Option<String> {
    let mut de = serde_json::Deserializer::from_slice(line);
    let v = PathSeed { path }.deserialize(&mut de).ok()??;
    (!v.is_empty()).then_some(v)
}

struct PathSeed<'p> {
    path: &'p [String],
}

impl<'de> DeserializeSeed<'de> for PathSeed<'_> {
    type Value = Option<String>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        if self.path.is_empty() {
            return d.deserialize_any(Leaf);
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PathSeed<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if found.is_none() && key == self.path[0].as_str() {
                found = map.next_value_seed(PathSeed {
                    path: &self.path[1..],
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    // Anything but an object on the way down has no such field.
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// The value at the end of the path.
struct Leaf;

impl<'de> Visitor<'de> for Leaf {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(serde_json::to_string(&v).unwrap_or_default()))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // An object as a key: its compact JSON text.
        let mut m = serde_json::Map::new();
        while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
            m.insert(k, v);
        }
        Ok(Some(serde_json::Value::Object(m).to_string()))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut v = Vec::new();
        while let Some(x) = seq.next_element::<serde_json::Value>()? {
            v.push(x);
        }
        Ok(Some(serde_json::Value::Array(v).to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> Vec<String> {
        p.split('.').map(str::to_string).collect()
    }

    fn four_shards() -> ShardMap {
        let q = u128::MAX / 4;
        ShardMap::new(vec![
            Shard::new("shardId-000000000003", 3 * q + 3, u128::MAX),
            Shard::new("shardId-000000000000", 0, q),
            Shard::new("shardId-000000000001", q + 1, 2 * q + 1),
            Shard::new("shardId-000000000002", 2 * q + 2, 3 * q + 2),
        ])
    }

    #[test]
    fn field_values_by_dotted_path() {
        let line = br#"{"a":1,"client_ip":"203.0.113.7","geo":{"country_code":"US","lat":37.5,"x":{"deep":true}},"n":null,"e":"","arr":[1,{"client_ip":"no"}]}"#;
        assert_eq!(
            field_value(line, &path("client_ip")).as_deref(),
            Some("203.0.113.7")
        );
        assert_eq!(
            field_value(line, &path("geo.country_code")).as_deref(),
            Some("US")
        );
        assert_eq!(field_value(line, &path("geo.lat")).as_deref(), Some("37.5"));
        assert_eq!(field_value(line, &path("a")).as_deref(), Some("1"));
        assert_eq!(
            field_value(line, &path("geo.x.deep")).as_deref(),
            Some("true")
        );
        assert_eq!(
            field_value(line, &path("geo.x")).as_deref(),
            Some("{\"deep\":true}")
        );
        assert_eq!(
            field_value(line, &path("arr")).as_deref(),
            Some("[1,{\"client_ip\":\"no\"}]")
        );
        for missing in ["nope", "n", "e", "client_ip.sub", "geo.nope", "a.b"] {
            assert_eq!(field_value(line, &path(missing)), None, "{missing}");
        }
        for not_object in [
            &b"not json"[..],
            b"[1,2]",
            b"\"s\"",
            b"",
            b"{\"client_ip\":",
        ] {
            assert_eq!(field_value(not_object, &path("client_ip")), None);
        }
        assert_eq!(
            field_value(br#"{"k":"caf\u00e9 \"q\""}"#, &path("k")).as_deref(),
            Some("caf\u{e9} \"q\"")
        );
    }

    #[test]
    fn kinesis_hash_is_md5_of_the_key() {
        // MD5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(hash_key("a"), 0x0cc175b9c0f1b6a831c399e269772661);
        let map = four_shards();
        assert_eq!(map.shards[0].id.as_ref(), "shardId-000000000000");
        assert_eq!(map.index_of_hash(0), 0);
        assert_eq!(map.index_of_hash(u128::MAX), 3);
        assert_eq!(map.index_of_hash(u128::MAX / 4 + 1), 1);
        for s in &map.shards {
            let t: u128 = s.target.parse().expect("decimal");
            assert!(s.start <= t && t <= s.end);
        }
    }

    #[test]
    fn shard_balanced_spreads_evenly_with_explicit_hash_keys() {
        let shared = Arc::new(SharedShardMap::default());
        let map = four_shards();
        let mut p = Partitioner::new(PartitionKeySpec::ShardBalanced, shared);
        let mut counts = [0usize; 4];
        for _ in 0..400 {
            let (pl, fb) = p.place(&map, b"{}", 0);
            assert_eq!(fb, Fallback::None);
            let i = pl.shard.expect("shard");
            counts[i] += 1;
            let ehk: u128 = pl.explicit_hash_key.expect("ehk").parse().expect("decimal");
            assert_eq!(map.index_of_hash(ehk), i);
            assert_eq!(pl.affinity, None);
        }
        assert_eq!(counts, [100; 4]);
    }

    #[test]
    fn keyed_strategies() {
        let shared = Arc::new(SharedShardMap::default());
        let map = four_shards();
        let mut field = Partitioner::new(PartitionKeySpec::Field(path("geo.cc")), shared.clone());
        let (a, _) = field.place(&map, br#"{"geo":{"cc":"US"}}"#, 0);
        let (b, _) = field.place(&map, br#"{"x":1,"geo":{"cc":"US"}}"#, 0);
        assert_eq!(a, b, "same value, same placement");
        assert_eq!(a.partition_key.as_ref(), "US");
        assert_eq!(a.shard, Some(map.index_of_hash(hash_key("US"))));
        let (c, fb) = field.place(&map, b"no json here", 0);
        assert_eq!(fb, Fallback::MissingField);
        assert!(
            c.explicit_hash_key.is_some(),
            "falls back to shard-balanced"
        );

        let mut st = Partitioner::new(PartitionKeySpec::Static("k".into()), shared.clone());
        assert_eq!(st.place(&map, b"x", 0).0.partition_key.as_ref(), "k");
        let mut ts = Partitioner::new(PartitionKeySpec::Timestamp, shared.clone());
        assert_eq!(
            ts.place(&map, b"x", 1_700_000_000_123)
                .0
                .partition_key
                .as_ref(),
            "1700000000123"
        );
        let mut rnd = Partitioner::new(PartitionKeySpec::Random, shared);
        let (r1, _) = rnd.place(&map, b"x", 0);
        let (r2, _) = rnd.place(&map, b"x", 0);
        assert_ne!(r1.partition_key, r2.partition_key);
        assert_eq!(r1.partition_key.len(), 36);
        let long = format!("{{\"k\":\"{}\"}}", "é".repeat(300));
        let mut f = Partitioner::new(
            PartitionKeySpec::Field(path("k")),
            Arc::new(SharedShardMap::default()),
        );
        assert_eq!(
            f.place(&map, long.as_bytes(), 0)
                .0
                .partition_key
                .chars()
                .count(),
            256
        );
    }
}
