//! A batch of log lines as it moves through the collector.
//!
//! Invariant: `data` holds the lines joined by `\n` (no trailing newline) and `ends[i]` is the
//! offset just past line `i`. Lines never contain `\n` (it is the framing byte everywhere, as in
//! Fastly's batches), so the same bytes serve as the in-memory form, the on-disk payload and, when
//! a body needed no rewriting, the request body itself: no per-line allocation.

use bytes::Bytes;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineBatch {
    data: Bytes,
    ends: Vec<u32>,
}

impl LineBatch {
    /// Builds a batch from newline-joined `data`; every line must be non-empty.
    ///
    /// Returns `None` if `data` is not in the batch form (empty line, trailing newline, over
    /// 4 GiB).
    pub fn from_joined(data: Bytes) -> Option<LineBatch> {
        if data.is_empty() {
            return Some(LineBatch::default());
        }
        if data.len() > u32::MAX as usize {
            return None;
        }
        let mut ends = Vec::with_capacity(data.len() / 256 + 1);
        let mut start = 0usize;
        for nl in memchr::memchr_iter(b'\n', &data) {
            if nl == start {
                return None;
            }
            ends.push(nl as u32);
            start = nl + 1;
        }
        if start == data.len() {
            return None;
        }
        ends.push(data.len() as u32);
        Some(LineBatch { data, ends })
    }

    /// Builds a batch from separate lines (copied once into one buffer). Empty lines are skipped.
    pub fn from_lines<I, L>(lines: I) -> LineBatch
    where
        I: IntoIterator<Item = L>,
        L: AsRef<[u8]>,
    {
        let mut b = LineBatchBuilder::default();
        for l in lines {
            b.push(l.as_ref());
        }
        b.finish()
    }

    /// Assembles a batch from parts the caller has already checked against the invariant.
    pub(crate) fn from_parts(data: Bytes, ends: Vec<u32>) -> LineBatch {
        debug_assert!(ends.last().is_none_or(|&e| e as usize == data.len()));
        LineBatch { data, ends }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The newline-joined bytes, exactly what the disk buffer stores.
    pub fn joined(&self) -> &Bytes {
        &self.data
    }

    /// Total bytes of the lines, separators excluded.
    pub fn line_bytes(&self) -> usize {
        self.data.len() - self.ends.len().saturating_sub(1)
    }

    /// Line `i` as a cheap slice of the shared buffer.
    pub fn line(&self, i: usize) -> Bytes {
        let (s, e) = self.span(i);
        self.data.slice(s..e)
    }

    /// Line `i` as a byte slice.
    pub fn line_ref(&self, i: usize) -> &[u8] {
        let (s, e) = self.span(i);
        &self.data[s..e]
    }

    fn span(&self, i: usize) -> (usize, usize) {
        let start = if i == 0 {
            0
        } else {
            self.ends[i - 1] as usize + 1
        };
        (start, self.ends[i] as usize)
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len()).map(move |i| self.line_ref(i))
    }
}

/// Accumulates lines into one buffer.
#[derive(Default)]
pub struct LineBatchBuilder {
    data: Vec<u8>,
    ends: Vec<u32>,
}

impl LineBatchBuilder {
    pub fn with_capacity(bytes: usize) -> Self {
        LineBatchBuilder {
            data: Vec::with_capacity(bytes),
            ends: Vec::new(),
        }
    }

    /// Appends a line; empty lines are skipped. The caller guarantees no `\n` inside.
    pub fn push(&mut self, line: &[u8]) {
        if line.is_empty() {
            return;
        }
        if !self.ends.is_empty() {
            self.data.push(b'\n');
        }
        self.data.extend_from_slice(line);
        self.ends.push(self.data.len() as u32);
    }

    pub fn finish(self) -> LineBatch {
        LineBatch {
            data: Bytes::from(self.data),
            ends: self.ends,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_round_trip() {
        let b = LineBatch::from_joined(Bytes::from_static(b"a\nbb\nccc")).expect("valid");
        assert_eq!(b.len(), 3);
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![&b"a"[..], b"bb", b"ccc"]);
        assert_eq!(b.line(1), Bytes::from_static(b"bb"));
        assert_eq!(b.line_bytes(), 6);
        let again = LineBatch::from_joined(b.joined().clone()).expect("valid");
        assert_eq!(again, b);
    }

    #[test]
    fn joined_rejects_empty_lines_and_trailing_newline() {
        assert!(LineBatch::from_joined(Bytes::from_static(b"a\n\nb")).is_none());
        assert!(LineBatch::from_joined(Bytes::from_static(b"a\n")).is_none());
        assert!(LineBatch::from_joined(Bytes::from_static(b"\na")).is_none());
        assert!(LineBatch::from_joined(Bytes::new())
            .expect("empty")
            .is_empty());
    }

    #[test]
    fn builder_skips_empty_lines() {
        let b = LineBatch::from_lines(["x", "", "y\u{fffd}"]);
        assert_eq!(b.len(), 2);
        assert_eq!(b.joined().as_ref(), "x\ny\u{fffd}".as_bytes());
    }
}
