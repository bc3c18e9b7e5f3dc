//! Placement: tests.

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
    let map = Arc::new(four_shards());
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
    let map = Arc::new(four_shards());
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
