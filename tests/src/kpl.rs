//! An independent KPL deaggregator, written from the format's description (not from the
//! collector's encoder): magic `F3 89 9A C2`, a protobuf `AggregatedRecord`, an MD5 trailer.

use md5::{Digest, Md5};

const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// One user record inside an aggregated record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    pub data: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum DeaggError {
    NotAggregated,
    BadDigest,
    Malformed(&'static str),
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, DeaggError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf
            .get(*pos)
            .ok_or(DeaggError::Malformed("truncated varint"))?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(DeaggError::Malformed("varint too long"))
}

fn bytes<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a [u8], DeaggError> {
    let n = varint(buf, pos)? as usize;
    let end = pos
        .checked_add(n)
        .filter(|e| *e <= buf.len())
        .ok_or(DeaggError::Malformed("length past end"))?;
    let s = &buf[*pos..end];
    *pos = end;
    Ok(s)
}

fn skip(buf: &[u8], pos: &mut usize, wire: u64) -> Result<(), DeaggError> {
    match wire {
        0 => varint(buf, pos).map(|_| ()),
        1 => {
            *pos += 8;
            Ok(())
        }
        2 => bytes(buf, pos).map(|_| ()),
        5 => {
            *pos += 4;
            Ok(())
        }
        _ => Err(DeaggError::Malformed("unknown wire type")),
    }
}

/// The user records of an aggregated Kinesis record; `NotAggregated` for a plain record.
pub fn deaggregate(record: &[u8]) -> Result<Vec<UserRecord>, DeaggError> {
    if record.len() < MAGIC.len() + 16 || record[..4] != MAGIC {
        return Err(DeaggError::NotAggregated);
    }
    let body = &record[4..record.len() - 16];
    if Md5::digest(body).as_slice() != &record[record.len() - 16..] {
        return Err(DeaggError::BadDigest);
    }
    let (mut keys, mut hash_keys, mut raw) = (Vec::new(), Vec::new(), Vec::new());
    let mut pos = 0;
    while pos < body.len() {
        let tag = varint(body, &mut pos)?;
        match (tag >> 3, tag & 7) {
            (1, 2) => keys.push(String::from_utf8_lossy(bytes(body, &mut pos)?).into_owned()),
            (2, 2) => hash_keys.push(String::from_utf8_lossy(bytes(body, &mut pos)?).into_owned()),
            (3, 2) => raw.push(bytes(body, &mut pos)?),
            (_, w) => skip(body, &mut pos, w)?,
        }
    }
    raw.into_iter()
        .map(|r| {
            let (mut pk, mut hk, mut data, mut p) = (None, None, None, 0);
            while p < r.len() {
                let tag = varint(r, &mut p)?;
                match (tag >> 3, tag & 7) {
                    (1, 0) => pk = Some(varint(r, &mut p)? as usize),
                    (2, 0) => hk = Some(varint(r, &mut p)? as usize),
                    (3, 2) => data = Some(bytes(r, &mut p)?.to_vec()),
                    (_, w) => skip(r, &mut p, w)?,
                }
            }
            Ok(UserRecord {
                partition_key: keys
                    .get(pk.ok_or(DeaggError::Malformed("no partition key index"))?)
                    .cloned()
                    .ok_or(DeaggError::Malformed("partition key index out of range"))?,
                explicit_hash_key: match hk {
                    Some(i) => Some(
                        hash_keys
                            .get(i)
                            .cloned()
                            .ok_or(DeaggError::Malformed("hash key index out of range"))?,
                    ),
                    None => None,
                },
                data: data.ok_or(DeaggError::Malformed("no data"))?,
            })
        })
        .collect()
}
