//! One object being built: entries appended as lines, compressed as they come, taken out in
//! parts as the compressed bytes grow, so memory holds about one part whatever the object size.

use crate::buffer::{Entry, EntryId, Pos};
use crate::config::Compression;
use std::io::Write;
use std::time::Instant;

/// zstd level: fast enough to keep up with the rest of the collector on one core.
const ZSTD_LEVEL: i32 = 1;

enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
    Plain(Vec<u8>),
}

impl Encoder {
    fn out(&mut self) -> &mut Vec<u8> {
        match self {
            Encoder::Gzip(e) => e.get_mut(),
            Encoder::Zstd(e) => e.get_mut(),
            Encoder::Plain(v) => v,
        }
    }
}

/// An object being filled.
pub struct ObjectBuilder {
    enc: Encoder,
    /// Where its first entry starts and its last ends.
    pub first: Pos,
    pub end: Pos,
    /// When the first line arrived (names the time partition).
    pub opened: Instant,
    pub lines: u64,
    /// Bytes of lines (newlines included) before compression.
    pub raw_bytes: u64,
    /// Compressed bytes already taken out as parts.
    pub taken_bytes: u64,
    /// The entries it holds and their line counts, acknowledged once it is stored.
    pub entries: Vec<(EntryId, usize)>,
}

impl ObjectBuilder {
    pub fn new(compression: Compression, first: &Entry) -> std::io::Result<ObjectBuilder> {
        let enc = match compression {
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::fast(),
            )),
            Compression::Zstd => {
                Encoder::Zstd(zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL)?)
            }
            Compression::None => Encoder::Plain(Vec::new()),
        };
        Ok(ObjectBuilder {
            enc,
            first: first.start,
            end: first.start,
            opened: Instant::now(),
            lines: 0,
            raw_bytes: 0,
            taken_bytes: 0,
            entries: Vec::new(),
        })
    }

    /// Appends an entry's lines, each ending in a newline.
    pub fn push(&mut self, entry: &Entry) -> std::io::Result<()> {
        let joined = entry.batch.joined();
        let w: &mut dyn Write = match &mut self.enc {
            Encoder::Gzip(e) => e,
            Encoder::Zstd(e) => e,
            Encoder::Plain(v) => v,
        };
        w.write_all(joined)?;
        w.write_all(b"\n")?;
        self.end = entry.end;
        self.lines += entry.batch.len() as u64;
        self.raw_bytes += joined.len() as u64 + 1;
        self.entries.push((entry.id, entry.batch.len()));
        Ok(())
    }

    /// Compressed bytes so far (taken out or not).
    pub fn stored_bytes(&mut self) -> u64 {
        self.taken_bytes + self.enc.out().len() as u64
    }

    /// The compressed bytes waiting, once there are at least `min` of them.
    pub fn take_part(&mut self, min: usize) -> Option<Vec<u8>> {
        let out = self.enc.out();
        if out.len() < min {
            return None;
        }
        let part = std::mem::take(out);
        self.taken_bytes += part.len() as u64;
        Some(part)
    }

    /// Ends the compressed stream; returns the bytes not yet taken out.
    pub fn finish(self) -> std::io::Result<(Vec<u8>, Sealed)> {
        let sealed = Sealed {
            first: self.first,
            end: self.end,
            lines: self.lines,
            entries: self.entries,
        };
        let rest = match self.enc {
            Encoder::Gzip(e) => e.finish()?,
            Encoder::Zstd(e) => e.finish()?,
            Encoder::Plain(v) => v,
        };
        Ok((rest, sealed))
    }
}

/// What a finished object covers.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub first: Pos,
    pub end: Pos,
    pub lines: u64,
    pub entries: Vec<(EntryId, usize)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lines::LineBatch;
    use std::io::Read;

    fn entry(id: u64, lines: &[&str]) -> Entry {
        Entry {
            id,
            batch: LineBatch::from_lines(lines),
            arrived_ms: 1000 + id,
            start: Pos {
                seg: 1,
                offset: id * 10,
            },
            end: Pos {
                seg: 1,
                offset: id * 10 + 10,
            },
        }
    }

    fn decompress(c: Compression, bytes: &[u8]) -> String {
        let mut out = String::new();
        match c {
            Compression::Gzip => {
                flate2::read::MultiGzDecoder::new(bytes)
                    .read_to_string(&mut out)
                    .expect("gzip");
            }
            Compression::Zstd => {
                out = String::from_utf8(zstd::decode_all(bytes).expect("zstd")).expect("utf8");
            }
            Compression::None => out = String::from_utf8(bytes.to_vec()).expect("utf8"),
        }
        out
    }

    #[test]
    fn parts_taken_out_and_the_rest_make_the_lines_back() {
        for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let first = entry(0, &["a", "b"]);
            let mut o = ObjectBuilder::new(c, &first).expect("new");
            o.push(&first).expect("push");
            let mut stored = Vec::new();
            for i in 1..200u64 {
                let line = format!(
                    "{{\"n\":{i},\"pad\":\"{}\"}}",
                    "x".repeat((i % 50) as usize)
                );
                o.push(&entry(i, &[line.as_str()])).expect("push");
                if let Some(p) = o.take_part(64) {
                    stored.extend(p);
                }
            }
            assert_eq!(o.lines, 201);
            assert_eq!(
                (o.first, o.end),
                (
                    Pos { seg: 1, offset: 0 },
                    Pos {
                        seg: 1,
                        offset: 2000
                    }
                )
            );
            let (rest, sealed) = o.finish().expect("finish");
            stored.extend(rest);
            assert_eq!(sealed.entries.len(), 200);
            let text = decompress(c, &stored);
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), 201, "{c:?}");
            assert_eq!(&lines[..2], ["a", "b"]);
            assert!(lines[200].starts_with("{\"n\":199,"));
            assert!(text.ends_with('\n'));
        }
    }
}
