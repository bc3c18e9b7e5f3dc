//! KPL aggregated records: many lines in one Kinesis record, so a shard's 1,000 records/s limit
//! no longer caps lines/s.
//!
//! Format (the Kinesis Producer Library's): magic `F3 89 9A C2`, a protobuf `AggregatedRecord`
//! { repeated string partition_key_table = 1; repeated string explicit_hash_key_table = 2;
//! repeated Record records = 3 } where Record { required uint64 partition_key_index = 1;
//! optional uint64 explicit_hash_key_index = 2; required bytes data = 3 }, then the MD5 of the
//! protobuf bytes. KCL and the AWS deaggregation libraries read it.
//!
//! Invariant: [`Aggregator::fits`] is exact, so an emitted record never passes the limit it was
//! given (the Kinesis record limit, partition key included).

use bytes::Bytes;
use md5::{Digest, Md5};
use std::collections::HashMap;
use std::sync::Arc;

pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST_LEN: usize = 16;

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Builds one aggregated record.
#[derive(Default)]
pub struct Aggregator {
    keys: Vec<Arc<str>>,
    key_index: HashMap<Arc<str>, u64>,
    hash_keys: Vec<Arc<str>>,
    hash_key_index: HashMap<Arc<str>, u64>,
    records: Vec<(u64, Option<u64>, Bytes)>,
    /// Protobuf bytes so far.
    body_len: usize,
}

impl Aggregator {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// The partition key of the Kinesis record: the first user record's.
    pub fn first_key(&self) -> Option<&Arc<str>> {
        self.records
            .first()
            .map(|(k, _, _)| &self.keys[*k as usize])
    }

    pub fn first_hash_key(&self) -> Option<&Arc<str>> {
        self.records
            .first()
            .and_then(|(_, h, _)| h.map(|h| &self.hash_keys[h as usize]))
    }

    /// The index of a key already in `table`: the last one added is tried first (records bound
    /// for one shard mostly share their keys), then the map.
    fn index_of(table: &[Arc<str>], index: &HashMap<Arc<str>, u64>, key: &Arc<str>) -> Option<u64> {
        match table.last() {
            Some(last) if Arc::ptr_eq(last, key) || **last == **key => Some(table.len() as u64 - 1),
            _ => index.get(key).copied(),
        }
    }

    fn added_len(&self, key: &Arc<str>, hash_key: Option<&Arc<str>>, data_len: usize) -> usize {
        let mut extra = 0;
        let key_idx = match Self::index_of(&self.keys, &self.key_index, key) {
            Some(i) => i,
            None => {
                extra += 1 + varint_len(key.len() as u64) + key.len();
                self.keys.len() as u64
            }
        };
        let hash_idx =
            hash_key.map(
                |h| match Self::index_of(&self.hash_keys, &self.hash_key_index, h) {
                    Some(i) => i,
                    None => {
                        extra += 1 + varint_len(h.len() as u64) + h.len();
                        self.hash_keys.len() as u64
                    }
                },
            );
        let rec = 1
            + varint_len(key_idx)
            + hash_idx.map_or(0, |i| 1 + varint_len(i))
            + 1
            + varint_len(data_len as u64)
            + data_len;
        extra + 1 + varint_len(rec as u64) + rec
    }

    /// Size of the Kinesis record (data plus its partition key) if this user record were added.
    pub fn size_with(&self, key: &Arc<str>, hash_key: Option<&Arc<str>>, data_len: usize) -> usize {
        let body = self.body_len + self.added_len(key, hash_key, data_len);
        let outer_key = self.first_key().map_or(key.len(), |k| k.len());
        MAGIC.len() + body + DIGEST_LEN + outer_key
    }

    /// Whether the record can be added without the Kinesis record passing `limit`.
    pub fn fits(
        &self,
        key: &Arc<str>,
        hash_key: Option<&Arc<str>>,
        data_len: usize,
        limit: usize,
    ) -> bool {
        self.size_with(key, hash_key, data_len) <= limit
    }

    pub fn add(&mut self, key: Arc<str>, hash_key: Option<Arc<str>>, data: Bytes) {
        self.body_len += self.added_len(&key, hash_key.as_ref(), data.len());
        let k = match Self::index_of(&self.keys, &self.key_index, &key) {
            Some(i) => i,
            None => {
                let i = self.keys.len() as u64;
                self.keys.push(key.clone());
                self.key_index.insert(key, i);
                i
            }
        };
        let h = hash_key.map(
            |h| match Self::index_of(&self.hash_keys, &self.hash_key_index, &h) {
                Some(i) => i,
                None => {
                    let i = self.hash_keys.len() as u64;
                    self.hash_keys.push(h.clone());
                    self.hash_key_index.insert(h, i);
                    i
                }
            },
        );
        self.records.push((k, h, data));
    }

    /// The encoded record; the aggregator is empty again afterwards.
    pub fn finish(&mut self) -> Bytes {
        // One buffer: the magic, the protobuf written in place, then the digest of that part.
        let mut body = Vec::with_capacity(MAGIC.len() + self.body_len + DIGEST_LEN);
        body.extend_from_slice(&MAGIC);
        for k in &self.keys {
            body.push(0x0A);
            put_varint(&mut body, k.len() as u64);
            body.extend_from_slice(k.as_bytes());
        }
        for h in &self.hash_keys {
            body.push(0x12);
            put_varint(&mut body, h.len() as u64);
            body.extend_from_slice(h.as_bytes());
        }
        for (k, h, data) in &self.records {
            let rec_len = 1
                + varint_len(*k)
                + h.map_or(0, |i| 1 + varint_len(i))
                + 1
                + varint_len(data.len() as u64)
                + data.len();
            body.push(0x1A);
            put_varint(&mut body, rec_len as u64);
            body.push(0x08);
            put_varint(&mut body, *k);
            if let Some(i) = h {
                body.push(0x10);
                put_varint(&mut body, *i);
            }
            body.push(0x1A);
            put_varint(&mut body, data.len() as u64);
            body.extend_from_slice(data);
        }
        debug_assert_eq!(body.len(), MAGIC.len() + self.body_len);
        let digest = Md5::digest(&body[MAGIC.len()..]);
        body.extend_from_slice(&digest);
        *self = Aggregator::default();
        Bytes::from(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_prediction_is_exact() {
        let mut a = Aggregator::default();
        let keys: Vec<Arc<str>> = vec![Arc::from("k1"), Arc::from("another-key"), Arc::from("k1")];
        let hk: Arc<str> = Arc::from("170141183460469231731687303715884105727");
        for (i, k) in keys.iter().cycle().take(300).enumerate() {
            let data = Bytes::from(vec![b'x'; i % 200]);
            let hash = (i % 2 == 0).then(|| hk.clone());
            let predicted = a.size_with(k, hash.as_ref(), data.len());
            a.add(k.clone(), hash, data);
            let first_key_len = a.first_key().expect("key").len();
            let mut copy = Aggregator::default();
            std::mem::swap(&mut copy, &mut a);
            let encoded_len = {
                let mut c2 = Aggregator {
                    keys: copy.keys.clone(),
                    key_index: copy.key_index.clone(),
                    hash_keys: copy.hash_keys.clone(),
                    hash_key_index: copy.hash_key_index.clone(),
                    records: copy.records.clone(),
                    body_len: copy.body_len,
                };
                c2.finish().len()
            };
            assert_eq!(predicted, encoded_len + first_key_len, "after {i}");
            a = copy;
        }
    }

    #[test]
    fn layout_starts_with_magic_and_ends_with_md5() {
        let mut a = Aggregator::default();
        a.add(Arc::from("pk"), None, Bytes::from_static(b"hello"));
        let out = a.finish();
        assert_eq!(&out[..4], &MAGIC);
        let body = &out[4..out.len() - 16];
        assert_eq!(&out[out.len() - 16..], Md5::digest(body).as_slice());
        // partition_key_table[0] = "pk"; records[0] = {pk index 0, data "hello"}
        assert_eq!(body, b"\x0a\x02pk\x1a\x09\x08\x00\x1a\x05hello");
        assert!(a.is_empty(), "reset after finish");
    }
}
