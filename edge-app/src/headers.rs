//! A request's or response's headers as the log keeps them: names packed in one string and
//! values in one buffer, in the order they came.
//!
//! Two buffers rather than a `String` and a `Vec<u8>` per header: a request's eight-odd headers
//! were sixteen allocations on every logged request, a tenth of the wasm's time for a JSON line
//! under Viceroy (allocation and freeing in the profile of `scripts/bench-edge`'s JSON case).

/// Header names and raw values (possibly not UTF-8), in order; names as given (the host gives
/// them lower-cased). Looked up without regard to case.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    names: String,
    values: Vec<u8>,
    /// Per header: where its name ends in `names` and its value ends in `values` (each starts
    /// where the one before ends).
    ends: Vec<(u32, u32)>,
}

impl Headers {
    /// Room for about `headers` headers of `bytes` bytes in all.
    pub fn with_capacity(headers: usize, bytes: usize) -> Self {
        Headers {
            names: String::with_capacity(bytes / 4),
            values: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(headers),
        }
    }

    /// Appends one header: `headers.push(("name", b"value"))`.
    pub fn push<N: AsRef<str>, V: AsRef<[u8]>>(&mut self, (name, value): (N, V)) {
        self.names.push_str(name.as_ref());
        self.values.extend_from_slice(value.as_ref());
        self.ends
            .push((self.names.len() as u32, self.values.len() as u32));
    }

    /// Every header, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        let mut from = (0usize, 0usize);
        self.ends.iter().map(move |&(name_end, value_end)| {
            let (name_end, value_end) = (name_end as usize, value_end as usize);
            let header = (
                self.names.get(from.0..name_end).unwrap_or_default(),
                self.values.get(from.1..value_end).unwrap_or_default(),
            );
            from = (name_end, value_end);
            header
        })
    }

    /// The values of the headers named `name` (any case), in order.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// A header as text (invalid UTF-8 replaced); repeated headers are joined with `, `.
    pub fn get(&self, name: &str) -> Option<String> {
        let mut out: Option<String> = None;
        for v in self.values(name) {
            let text = match std::str::from_utf8(v) {
                Ok(t) => std::borrow::Cow::Borrowed(t),
                Err(_) => String::from_utf8_lossy(v),
            };
            match &mut out {
                Some(s) => {
                    s.push_str(", ");
                    s.push_str(&text);
                }
                None => out = Some(text.into_owned()),
            }
        }
        out
    }

    /// Replaces the value of every header for which `change` gives a new one.
    pub fn rewrite(&mut self, mut change: impl FnMut(&str, &[u8]) -> Option<Vec<u8>>) {
        let changes: Vec<(usize, Vec<u8>)> = self
            .iter()
            .enumerate()
            .filter_map(|(i, (k, v))| change(k, v).map(|new| (i, new)))
            .collect();
        if changes.is_empty() {
            return;
        }
        let mut rebuilt = Headers::with_capacity(self.ends.len(), self.values.len());
        for (i, (k, v)) in self.iter().enumerate() {
            match changes.iter().find(|(at, _)| *at == i) {
                Some((_, new)) => rebuilt.push((k, new)),
                None => rebuilt.push((k, v)),
            }
        }
        *self = rebuilt;
    }

    /// Bytes of the header block on the wire after a first line of `first_line` bytes:
    /// `name: value\r\n` per header, and the blank line.
    pub fn block_bytes(&self, first_line: usize) -> u64 {
        // Each header adds ": " and "\r\n" to its name and value.
        (first_line + self.names.len() + self.values.len() + 4 * self.ends.len() + 2) as u64
    }

    /// Removes the last header.
    #[cfg(test)]
    pub fn pop(&mut self) {
        self.ends.pop();
        let (names, values) = self.ends.last().copied().unwrap_or_default();
        self.names.truncate(names as usize);
        self.values.truncate(values as usize);
    }

    #[cfg(test)]
    pub fn clear(&mut self) {
        self.names.clear();
        self.values.clear();
        self.ends.clear();
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ends.len()
    }
}

impl<N: AsRef<str>, V: AsRef<[u8]>> From<Vec<(N, V)>> for Headers {
    fn from(list: Vec<(N, V)>) -> Self {
        let mut h = Headers::default();
        for pair in list {
            h.push(pair);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_keep_order_case_and_raw_bytes() {
        let mut h = Headers::from(vec![("Host", b"a".to_vec()), ("x-multi", b"1".to_vec())]);
        h.push(("X-Multi", b"\xff2"));
        h.push(("empty", b""));
        assert_eq!(h.len(), 4);
        assert_eq!(h.get("host").as_deref(), Some("a"));
        assert_eq!(h.get("X-MULTI").as_deref(), Some("1, \u{fffd}2"));
        assert_eq!(h.get("empty").as_deref(), Some(""));
        assert_eq!(h.get("missing"), None);
        let names: Vec<&str> = h.iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["Host", "x-multi", "X-Multi", "empty"]);
        // "Host: a\r\n" 9 + "x-multi: 1\r\n" 12 + "X-Multi: \xff2\r\n" 13 + "empty: \r\n" 9 + 2
        assert_eq!(h.block_bytes(0), 9 + 12 + 13 + 9 + 2);
        h.pop();
        assert_eq!(h.len(), 3);
        assert_eq!(h.get("empty"), None);
        h.clear();
        assert!(h.is_empty());
        assert_eq!(h.block_bytes(5), 7);
    }

    #[test]
    fn rewrite_changes_only_what_it_is_given() {
        let mut h = Headers::from(vec![("a", "1"), ("b", "2"), ("a", "3")]);
        let before = h.clone();
        h.rewrite(|_, _| None);
        assert_eq!(h, before);
        h.rewrite(|k, v| (k == "a").then(|| [v, b"!"].concat()));
        let all: Vec<(&str, &[u8])> = h.iter().collect();
        assert_eq!(
            all,
            vec![("a", &b"1!"[..]), ("b", &b"2"[..]), ("a", &b"3!"[..])]
        );
    }
}
