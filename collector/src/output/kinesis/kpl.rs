//! KPL aggregated records: many lines in one Kinesis record, so a shard's 1,000 records/s limit
//! no longer caps lines/s.
//!
//! Format (the Kinesis Producer Library's): magic `F3 89 9A C2`, a protobuf `AggregatedRecord`
//! { repeated string partition_key_table = 1; repeated string explicit_hash_key_table = 2;
//! repeated Record records = 3 } where Record { required uint64 partition_key_index = 1;
//! optional uint64 explicit_hash_key_index = 2; required bytes data = 3 }, then the MD5 of the
//! protobuf bytes. KCL and the AWS deaggregation libraries read it.
//!
//! Hash ranges: KCL drops a user record whose effective hash key (its explicit hash key, else the
//! MD5 of its partition key) lies outside the shard it was read from. So every user record of a
//! record shares one effective hash key, the record's *anchor* (the first user record's), and the
//! Kinesis record is sent with that anchor as its ExplicitHashKey: whichever shard owns the
//! anchor when the record is written, a split or a merge included, owns every user record in it.
//! A user record with another key keeps its partition key and gets the anchor as its explicit
//! hash key.
//!
//! The MD5 trailer is written last ([`seal`]), so that the digests of a batch of records can be
//! computed together (`md5lanes.rs`); until then the record ends with 16 zero bytes.
//!
//! Invariants: [`Aggregator::fits`] is exact, so an emitted record never passes the limit it was
//! given (the Kinesis record limit, partition key included); every user record's effective hash
//! key is the record's anchor.

use super::md5lanes;
use bytes::Bytes;
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
    /// The effective hash key every user record shares (decimal), set by the first one.
    anchor: Option<Arc<str>>,
    /// Whether the first user record has an explicit hash key.
    first_explicit: bool,
}

/// The decimal hash key Kinesis derives from a partition key (MD5, big-endian).
pub fn hash_key_of(partition_key: &str) -> Arc<str> {
    let d = md5lanes::one(partition_key.as_bytes());
    Arc::from(u128::from_be_bytes(d).to_string())
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

    /// The effective hash key of every user record (the Kinesis record's ExplicitHashKey).
    pub fn anchor(&self) -> Option<&Arc<str>> {
        self.anchor.as_ref()
    }

    /// The explicit hash key a user record is stored with: its own when it is the anchor (or
    /// none when its partition key hashes to the anchor), else the anchor.
    fn inner_hash_key<'k>(
        &'k self,
        key: &Arc<str>,
        hash_key: Option<&'k Arc<str>>,
    ) -> Option<&'k Arc<str>> {
        let Some(anchor) = self.anchor.as_ref().filter(|_| !self.records.is_empty()) else {
            return hash_key;
        };
        match hash_key {
            Some(h) if Arc::ptr_eq(h, anchor) || **h == **anchor => Some(h),
            None if !self.first_explicit
                && self
                    .first_key()
                    .is_some_and(|k| Arc::ptr_eq(k, key) || **k == **key) =>
            {
                None
            }
            _ => Some(anchor),
        }
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
        let hash_key = self.inner_hash_key(key, hash_key);
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
        if self.anchor.is_none() {
            self.first_explicit = hash_key.is_some();
            self.anchor = Some(match &hash_key {
                Some(h) => h.clone(),
                None => hash_key_of(&key),
            });
        }
        let hash_key = self.inner_hash_key(&key, hash_key.as_ref()).cloned();
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

    /// The encoded record, sealed; the aggregator is empty again afterwards.
    pub fn finish(&mut self) -> Bytes {
        seal(self.finish_unsealed())
    }

    /// The encoded record with 16 zero bytes where its digest goes ([`seal`] writes it); the
    /// aggregator is empty again afterwards.
    pub fn finish_unsealed(&mut self) -> Bytes {
        // One buffer: the magic, the protobuf written in place, then room for the digest.
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
        body.extend_from_slice(&[0u8; DIGEST_LEN]);
        *self = Aggregator::default();
        Bytes::from(body)
    }
}

/// The protobuf part of a record from [`Aggregator::finish_unsealed`].
fn digested_part(record: &[u8]) -> &[u8] {
    &record[MAGIC.len().min(record.len())..record.len().saturating_sub(DIGEST_LEN)]
}

/// Writes the digest of a record from [`Aggregator::finish_unsealed`] into its last 16 bytes.
pub fn seal(record: Bytes) -> Bytes {
    seal_many(vec![record]).pop().unwrap_or_default()
}

/// Writes the digests of several records from [`Aggregator::finish_unsealed`], computed
/// together. The records' buffers are reused when nothing else holds them (always, for a record
/// fresh from its aggregator), else copied.
pub fn seal_many(records: Vec<Bytes>) -> Vec<Bytes> {
    let digests = {
        let parts: Vec<&[u8]> = records.iter().map(|r| digested_part(r)).collect();
        md5lanes::digests(&parts)
    };
    records
        .into_iter()
        .zip(digests)
        .map(|(r, d)| {
            let mut m = r
                .try_into_mut()
                .unwrap_or_else(|shared| bytes::BytesMut::from(&shared[..]));
            let n = m.len();
            if n >= MAGIC.len() + DIGEST_LEN {
                m[n - DIGEST_LEN..].copy_from_slice(&d);
            }
            m.freeze()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::{Digest, Md5};

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
                    anchor: copy.anchor.clone(),
                    first_explicit: copy.first_explicit,
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

    #[test]
    fn user_records_with_other_keys_carry_the_anchor_as_their_hash_key() {
        let mut a = Aggregator::default();
        let (ka, kb): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        a.add(ka.clone(), None, Bytes::from_static(b"x"));
        a.add(kb, None, Bytes::from_static(b"y"));
        a.add(ka, None, Bytes::from_static(b"z"));
        let anchor = hash_key_of("a");
        assert_eq!(a.anchor(), Some(&anchor));
        let out = a.finish();
        let mut want = b"\x0a\x01a\x0a\x01b\x12".to_vec();
        want.push(anchor.len() as u8);
        want.extend_from_slice(anchor.as_bytes());
        // "a" hashes to the anchor: no hash key; "b" gets the anchor's (index 0).
        want.extend_from_slice(b"\x1a\x05\x08\x00\x1a\x01x");
        want.extend_from_slice(b"\x1a\x07\x08\x01\x10\x00\x1a\x01y");
        want.extend_from_slice(b"\x1a\x05\x08\x00\x1a\x01z");
        assert_eq!(&out[4..out.len() - 16], &want[..]);
        assert_eq!(&out[out.len() - 16..], Md5::digest(&want).as_slice());
        // An explicit first hash key is the anchor; a record with another one takes it.
        let mut e = Aggregator::default();
        let (h1, h2): (Arc<str>, Arc<str>) = (Arc::from("1"), Arc::from("2"));
        e.add(Arc::from("p"), Some(h1.clone()), Bytes::from_static(b"x"));
        e.add(Arc::from("p"), Some(h2), Bytes::from_static(b"y"));
        e.add(Arc::from("p"), None, Bytes::from_static(b"z"));
        assert_eq!(e.anchor(), Some(&h1));
        let out = e.finish();
        assert_eq!(
            &out[4..out.len() - 16],
            b"\x0a\x01p\x12\x011\x1a\x07\x08\x00\x10\x00\x1a\x01x\x1a\x07\x08\x00\x10\x00\x1a\x01y\x1a\x07\x08\x00\x10\x00\x1a\x01z"
        );
    }

    #[test]
    fn records_sealed_together_get_their_own_digests_in_place() {
        let mut unsealed = Vec::new();
        let mut ptrs = Vec::new();
        for i in 0..11usize {
            let mut a = Aggregator::default();
            for j in 0..(i * 37 % 200) {
                a.add(
                    Arc::from(format!("k{}", j % 5)),
                    None,
                    Bytes::from(vec![b'a' + (j % 26) as u8; 100 + i * j % 300]),
                );
            }
            if a.is_empty() {
                a.add(Arc::from("k"), None, Bytes::from_static(b"only"));
            }
            let r = a.finish_unsealed();
            assert_eq!(&r[r.len() - 16..], &[0u8; 16]);
            ptrs.push(r.as_ptr());
            unsealed.push(r);
        }
        let sealed = seal_many(unsealed);
        for (r, p) in sealed.iter().zip(ptrs) {
            let body = &r[4..r.len() - 16];
            assert_eq!(&r[r.len() - 16..], Md5::digest(body).as_slice());
            assert_eq!(r.as_ptr(), p, "sealed in place, not copied");
        }
    }
}
